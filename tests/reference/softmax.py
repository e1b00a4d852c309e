"""Softmax and log-softmax over the last dimension, forward and backward, through PyTorch's own
torch.softmax / torch.log_softmax and autograd (float64)."""
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
import torch  # noqa: E402
from common import leaf, run  # noqa: E402


def compute(inp, params):
    x = leaf(inp["x"])
    y = torch.softmax(x, dim=-1)
    y.backward(inp["d_out"])
    x_log = leaf(inp["x"])
    log_y = torch.log_softmax(x_log, dim=-1)
    log_y.backward(inp["d_out"])
    return {"y": y, "d_x": x.grad, "log_y": log_y, "log_d_x": x_log.grad}


run(compute)
