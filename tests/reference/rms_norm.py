"""RMSNorm forward and backward, written from the definition y = x / sqrt(mean(x^2) + eps) * w."""
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
import torch  # noqa: E402
from common import leaf, run  # noqa: E402


def compute(inp, params):
    x, w = leaf(inp["x"]), leaf(inp["weight"])
    y = x * torch.rsqrt(x.pow(2).mean(dim=-1, keepdim=True) + params["eps"]) * w
    y.backward(inp["d_out"])
    return {"y": y, "d_x": x.grad, "d_weight": w.grad}


run(compute)
