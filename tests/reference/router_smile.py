"""SMILE bi-level router reference (He et al. 2022, arXiv 2212.05191; routing.md A8).

Inputs per case: x [T, D], wg [G, D] (group gate), we [E, D] (expert gate), d_weight [T*K].
Params: top_k, groups, normalize, group_balance_coeff, expert_balance_coeff.
    q = softmax(x wg^T) over G; group = argmax q
    r = softmax of x we^T within each group of M = E/G experts; the K best of the chosen group
    weight = q[group] * r[e] (or * r[e] / sum of the K chosen r when normalize)
    group_balance  = G * sum_g (T_g/T) * mean_t q[t, g]
    expert_balance = sum_g (T_g/T) * M * sum_{e in g} count_e/(T_g K) * mean_{t in g} r[t, e]
Objective: sum weight * d_weight + sum_losses coeff * loss.
Outputs: expert, weight, loss_<name>, entropy (joint q*r), d_x, d_wg, d_we.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
import torch  # noqa: E402
from common import entropy, leaf, run  # noqa: E402


def compute(inp, prm):
    x, wg, we = leaf(inp["x"]), leaf(inp["wg"]), leaf(inp["we"])
    k, groups = prm["top_k"], prm["groups"]
    t, e = x.shape[0], we.shape[0]
    m = e // groups
    q = torch.softmax(x @ wg.t(), -1)  # [T, G]
    group = q.argmax(-1)  # [T]
    r = torch.softmax((x @ we.t()).view(t, groups, m), -1)  # [T, G, M]
    r_chosen = r[torch.arange(t), group]  # [T, M]
    vals, local = r_chosen.topk(k, -1)
    idx = local + (group * m).unsqueeze(-1)
    qg = q.gather(1, group.unsqueeze(-1))  # [T, 1]
    h = vals / vals.sum(-1, keepdim=True) if prm["normalize"] else vals
    g = qg * h
    rows = torch.nn.functional.one_hot(group, groups).sum(0).to(x.dtype)  # T_g
    group_balance = groups * ((rows / t) * q.mean(0)).sum()
    count = torch.nn.functional.one_hot(idx.reshape(-1), e).sum(0).to(x.dtype).view(groups, m)
    expert_balance = 0.0
    for gi in range(groups):
        mask = group == gi
        tg = int(mask.sum())
        if tg == 0:
            continue
        f = count[gi] / (tg * k)
        p = r[mask, gi].mean(0)
        expert_balance = expert_balance + (tg / t) * m * (f * p).sum()
    losses = {"group_balance": group_balance, "expert_balance": expert_balance}
    coeffs = {"group_balance": prm["group_balance_coeff"],
              "expert_balance": prm["expert_balance_coeff"]}
    total = (g.reshape(-1) * inp["d_weight"]).sum()
    for name, value in losses.items():
        total = total + coeffs[name] * value
    total.backward()
    joint = (q.unsqueeze(-1) * r).reshape(t, e)
    out = {"expert": idx, "weight": g.reshape(-1), "entropy": entropy(joint.detach()),
           "d_x": x.grad, "d_wg": wg.grad, "d_we": we.grad}
    for name, value in losses.items():
        out["loss_" + name] = value
    return out


run(compute)
