"""The probability vector a sampler draws from, written from the definitions of llama.cpp's
default chain in float64: repetition penalty -> top-k -> top-p -> min-p -> temperature ->
softmax.

Inputs: logits [V] (-inf marks masked tokens). Params: temperature, top_k, top_p, min_p,
repeat_penalty, repeat_last_n and context (list of ids, oldest first). Output: probs [V], zero
outside the kept set (one-hot at the first maximum for temperature <= 0).
"""
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
import torch  # noqa: E402
from common import run  # noqa: E402


def compute(inp, params):
    logits = inp["logits"].clone()
    v = logits.shape[0]

    # Repetition penalty (CTRL): once per distinct id among the last repeat_last_n tokens.
    context = params["context"]
    last_n = params["repeat_last_n"]
    recent = context if last_n < 0 else context[len(context) - min(last_n, len(context)):]
    penalty = params["repeat_penalty"]
    for token in set(recent):
        value = logits[token]
        logits[token] = value / penalty if value > 0 else value * penalty

    kept = torch.isfinite(logits)
    if params["temperature"] <= 0:
        best = max(range(v), key=lambda i: (logits[i].item(), -i))  # first maximum
        probs = torch.zeros(v)
        probs[best] = 1.0
        return {"probs": probs}

    # Best first; equal logits by lower id (a stable sort of the negated logits).
    order = torch.sort(-logits, stable=True).indices
    order = order[kept[order]]

    def softmax_over(ids, temperature=1.0):
        x = logits[ids] / temperature
        e = torch.exp(x - x.max())
        return e / e.sum()

    if params["top_k"] > 0:
        order = order[: params["top_k"]]
    if params["top_p"] < 1:
        cum = torch.cumsum(softmax_over(order), 0)
        reached = (cum >= params["top_p"]).nonzero()
        count = reached[0].item() + 1 if len(reached) else len(order)
        order = order[:count]
    if params["min_p"] > 0:
        p = softmax_over(order)
        order = order[p >= params["min_p"] * p.max()]

    probs = torch.zeros(v)
    probs[order] = softmax_over(order, params["temperature"])
    return {"probs": probs}


run(compute)
