"""The MoE layer written from its math, with a plain per-expert loop (index_select / index_add_).

Modes (params["mode"]):
  experts  FFN experts over a buffer with per-expert row offsets.
  shared   the dense shared-expert FFN, optionally gated by sigmoid(x . w_g) (Qwen2-MoE).
  layer    routing -> capacity drops -> experts -> weighted combine -> + shared experts.
           router "given": the slot weights are an input (gradient d_weight);
           router "topk_softmax": weights = softmax(x W^T) at the given experts, renormalised
           over each token's K picks when params["normalize"]; gradient d_router_weight.
           dense (Soft MoE shaped): buffer = dispatch @ x, y = combine @ experts(buffer).
Capacity (capacity_factor > 0): C = ceil(cf * N / E); each expert keeps its first C slots ordered
by (choice, token, slot) for policy "position" or (-weight, token, slot) for "score".
Weights are HF-oriented: gate_proj, up_proj [E, F, D], down_proj [E, D, F].
"""
import math
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from common import leaf, run  # noqa: E402


def act_fn(name, gate, up):
    if name == "swiglu":
        return F.silu(gate) * up
    if name == "gelu_tanh":
        return F.gelu(up, approximate="tanh")
    if name == "gelu":
        return F.gelu(up)
    if name == "relu":
        return torch.relu(up)
    raise ValueError(name)


def ffn(x, wg, wu, wd, act):
    gate = x @ wg.t() if wg is not None else None
    return act_fn(act, gate, x @ wu.t()) @ wd.t()


def leaves(inp, names):
    return {n: leaf(inp[n]) for n in names if n in inp}


def grads(prefix, tensors):
    return {prefix + n: t.grad if t.grad is not None else torch.zeros_like(t)
            for n, t in tensors.items()}


def kept_slots(token, expert, choice, weight, num_experts, cf, policy):
    n = token.numel()
    kept = torch.ones(n, dtype=torch.bool)
    if cf <= 0:
        return kept
    cap = max(1, math.ceil(cf * n / num_experts))
    for e in range(num_experts):
        slots = (expert == e).nonzero().flatten().tolist()
        if policy == "position":
            slots.sort(key=lambda s: (int(choice[s]), int(token[s]), s))
        else:
            slots.sort(key=lambda s: (-float(weight[s]), int(token[s]), s))
        for s in slots[cap:]:
            kept[s] = False
    return kept


def shared_part(inp, params, x, w):
    if "shared_up_proj" not in inp:
        return 0.0
    out = ffn(x, w.get("shared_gate_proj"), w["shared_up_proj"], w["shared_down_proj"],
              params["activation"])
    if "shared_gate" in w:
        out = torch.sigmoid(x @ w["shared_gate"].t()) * out
    return out


def compute(inp, params):
    act = params["activation"]
    mode = params["mode"]
    expert_w = leaves(inp, ["gate_proj", "up_proj", "down_proj"])
    shared_w = leaves(inp, ["shared_gate_proj", "shared_up_proj", "shared_down_proj",
                            "shared_gate"])
    wg = expert_w.get("gate_proj")

    if mode == "experts":
        buf = leaf(inp["buffer"])
        off = inp["offsets"].tolist()
        outs = []
        for e in range(len(off) - 1):
            rows = buf[off[e]:off[e + 1]]
            outs.append(ffn(rows, wg[e] if wg is not None else None, expert_w["up_proj"][e],
                            expert_w["down_proj"][e], act))
        out = torch.cat(outs)
        out.backward(inp["d_out"])
        return {"out": out, "d_buffer": buf.grad, **grads("d_", expert_w)}

    x = leaf(inp["x"])
    if mode == "shared":
        y = shared_part(inp, params, x, shared_w)
        y.backward(inp["d_out"])
        return {"y": y, "d_x": x.grad, **grads("d_", shared_w)}

    num_experts = params["num_experts"]
    t = x.shape[0]
    out = {}
    if params.get("dense", False):
        disp, comb = leaf(inp["dispatch"]), leaf(inp["combine"])
        buf = disp @ x
        spe = buf.shape[0] // num_experts
        outs = [ffn(buf[e * spe:(e + 1) * spe], wg[e] if wg is not None else None,
                    expert_w["up_proj"][e], expert_w["down_proj"][e], act)
                for e in range(num_experts)]
        y = comb @ torch.cat(outs)
    else:
        token, expert, choice = inp["token"], inp["expert"], inp["choice"]
        if params["router"] == "given":
            weight = leaf(inp["weight"])
        else:
            router_w = leaf(inp["router_weight"])
            probs = torch.softmax(x @ router_w.t(), dim=-1)
            k = params["top_k"]
            picked = probs.gather(1, expert.view(t, k))
            if params["normalize"]:
                picked = picked / picked.sum(dim=-1, keepdim=True)
            weight = picked.reshape(-1)
        kept = kept_slots(token, expert, choice, inp["weight"], num_experts,
                          params["capacity_factor"], params["policy"])
        y = torch.zeros(t, x.shape[1])
        for e in range(num_experts):
            slots = ((expert == e) & kept).nonzero().flatten()
            if slots.numel() == 0:
                continue
            tok = token[slots]
            ye = ffn(x.index_select(0, tok), wg[e] if wg is not None else None,
                     expert_w["up_proj"][e], expert_w["down_proj"][e], act)
            y = y.index_add(0, tok, weight[slots].unsqueeze(1) * ye)
        out["kept"] = kept.to(torch.int64)
    y = y + shared_part(inp, params, x, shared_w)
    y.backward(inp["d_y"])
    out.update({"y": y, "d_x": x.grad, **grads("d_", expert_w), **grads("d_", shared_w)})
    if params.get("dense", False):
        out.update({"d_dispatch": disp.grad, "d_combine": comb.grad})
    elif params["router"] == "given":
        out["d_weight"] = weight.grad
    else:
        out["d_router_weight"] = router_w.grad
    return out


run(compute)
