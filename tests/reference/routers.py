"""Router zoo references, written from the papers' math (docs: /work/shared/research/routing.md).

Every case gets x [T, D], the gate weight w [E, D] (logits = x w^T), a fixed upstream gradient
d_weight per routing slot, and params {"router": NAME, "top_k": K, ...}. The scalar objective
whose gradient the router's backward must produce is
    sum_slots weight * d_weight + sum_losses coeff * loss.
Outputs: expert (selected experts, slot order of the router), weight (per slot), loss_<name>,
entropy, d_x, d_w.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
import torch  # noqa: E402
from common import entropy, leaf, load_balance, run  # noqa: E402


def z_loss(logits):
    return torch.logsumexp(logits, -1).pow(2).mean()


def softmax_topk(inp, prm):
    """topk_softmax / switch / dense: softmax over E, top-k, raw | renorm | after weights."""
    x, w = leaf(inp["x"]), leaf(inp["w"])
    k = prm["top_k"]
    xr = x * inp["noise"] if "noise" in inp else x
    logits = xr @ w.t()
    p = torch.softmax(logits, -1)
    mode = prm["weights"]
    if mode == "after":
        vals, idx = logits.topk(k, -1)
        g = torch.softmax(vals, -1)
    else:
        vals, idx = p.topk(k, -1)
        g = vals / vals.sum(-1, keepdim=True) if mode == "renorm" else vals
    losses = {"load_balance": load_balance(p, idx, k), "z_loss": z_loss(logits)}
    coeffs = {"load_balance": prm.get("aux_loss_coeff", 0.0),
              "z_loss": prm.get("z_loss_coeff", 0.0)}
    return x, w, idx, g.reshape(-1), p, losses, coeffs


def expert_choice(inp, prm):
    """Each expert takes its top-C tokens by S = softmax over experts; weight = S[t, e]."""
    x, w = leaf(inp["x"]), leaf(inp["w"])
    p = torch.softmax(x @ w.t(), -1)
    vals, tok = p.t().topk(prm["capacity"], -1)  # [E, C]
    return x, w, tok, vals.reshape(-1), p, {}, {}


def biased(inp, prm):
    """loss_free / deepseek: select top-k of s + bias (group-limited), weight the unbiased s."""
    x, w = leaf(inp["x"]), leaf(inp["w"])
    k, n_group = prm["top_k"], prm.get("n_group", 1)
    logits = x @ w.t()
    sigmoid = prm["score"] == "sigmoid"
    s = torch.sigmoid(logits) if sigmoid else torch.softmax(logits, -1)
    t, e = s.shape
    sel = (s + inp["bias"]).detach()
    if n_group > 1:
        grouped = sel.view(t, n_group, -1)
        size = grouped.shape[-1]
        if prm.get("group_score", "top2_sum") == "max":
            gscore = grouped.max(-1).values
        else:
            gscore = grouped.topk(min(2, size), -1).values.sum(-1)
        gidx = gscore.topk(prm["topk_group"], -1).indices
        keep = torch.zeros(t, n_group, dtype=torch.bool).scatter(1, gidx, True)
        sel = sel.masked_fill(~keep.unsqueeze(-1).expand(t, n_group, size).reshape(t, e),
                              float("-inf"))
    idx = sel.topk(k, -1).indices
    g = s.gather(1, idx)
    if prm.get("normalize", False):
        g = g / (g.sum(-1, keepdim=True) + 1e-20)
    g = g * prm.get("scaling", 1.0)
    dist = s / s.sum(-1, keepdim=True) if sigmoid else s
    losses, coeffs = {}, {}
    if "seq_aux_coeff" in prm:
        seq = prm.get("seq_len", 0) or t
        plain = s.detach().topk(k, -1).indices
        value = 0.0
        for q in range(t // seq):
            rows = slice(q * seq, (q + 1) * seq)
            count = torch.nn.functional.one_hot(plain[rows].reshape(-1), e).sum(0).to(s.dtype)
            f = e / (k * seq) * count
            value = value + (f * dist[rows].mean(0)).sum()
        losses["seq_balance"] = value / (t // seq)
        coeffs["seq_balance"] = prm["seq_aux_coeff"]
    return x, w, idx, g.reshape(-1), dist, losses, coeffs


ROUTERS = {"softmax_topk": softmax_topk, "expert_choice": expert_choice, "biased": biased}


def compute(inp, prm):
    x, w, idx, g, dist, losses, coeffs = ROUTERS[prm["router"]](inp, prm)
    total = (g * inp["d_weight"]).sum()
    for name, value in losses.items():
        total = total + coeffs[name] * value
    total.backward()
    out = {"expert": idx, "weight": g, "entropy": entropy(dist.detach()),
           "d_x": x.grad, "d_w": w.grad}
    for name, value in losses.items():
        out["loss_" + name] = value
    return out


run(compute)
