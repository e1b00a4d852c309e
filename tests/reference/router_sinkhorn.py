"""Sinkhorn router reference, written from Megatron-Core's sinkhorn routing (routing.md A9/B1).

Params {"top_k": K, "training": bool, "tol": t, "max_iterations": n, "z_loss_coeff": c}; inputs
x [T, D], gate weight w [E, D], d_weight [T*K].
    l = x w^T; s = sigmoid(l) if K == 1 else softmax(l)
    training: C = exp(l); d0 = 1, d1 = 1; repeat (at most n rounds, while mean|d1 change| > t)
                d0 = (1/T) / (C d1 + 1e-8);  d1 = (1/E) / (C^T d0 + 1e-8)
              experts = top-K of d1 * C * d0 per token (no gradient)
    eval:     experts = top-K of s
    weight = s at the chosen experts
    objective = sum weight * d_weight + c * mean_t logsumexp(l_t)^2
Outputs: expert [T, K] (best first), weight [T*K], loss_z_loss, entropy (of softmax(l) for K > 1,
of s / sum s for K = 1), d_x, d_w, and (training) load [E] tokens per expert.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
import torch  # noqa: E402
from common import entropy, leaf, run  # noqa: E402


def sinkhorn(cost, tol, max_iterations):
    cost = torch.exp(cost)
    d0 = torch.ones(cost.size(0))
    d1 = torch.ones(cost.size(1))
    eps = 1e-8
    error = 1e9
    rounds = 0
    while error > tol and rounds < max_iterations:
        d0 = (1.0 / d0.size(0)) / (torch.sum(d1 * cost, 1) + eps)
        d1_new = (1.0 / d1.size(0)) / (torch.sum(d0.unsqueeze(1) * cost, 0) + eps)
        error = torch.mean(torch.abs(d1_new - d1)).item()
        d1 = d1_new
        rounds += 1
    return d1 * cost * d0.unsqueeze(1)


def compute(inp, prm):
    x, w = leaf(inp["x"]), leaf(inp["w"])
    k = prm["top_k"]
    logits = x @ w.t()
    s = torch.sigmoid(logits) if k == 1 else torch.softmax(logits, -1)
    if prm["training"]:
        with torch.no_grad():
            idx = sinkhorn(logits.detach(), prm["tol"], prm["max_iterations"]).topk(k, -1).indices
    else:
        idx = s.detach().topk(k, -1).indices
    g = s.gather(1, idx).reshape(-1)
    z = torch.logsumexp(logits, -1).pow(2).mean()
    total = (g * inp["d_weight"]).sum() + prm["z_loss_coeff"] * z
    total.backward()
    dist = s / s.sum(-1, keepdim=True) if k == 1 else s
    load = torch.nn.functional.one_hot(idx.reshape(-1), s.shape[1]).sum(0).to(torch.float64)
    return {"expert": idx, "weight": g, "loss_z_loss": z, "entropy": entropy(dist.detach()),
            "d_x": x.grad, "d_w": w.grad, "load": load}


run(compute)
