"""Embedding lookup and its gradient, torch.nn.functional.embedding with autograd."""
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from common import leaf, run  # noqa: E402


def compute(inp, params):
    table = leaf(inp["table"])
    out = F.embedding(inp["ids"], table)
    out.backward(inp["d_out"])
    return {"out": out, "d_table": table.grad}


run(compute)
