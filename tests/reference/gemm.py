"""GEMM and matvec forward and backward, written from the definitions
c = alpha * op(a) @ op(b) (+ c0 when accumulating) and y = op(a) @ x (+ y0), with autograd."""
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
import torch  # noqa: E402
from common import leaf, run  # noqa: E402


def op(t, trans):
    return t.t() if trans else t


def compute(inp, params):
    if params["op"] == "matvec":
        a, x = leaf(inp["a"]), leaf(inp["x"])
        y = op(a, params["trans_a"]) @ x
        if params["accumulate"]:
            y = y + inp["y0"]
        return {"y": y}
    a, b = leaf(inp["a"]), leaf(inp["b"])
    c = params["alpha"] * (op(a, params["trans_a"]) @ op(b, params["trans_b"]))
    c.backward(inp["d_c"])
    if params["accumulate"]:
        c = c + inp["c0"]
    return {"c": c, "d_a": a.grad, "d_b": b.grad}


run(compute)
