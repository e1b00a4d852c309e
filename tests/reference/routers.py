"""Router zoo references, written from the papers' math (docs: /work/shared/research/routing.md).

Every case gets x [T, D], the gate weight w [E, D] (logits = x w^T), a fixed upstream gradient
d_weight per routing slot, and params {"router": NAME, "top_k": K, ...}. The scalar objective
whose gradient the router's backward must produce is
    sum_slots weight * d_weight + sum_losses coeff * loss.
Outputs: expert (selected experts, slot order of the router), weight (per slot), loss_<name>,
entropy, d_x, d_w.
"""
import math
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
import torch  # noqa: E402
from common import leaf, run  # noqa: E402


def entropy(p):
    e = p.shape[1]
    if e == 1:
        return torch.tensor(0.0)
    h = -(p * torch.log(p.clamp_min(1e-300))).sum(-1)
    return h.mean() / math.log(e)


def load_balance(p, idx, k):
    """Switch loss with Megatron's top-k normalisation: E * sum_e f_e P_e, f_e = count_e/(T k)."""
    t, e = p.shape
    count = torch.nn.functional.one_hot(idx.reshape(-1), e).sum(0).to(p.dtype)
    return e * (count / (t * k) * p.mean(0)).sum()


def z_loss(logits):
    return torch.logsumexp(logits, -1).pow(2).mean()


def softmax_topk(inp, prm):
    """topk_softmax / switch / dense: softmax over E, top-k, raw | renorm | after weights."""
    x, w = leaf(inp["x"]), leaf(inp["w"])
    k = prm["top_k"]
    xr = x * inp["noise"] if "noise" in inp else x
    logits = xr @ w.t()
    p = torch.softmax(logits, -1)
    mode = prm["weights"]
    if mode == "after":
        vals, idx = logits.topk(k, -1)
        g = torch.softmax(vals, -1)
    else:
        vals, idx = p.topk(k, -1)
        g = vals / vals.sum(-1, keepdim=True) if mode == "renorm" else vals
    losses = {"load_balance": load_balance(p, idx, k), "z_loss": z_loss(logits)}
    coeffs = {"load_balance": prm.get("aux_loss_coeff", 0.0),
              "z_loss": prm.get("z_loss_coeff", 0.0)}
    return x, w, idx, g.reshape(-1), p, losses, coeffs


def expert_choice(inp, prm):
    """Each expert takes its top-C tokens by S = softmax over experts; weight = S[t, e]."""
    x, w = leaf(inp["x"]), leaf(inp["w"])
    p = torch.softmax(x @ w.t(), -1)
    vals, tok = p.t().topk(prm["capacity"], -1)  # [E, C]
    return x, w, tok, vals.reshape(-1), p, {}, {}


ROUTERS = {"softmax_topk": softmax_topk, "expert_choice": expert_choice}


def compute(inp, prm):
    x, w, idx, g, dist, losses, coeffs = ROUTERS[prm["router"]](inp, prm)
    total = (g * inp["d_weight"]).sum()
    for name, value in losses.items():
        total = total + coeffs[name] * value
    total.backward()
    out = {"expert": idx, "weight": g, "entropy": entropy(dist.detach()),
           "d_x": x.grad, "d_w": w.grad}
    for name, value in losses.items():
        out["loss_" + name] = value
    return out


run(compute)
