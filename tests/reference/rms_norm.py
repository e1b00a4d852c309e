"""RMSNorm forward and backward, written from the definition y = x / sqrt(mean(x^2) + eps) * w."""
import sys, os
sys.path.insert(0, os.path.dirname(__file__))
import torch
from common import load, save, leaf

folder, inp, params = load()
x, w = leaf(inp["x"]), leaf(inp["weight"])
eps = params["eps"]
y = x * torch.rsqrt(x.pow(2).mean(dim=-1, keepdim=True) + eps) * w
y.backward(inp["d_out"])
save(folder, {"y": y, "d_x": x.grad, "d_weight": w.grad})
