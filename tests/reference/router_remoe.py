"""ReMoE reference (Wang, Zhu, Chen, ICLR 2025, arXiv 2412.14711; routing.md A4), float64.

Modes (params["mode"]):
  router      x [T, D], w [E, D], lam [1], d_g [T, E]; params top_k, load_balance.
              g = relu(x w^T); the slots are the (t, e) with g > 0, token-major, each token's
              by descending g (ties: lower e). L1 = E / (k T^2) sum_e n_e sum_t g[t, e] with
              n_e = #{t : g[t, e] > 0} held constant (load_balance), or sum(g) / T (plain).
              Objective sum(g * d_g) + lam * L1.
              Outputs slot_token, slot_expert, gates (g), loss_l1_reg, sparsity (1 - N / (T E)),
              entropy (tokens with an active expert: H(g_t / sum g_t) / log E, mean), d_x, d_w.
  trajectory  x [sum T_i, D] holds forwards i = 0..M-1 of sizes[i] tokens; step[i] is the
              optimizer step it belongs to and training[i] whether it was a training forward.
              params lambda0, alpha, target_sparsity, steps. The controller: after step s,
              S = mean sparsity of step s's training forwards; lam *= alpha if S < target else
              lam /= alpha; no training forward: lam stays.
              Outputs lambdas [steps + 1] (lambda in force during step s; the last is after the
              final step) and step_sparsity [steps] (NaN without a training forward).
"""
import math
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
import torch  # noqa: E402
from common import entropy, leaf, run  # noqa: E402


def sparsity(g):
    return 1.0 - (g > 0).sum().item() / g.numel()


def router(inp, prm):
    x, w = leaf(inp["x"]), leaf(inp["w"])
    g = torch.relu(x @ w.t())  # relu's gradient at 0 is 0
    t, e = g.shape
    active = (g > 0).to(g.dtype)
    if prm["load_balance"]:
        n = active.sum(0)  # a count: no gradient
        l1 = e / (prm["top_k"] * t * t) * (g.sum(0) * n).sum()
    else:
        l1 = g.sum() / t
    total = (g * inp["d_g"]).sum() + inp["lam"][0] * l1
    total.backward()

    toks, exps = [], []
    gd = g.detach()
    for ti in range(t):
        chosen = [ei for ei in range(e) if gd[ti, ei] > 0]
        chosen.sort(key=lambda ei: (-float(gd[ti, ei]), ei))
        toks += [ti] * len(chosen)
        exps += chosen
    routed = gd.sum(1) > 0
    if routed.any():
        rows = gd[routed]
        ent = entropy(rows / rows.sum(1, keepdim=True))
    else:
        ent = torch.tensor(math.nan)
    return {"slot_token": torch.tensor(toks, dtype=torch.int64),
            "slot_expert": torch.tensor(exps, dtype=torch.int64),
            "gates": gd, "loss_l1_reg": l1.detach(), "sparsity": torch.tensor(sparsity(gd)),
            "entropy": ent, "d_x": x.grad, "d_w": w.grad}


def trajectory(inp, prm):
    x, w = inp["x"], inp["w"]
    steps = prm["steps"]
    per_step = [[] for _ in range(steps)]
    begin = 0
    for size, step, training in zip(inp["sizes"].tolist(), inp["step"].tolist(),
                                    inp["training"].tolist()):
        g = torch.relu(x[begin:begin + size] @ w.t())
        begin += size
        if training:
            per_step[step].append(sparsity(g))
    lam = prm["lambda0"]
    lambdas, step_sparsity = [lam], []
    for s in range(steps):
        if per_step[s]:
            mean = sum(per_step[s]) / len(per_step[s])
            lam = lam * prm["alpha"] if mean < prm["target_sparsity"] else lam / prm["alpha"]
        else:
            mean = math.nan
        step_sparsity.append(mean)
        lambdas.append(lam)
    return {"lambdas": torch.tensor(lambdas), "step_sparsity": torch.tensor(step_sparsity)}


def compute(inp, prm):
    return router(inp, prm) if prm["mode"] == "router" else trajectory(inp, prm)


run(compute)
