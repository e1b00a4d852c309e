"""MoxE entropy-aware router reference (arXiv 2505.01459; routing.md A7), written from the
paper's math as released in thiomajid/moxe (gate.py BiasConditionedGate, ops.py).

Inputs per case: x [T, D], w [E, D], b [E] (absent: no gate bias), wd [1, D], bd [1],
d_weight [T*K]. Params: top_k, gamma, threshold, modulation, group_loss, z_loss_coeff,
aux_loss_coeff, d_loss_coeff, group_loss_coeff.
Objective: sum weight * d_weight + sum_losses coeff * loss.
Outputs: expert, weight, loss_<name>, entropy (of the conditioned p), d_x, d_w, d_b, d_wd, d_bd.
"""
import math
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
import torch  # noqa: E402
from common import entropy, leaf, run  # noqa: E402

EPS = 1e-8


def group_loss(kind, pa, pb):
    if kind == "kl_div":
        return pa * torch.log(2 * pa + EPS) + pb * torch.log(2 * pb + EPS)
    if kind == "self_balance":
        return (pa - pb) ** 2
    if kind == "bounded":
        return (pa - 0.5) ** 2 + (pb - 0.5) ** 2
    ma, mb = 0.25 + 0.5 * pa, 0.25 + 0.5 * pb
    kl_pm = pa * torch.log((pa + EPS) / (ma + EPS)) + pb * torch.log((pb + EPS) / (mb + EPS))
    kl_qm = 0.5 * torch.log(0.5 / (ma + EPS)) + 0.5 * torch.log(0.5 / (mb + EPS))
    return 0.5 * (kl_pm + kl_qm)


def compute(inp, prm):
    x, w, wd, bd = leaf(inp["x"]), leaf(inp["w"]), leaf(inp["wd"]), leaf(inp["bd"])
    b = leaf(inp["b"]) if "b" in inp else None
    k, gamma, tau = prm["top_k"], prm["gamma"], prm["threshold"]
    t, e = x.shape[0], w.shape[0]
    half = e // 2
    d = torch.sigmoid(x @ wd.t() + bd)  # [T, 1]
    if prm["modulation"] == "standard":
        s = gamma * d
    elif prm["modulation"] == "proportional":
        s = gamma * torch.relu(d - tau)
    else:
        s = gamma * d * (d > tau).to(d.dtype)
    logits = x @ w.t() + (b if b is not None else 0.0)
    sign = torch.cat([torch.ones(half), -torch.ones(e - half)])
    cond = logits + s * sign
    p = torch.softmax(cond, -1)
    vals, idx = p.topk(k, -1)
    g = vals / vals.sum(-1, keepdim=True)
    losses = {}
    losses["z_loss"] = torch.logsumexp(cond, -1).pow(2).mean()
    usage = torch.zeros(e).index_add(0, idx.reshape(-1), vals.reshape(-1)) / (t * k)
    losses["load_balance"] = ((usage - 1.0 / e) ** 2).mean() * e
    q = torch.softmax(logits, -1)
    h = -(q * torch.log(q.clamp_min(1e-6))).sum(-1) / math.log(e)
    losses["d_loss"] = ((d.reshape(-1) - h) ** 2).mean()
    pa = p[:, :half].sum(-1).mean()
    pb = p[:, half:].sum(-1).mean()
    losses["group_loss"] = group_loss(prm["group_loss"], pa, pb)
    coeffs = {"z_loss": prm["z_loss_coeff"], "load_balance": prm["aux_loss_coeff"],
              "d_loss": prm["d_loss_coeff"], "group_loss": prm["group_loss_coeff"]}
    total = (g.reshape(-1) * inp["d_weight"]).sum()
    for name, value in losses.items():
        total = total + coeffs[name] * value
    total.backward()
    out = {"expert": idx, "weight": g.reshape(-1), "entropy": entropy(p.detach()),
           "d_x": x.grad, "d_w": w.grad, "d_wd": wd.grad, "d_bd": bd.grad}
    if b is not None:
        out["d_b"] = b.grad
    for name, value in losses.items():
        out["loss_" + name] = value
    return out


run(compute)
