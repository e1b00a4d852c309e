"""Scaled dot-product attention with grouped-query heads, written from the definition
out = softmax(scale * q k^T + mask) v per head (torch 1.13 has no scaled_dot_product_attention),
kv head g serving query heads g * (Hq / Hkv) ... (g + 1) * (Hq / Hkv) - 1; causal mask s > t.
Also the log-sum-exp of each masked score row, and gradients by autograd."""
import math
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
import torch  # noqa: E402
from common import leaf, run  # noqa: E402


def compute(inp, params):
    q, k, v = leaf(inp["q"]), leaf(inp["k"]), leaf(inp["v"])
    batched = q.dim() == 4
    qb, kb, vb = (t if batched else t.unsqueeze(0) for t in (q, k, v))  # [B, T, H, Dh]
    tokens, q_heads, head_dim = qb.shape[1:]
    group = q_heads // kb.shape[2]
    kb, vb = kb.repeat_interleave(group, dim=2), vb.repeat_interleave(group, dim=2)
    scale = params["scale"] if params["scale"] else 1.0 / math.sqrt(head_dim)
    scores = torch.einsum("bthd,bshd->bhts", qb, kb) * scale
    if params["causal"]:
        future = torch.ones(tokens, tokens, dtype=torch.bool).triu(1)
        scores = scores.masked_fill(future, float("-inf"))
    lse = torch.logsumexp(scores, dim=-1)  # [B, Hq, T]
    out = torch.einsum("bhts,bshd->bthd", torch.softmax(scores, dim=-1), vb)
    if not batched:
        out, lse = out.squeeze(0), lse.squeeze(0)
    out.backward(inp["d_out"])
    return {"out": out, "lse": lse, "d_q": q.grad, "d_k": k.grad, "d_v": v.grad}


run(compute)
