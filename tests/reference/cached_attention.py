"""Attention of T new queries over S cached keys/values (inference), written from the definition:
query t sits at position p = S - T + t and attends to keys s <= p, and only to s > p - window when
a sliding window is set (HF Mistral/Mixtral's mask: s <= p - window is hidden). Grouped-query
heads as attention.py; keys and values may have different head dims (MLA)."""
import math
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
import torch  # noqa: E402
from common import run  # noqa: E402


def compute(inp, params):
    q, k, v = inp["q"], inp["k"], inp["v"]  # [T, Hq, Dk], [S, Hkv, Dk], [S, Hkv, Dv]
    tokens, q_heads, key_dim = q.shape
    cached = k.shape[0]
    group = q_heads // k.shape[1]
    k, v = k.repeat_interleave(group, dim=1), v.repeat_interleave(group, dim=1)
    scale = params["scale"] if params["scale"] else 1.0 / math.sqrt(key_dim)
    scores = torch.einsum("thd,shd->hts", q, k) * scale
    pos = torch.arange(tokens)[:, None] + (cached - tokens)
    s = torch.arange(cached)[None, :]
    hidden = s > pos
    if params["window"]:
        hidden = hidden | (s <= pos - params["window"])
    scores = scores.masked_fill(hidden, float("-inf"))
    return {"out": torch.einsum("hts,shd->thd", torch.softmax(scores, dim=-1), v)}


run(compute)
