"""Soft MoE reference (Puigcerver et al. 2023, arXiv 2308.00951; routing.md A3), float64.

Modes (params["mode"]):
  router  x [T, D], phi [S, D], scale [1], d_dispatch [S, T], d_combine [T, S];
          params num_experts, slots_per_expert, normalize.
          logits = x phi^T, or scale * xn phin^T with v_n = v / sqrt(|v|^2 + 1e-6) per row;
          dispatch = softmax over tokens (transposed to [S, T]); combine = softmax over slots.
          Objective sum(dispatch * d_dispatch) + sum(combine * d_combine).
          Outputs dispatch, combine, entropy (combine summed per expert, mean H / log E), d_x,
          d_phi, d_scale.
  layer   the same router inside the MoE layer with SwiGLU experts (gate_proj, up_proj [E, F, D],
          down_proj [E, D, F]): slot inputs dispatch @ x, expert e on its slots, y = combine @
          outputs. Objective sum(y * d_y). Outputs y, d_x, d_phi, d_scale, d_gate_proj,
          d_up_proj, d_down_proj.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from common import entropy, leaf, run  # noqa: E402


def unit_rows(v):
    return v * torch.rsqrt(v.pow(2).sum(-1, keepdim=True) + 1e-6)


def soft_routing(x, phi, scale, prm):
    if prm["normalize"]:
        logits = scale * (unit_rows(x) @ unit_rows(phi).t())
    else:
        logits = x @ phi.t()
    dispatch = torch.softmax(logits, dim=0).t()  # [S, T]: each slot mixes the tokens
    combine = torch.softmax(logits, dim=1)  # [T, S]: each token mixes the slots
    return dispatch, combine


def grad_or_zero(t):
    return t.grad if t.grad is not None else torch.zeros_like(t)


def compute(inp, prm):
    x, phi, scale = leaf(inp["x"]), leaf(inp["phi"]), leaf(inp["scale"])
    e, spe = prm["num_experts"], prm["slots_per_expert"]
    dispatch, combine = soft_routing(x, phi, scale, prm)
    out, experts = {}, {}
    if prm["mode"] == "router":
        total = (dispatch * inp["d_dispatch"]).sum() + (combine * inp["d_combine"]).sum()
        per_expert = combine.detach().reshape(x.shape[0], e, spe).sum(-1)
        out.update(dispatch=dispatch.contiguous(), combine=combine, entropy=entropy(per_expert))
    else:
        experts = {n: leaf(inp[n]) for n in ("gate_proj", "up_proj", "down_proj")}
        wg, wu, wd = experts["gate_proj"], experts["up_proj"], experts["down_proj"]
        slots_in = dispatch @ x
        outs = []
        for ex in range(e):
            rows = slots_in[ex * spe:(ex + 1) * spe]
            outs.append((F.silu(rows @ wg[ex].t()) * (rows @ wu[ex].t())) @ wd[ex].t())
        y = combine @ torch.cat(outs)
        total = (y * inp["d_y"]).sum()
        out["y"] = y
    total.backward()
    for name, t in [("x", x), ("phi", phi), ("scale", scale), *experts.items()]:
        out["d_" + name] = grad_or_zero(t)
    return out


run(compute)
