"""The trainable MoE language model (src/train/lm.h) written from its definition, in float64.

Inputs per case: tokens, targets (int [B, T], -100 = ignored), every parameter under its Hugging
Face name (experts stacked: experts.gate_proj / up_proj [E, F, D], down_proj [E, D, F]) and the
routers' buffers (DeepSeek's gate.e_score_correction_bias). params["config"] is the model's
LmConfig JSON (train/lm_config.h).

Model: x = embed[tokens]; per layer
    h = x + o_proj(attn(rope(qk_norm(q_proj(n1))), rope(qk_norm(k_proj(n1))), v_proj(n1))),
        n1 = rmsnorm(x)
    x = h + ffn(rmsnorm(h))      ffn: MoE (router -> capacity -> experts -> + shared) or SwiGLU
logits = lm_head(rmsnorm(x)); loss = mean CE over targets != -100 + sum coeff * aux loss.
Causal GQA attention (query head h reads kv head h // (Hq / Hkv)), RoPE in HF's rotate_half
layout with positions restarting in every sequence.

Routers (defaults as in the C++ headers' documentation):
  topk_softmax  p = softmax(logits), top-K of p; weights renormalised (normalize, default true)
  switch        top-1 of p, raw weight; jitter must be 0 here (its noise is not an input)
  deepseek      s = sigmoid(logits); select top-K of s + bias among the topk_group best of n_group
                groups (group score: sum of the top-2 biased scores); weight = s / (sum + 1e-20)
                when norm_topk_prob, * routed_scaling_factor; seq_balance loss per sequence.
  losses        load_balance = E sum_e (count_e / (N K)) mean_t p_e; z_loss = mean lse^2.
Capacity (capacity_factor > 0): C = max(1, ceil(cf * N * K / E)); each expert keeps its first C
slots by (choice, token) ("position") or by (-weight, token, slot) ("score").

Outputs: loss, ce, aux, logits [N, V], d_<name> for every parameter, experts_<layer> (the chosen
experts, slot order: token-major, best first) for every MoE layer.
"""
import math
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from common import run  # noqa: E402


def rms_norm(x, w, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def rope(x, theta):
    """x [B, T, H, Dh], NeoX / HF rotate_half pairs (i, i + Dh/2); inv_freq in f32 as HF."""
    t, dh = x.shape[1], x.shape[3]
    inv = (1.0 / (theta ** (torch.arange(0, dh, 2, dtype=torch.int64).float() / dh))).double()
    ang = torch.arange(t, dtype=torch.float64)[:, None] * inv[None, :]
    ang = torch.cat([ang, ang], -1)[None, :, None, :]
    x1, x2 = x[..., : dh // 2], x[..., dh // 2:]
    return x * ang.cos() + torch.cat([-x2, x1], -1) * ang.sin()


def attention(x, w, p, cfg, b, t):
    hq, hd = cfg["n_heads"], cfg["head_dim"] or cfg["d_model"] // cfg["n_heads"]
    hkv = cfg["n_kv_heads"] or hq
    q = (x @ w[p + "q_proj.weight"].t()).view(b, t, hq, hd)
    k = (x @ w[p + "k_proj.weight"].t()).view(b, t, hkv, hd)
    v = (x @ w[p + "v_proj.weight"].t()).view(b, t, hkv, hd)
    if cfg["qk_norm"]:
        q = rms_norm(q, w[p + "q_norm.weight"], cfg["norm_eps"])
        k = rms_norm(k, w[p + "k_norm.weight"], cfg["norm_eps"])
    q, k = rope(q, cfg["rope_theta"]), rope(k, cfg["rope_theta"])
    q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)  # [B, H, T, Dh]
    k = k.repeat_interleave(hq // hkv, dim=1)
    v = v.repeat_interleave(hq // hkv, dim=1)
    scores = q @ k.transpose(-1, -2) / math.sqrt(hd)
    mask = torch.ones(t, t, dtype=torch.bool).triu(1)
    probs = torch.softmax(scores.masked_fill(mask, float("-inf")), -1)
    out = (probs @ v).transpose(1, 2).reshape(b * t, hq * hd)
    return out @ w[p + "o_proj.weight"].t()


def swiglu(x, wg, wu, wd):
    return (F.silu(x @ wg.t()) * (x @ wu.t())) @ wd.t()


def balance_losses(logits, p, idx, k):
    n, e = p.shape
    count = F.one_hot(idx.reshape(-1), e).sum(0).to(p.dtype)
    lb = e * (count / (n * k) * p.mean(0)).sum()
    z = torch.logsumexp(logits, -1).pow(2).mean()
    return lb, z


def route(x, w, p, cfg, inp, seq):
    """Returns idx [N, K], weight [N, K], [(value, coeff)]."""
    m = cfg["moe"]
    opt = m["router_options"]
    k = m["top_k"]
    logits = x @ w[p + "gate.weight"].t()
    name = m["router"]
    if name in ("topk_softmax", "switch"):
        probs = torch.softmax(logits, -1)
        vals, idx = probs.topk(k, -1)
        if name == "switch":
            assert opt.get("jitter_eps", 0.01) == 0.0, "switch jitter noise is not reproducible"
            weight = vals
            coeffs = (opt.get("aux_loss_coeff", 0.01), opt.get("z_loss_coeff", 0.0))
        else:
            weight = vals / vals.sum(-1, keepdim=True) if opt.get("normalize", True) else vals
            coeffs = (opt.get("aux_loss_coeff", 0.0), opt.get("z_loss_coeff", 0.0))
        lb, z = balance_losses(logits, probs, idx, k)
        return idx, weight, [(lb, coeffs[0]), (z, coeffs[1])]
    if name == "deepseek":
        assert opt.get("score", "sigmoid") == "sigmoid"
        s = torch.sigmoid(logits)
        n, e = s.shape
        biased = (s + inp[p + "gate.e_score_correction_bias"]).detach()
        groups = opt.get("n_group", 1)
        if groups > 1:
            g = biased.view(n, groups, e // groups)
            gscore = g.topk(min(2, e // groups), -1).values.sum(-1)
            chosen = gscore.topk(opt.get("topk_group", groups), -1).indices
            allowed = torch.zeros(n, groups, dtype=torch.bool).scatter(1, chosen, True)
            allowed = allowed[:, :, None].expand(n, groups, e // groups).reshape(n, e)
            biased = biased.masked_fill(~allowed, float("-inf"))
        idx = biased.topk(k, -1).indices
        weight = s.gather(1, idx)
        if opt.get("norm_topk_prob", True):
            weight = weight / (weight.sum(-1, keepdim=True) + 1e-20)
        weight = weight * opt.get("routed_scaling_factor", 1.0)
        # Sequence-wise balance: f from the plain (unbiased, ungrouped) top-K, P from s / sum s.
        plain = s.detach().topk(k, -1).indices
        dist = s / s.sum(-1, keepdim=True)
        seqs = n // seq
        value = 0.0
        for q in range(seqs):
            rows = slice(q * seq, (q + 1) * seq)
            count = F.one_hot(plain[rows].reshape(-1), e).sum(0).to(s.dtype)
            value = value + (e / (k * seq) * count * dist[rows].mean(0)).sum()
        return idx, weight, [(value / seqs, opt.get("seq_aux_coeff", 1e-4))]
    raise ValueError("router not in the reference: " + name)


def kept_slots(idx, weight, m):
    n, k = idx.shape
    e = m["num_experts"]
    kept = torch.ones(n, k, dtype=torch.bool)
    cf = m["capacity_factor"]
    if cf <= 0:
        return kept
    cap = max(1, math.ceil(cf * n * k / e))
    for ex in range(e):
        slots = [(t, j) for t in range(n) for j in range(k) if int(idx[t, j]) == ex]
        if m["drop_policy"] == "position":
            slots.sort(key=lambda s: (s[1], s[0]))
        else:
            slots.sort(key=lambda s: (-float(weight[s[0], s[1]]), s[0], s[1]))
        for t, j in slots[cap:]:
            kept[t, j] = False
    return kept


def moe(x, w, p, cfg, inp, seq):
    m = cfg["moe"]
    idx, weight, losses = route(x, w, p, cfg, inp, seq)
    kept = kept_slots(idx, weight.detach(), m)
    y = torch.zeros_like(x)
    for t in range(x.shape[0]):
        for j in range(idx.shape[1]):
            if kept[t, j]:
                e = int(idx[t, j])
                out = swiglu(x[t:t + 1], w[p + "experts.gate_proj.weight"][e],
                             w[p + "experts.up_proj.weight"][e],
                             w[p + "experts.down_proj.weight"][e])
                y = y.index_add(0, torch.tensor([t]), weight[t, j] * out)
    if m["shared_experts"] > 0:
        shared = swiglu(x, w[p + "shared_experts.gate_proj.weight"],
                        w[p + "shared_experts.up_proj.weight"],
                        w[p + "shared_experts.down_proj.weight"])
        if m["shared_gate"]:
            shared = torch.sigmoid(x @ w[p + "shared_expert_gate.weight"].t()) * shared
        y = y + shared
    return y, idx, losses


def is_moe(cfg, layer):
    m, first = cfg["moe"], cfg["first_k_dense"]
    return m["num_experts"] > 0 and layer >= first and (layer - first) % cfg["moe_every"] == 0


def compute(inp, prm):
    cfg = prm["config"]
    tokens, targets = inp["tokens"], inp["targets"]
    b, t = tokens.shape
    buffers = {n for n in inp if n.endswith("e_score_correction_bias")}
    w = {n: v.clone().requires_grad_(True) for n, v in inp.items()
         if v.is_floating_point() and n not in buffers}
    eps = cfg["norm_eps"]
    x = w["model.embed_tokens.weight"][tokens.reshape(-1)]
    out = {}
    aux = 0.0
    for layer in range(cfg["n_layers"]):
        p = "model.layers.%d." % layer
        h = x + attention(rms_norm(x, w[p + "input_layernorm.weight"], eps), w,
                          p + "self_attn.", cfg, b, t)
        n2 = rms_norm(h, w[p + "post_attention_layernorm.weight"], eps)
        if is_moe(cfg, layer):
            y, idx, losses = moe(n2, w, p + "mlp.", cfg, inp, t)
            out["experts_%d" % layer] = idx.reshape(-1)
            for value, coeff in losses:
                aux = aux + coeff * value
        else:
            y = swiglu(n2, w[p + "mlp.gate_proj.weight"], w[p + "mlp.up_proj.weight"],
                       w[p + "mlp.down_proj.weight"])
        x = h + y
    head = w["model.embed_tokens.weight"] if cfg["tie_embeddings"] else w["lm_head.weight"]
    logits = rms_norm(x, w["model.norm.weight"], eps) @ head.t()
    flat = targets.reshape(-1)
    if (flat != -100).any():
        ce = F.cross_entropy(logits, flat, ignore_index=-100)
    else:
        ce = 0.0 * logits.sum()
    loss = ce + aux
    loss.backward()
    out.update({"loss": loss, "ce": ce, "aux": torch.as_tensor(aux), "logits": logits})
    for name, v in w.items():
        out["d_" + name] = v.grad if v.grad is not None else torch.zeros_like(v)
    return out


run(compute)
