"""Default MoE reference (Panda, Baherwani et al. 2025, arXiv 2504.12463; routing.md A5).

Mode "forward" (params {"mode": "forward", "top_k": K, "normalize": bool, "aux_loss_coeff",
"z_loss_coeff"}): inputs x [T, D], gate weight w [E, D], default vectors ema [E, D], d_weight
[T*K], d_out [T, D].
    p = softmax(x w^T), A_t = top-K of p_t
    weight = p at A_t (raw) or renormalised over A_t
    extra_out_t = sum_{e not in A_t} p_te ema_e              (ema is a constant)
    objective = sum weight * d_weight + sum extra_out * d_out + sum_losses coeff * loss
Outputs: expert, weight, extra_out, loss_load_balance, loss_z_loss, entropy, d_x, d_w.

Mode "ema" (params {"mode": "ema", "beta": b}): inputs ema0 [E, D], row_expert [R] (int),
row_out [R, D], row_step [R] (int, the optimizer step each row belongs to, 0..S-1), and steps
[1] = S. After step s, every expert with >= 1 row in that step moves to
    ema_e <- beta ema_e + (1 - beta) * mean(rows of e in step s);
the others keep theirs. Output: ema [S, E, D], the state after each step.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
import torch  # noqa: E402
from common import entropy, leaf, load_balance, run  # noqa: E402


def forward(inp, prm):
    x, w = leaf(inp["x"]), leaf(inp["w"])
    ema = inp["ema"]
    k = prm["top_k"]
    logits = x @ w.t()
    p = torch.softmax(logits, -1)
    vals, idx = p.topk(k, -1)
    g = vals / vals.sum(-1, keepdim=True) if prm["normalize"] else vals
    chosen = torch.zeros_like(p).scatter(1, idx, 1.0)
    extra = (p * (1.0 - chosen)) @ ema
    losses = {"load_balance": load_balance(p, idx, k),
              "z_loss": torch.logsumexp(logits, -1).pow(2).mean()}
    coeffs = {"load_balance": prm["aux_loss_coeff"], "z_loss": prm["z_loss_coeff"]}
    total = (g.reshape(-1) * inp["d_weight"]).sum() + (extra * inp["d_out"]).sum()
    for name, value in losses.items():
        total = total + coeffs[name] * value
    total.backward()
    out = {"expert": idx, "weight": g.reshape(-1), "extra_out": extra,
           "entropy": entropy(p.detach()), "d_x": x.grad, "d_w": w.grad}
    for name, value in losses.items():
        out["loss_" + name] = value
    return out


def ema_steps(inp, prm):
    ema = inp["ema0"].clone()
    beta = prm["beta"]
    states = []
    for s in range(int(inp["steps"][0])):
        in_step = inp["row_step"] == s
        for e in range(ema.shape[0]):
            rows = inp["row_out"][in_step & (inp["row_expert"] == e)]
            if rows.shape[0] > 0:
                ema[e] = beta * ema[e] + (1.0 - beta) * rows.mean(0)
        states.append(ema.clone())
    return {"ema": torch.stack(states)}


def compute(inp, prm):
    return forward(inp, prm) if prm["mode"] == "forward" else ema_steps(inp, prm)


run(compute)
