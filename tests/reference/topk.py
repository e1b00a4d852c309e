"""Top-k values and indices per row (torch.topk, sorted, largest first) and the gradient of the
values with respect to x by autograd. Inputs must have no ties: torch's tie order is unspecified."""
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
import torch  # noqa: E402
from common import leaf, run  # noqa: E402


def compute(inp, params):
    x = leaf(inp["x"])
    values, indices = torch.topk(x, params["k"], dim=-1, largest=True, sorted=True)
    values.backward(inp["d_values"])
    return {"values": values, "indices": indices, "d_x": x.grad}


run(compute)
