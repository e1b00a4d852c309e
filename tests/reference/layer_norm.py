"""LayerNorm forward and backward through torch.nn.functional.layer_norm and autograd (float64),
with or without bias (params["bias"]); also the saved mean and 1/sqrt(var + eps) per row."""
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from common import leaf, run  # noqa: E402


def compute(inp, params):
    x, w = leaf(inp["x"]), leaf(inp["weight"])
    b = leaf(inp["bias"]) if params["bias"] else None
    eps = params["eps"]
    y = F.layer_norm(x, (x.shape[-1],), w, b, eps)
    y.backward(inp["d_out"])
    flat = inp["x"].reshape(-1, x.shape[-1])
    mean = flat.mean(dim=-1)
    rstd = torch.rsqrt(flat.var(dim=-1, unbiased=False) + eps)
    out = {"y": y, "d_x": x.grad, "d_weight": w.grad, "mean": mean, "rstd": rstd}
    if b is not None:
        out["d_bias"] = b.grad
    return out


run(compute)
