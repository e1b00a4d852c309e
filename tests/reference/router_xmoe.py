"""X-MoE router reference (Chi et al. 2022; routing.md A9), written from the paper's math.

Inputs per case: x [T, D], proj [P, D], emb [E, P], tau [1], d_weight [T*K].
Params: top_k, normalize, aux_loss_coeff.
    u = x proj^T; s = <u/max(|u|,1e-4), e/max(|e|,1e-4)> / max(tau, 1e-4); p = softmax(s)
    experts: top-k of p; weight = p (or p / sum of the K chosen when normalize)
    load_balance = E * sum_e count_e/(T K) * mean_t p[t, e]
Objective: sum weight * d_weight + aux_loss_coeff * load_balance.
Outputs: expert, weight, loss_load_balance, entropy, d_x, d_proj, d_emb, d_tau.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from common import entropy, leaf, load_balance, run  # noqa: E402


def compute(inp, prm):
    x, proj, emb, tau = leaf(inp["x"]), leaf(inp["proj"]), leaf(inp["emb"]), leaf(inp["tau"])
    k = prm["top_k"]
    u = F.normalize(x @ proj.t(), p=2.0, dim=1, eps=1e-4)
    e = F.normalize(emb, p=2.0, dim=1, eps=1e-4)
    t = tau.clamp_min(1e-4)
    p = torch.softmax(u @ e.t() / t, -1)
    vals, idx = p.topk(k, -1)
    g = vals / vals.sum(-1, keepdim=True) if prm["normalize"] else vals
    lb = load_balance(p, idx, k)
    total = (g.reshape(-1) * inp["d_weight"]).sum() + prm["aux_loss_coeff"] * lb
    total.backward()
    return {"expert": idx, "weight": g.reshape(-1), "loss_load_balance": lb,
            "entropy": entropy(p.detach()), "d_x": x.grad, "d_proj": proj.grad,
            "d_emb": emb.grad, "d_tau": tau.grad}


run(compute)
