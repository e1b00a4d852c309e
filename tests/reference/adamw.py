"""torch.optim.AdamW and torch.nn.utils.clip_grad_norm_ in float32 (the optimizer's own precision:
a float64 run would differ from any f32 optimizer by more than its rounding).

Inputs: p<i> (initial parameters) and g<i>_s<s> (the gradient of parameter i at step s).
params: lr (one per step), beta1, beta2, eps, weight_decay, decay (one flag per parameter:
false puts it in a param group with weight_decay 0, as trainers do for norms and biases),
max_norm (> 0: clip_grad_norm_ before each step; 0: no clipping), steps.
Outputs: p<i> after the last step, m<i> / v<i> (exp_avg / exp_avg_sq), norm_s<s> (the norm
clip_grad_norm_ returned before step s) and g<i>_s<s>_clipped (the gradient after clipping).
"""
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
import torch  # noqa: E402
from common import run  # noqa: E402


def compute(inp, params):
    n = len(params["decay"])
    ps = [torch.nn.Parameter(inp[f"p{i}"].to(torch.float32).clone()) for i in range(n)]
    groups = [
        {"params": [p for p, d in zip(ps, params["decay"]) if d], "weight_decay": params["weight_decay"]},
        {"params": [p for p, d in zip(ps, params["decay"]) if not d], "weight_decay": 0.0},
    ]
    groups = [g for g in groups if g["params"]]
    opt = torch.optim.AdamW(
        groups,
        lr=params["lr"][0],
        betas=(params["beta1"], params["beta2"]),
        eps=params["eps"],
        foreach=False,
    )
    out = {}
    for s in range(params["steps"]):
        for i, p in enumerate(ps):
            p.grad = inp[f"g{i}_s{s}"].to(torch.float32).clone()
        if params["max_norm"] > 0:
            norm = torch.nn.utils.clip_grad_norm_(ps, params["max_norm"])
            out[f"norm_s{s}"] = norm.reshape(1)
            for i, p in enumerate(ps):
                out[f"g{i}_s{s}_clipped"] = p.grad.clone()
        for g in opt.param_groups:
            g["lr"] = params["lr"][s]
        opt.step()
    for i, p in enumerate(ps):
        out[f"p{i}"] = p.detach()
        state = opt.state[p]
        out[f"m{i}"] = state["exp_avg"]
        out[f"v{i}"] = state["exp_avg_sq"]
    return out


run(compute)
