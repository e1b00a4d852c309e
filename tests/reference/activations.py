"""SiLU, GELU (exact and tanh) and SwiGLU, forward and backward, through torch.nn.functional
and autograd (float64). params["op"] picks the op:
  silu, gelu, gelu_tanh: inputs x, d_out -> y, d_x
  swiglu:                inputs gate, up, d_out -> y, d_gate, d_up   (y = silu(gate) * up)
  swiglu_fused:          inputs gate_up [..., 2F] (gate first, then up), d_out -> y, d_gate_up
"""
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
import torch.nn.functional as F  # noqa: E402
from common import leaf, run  # noqa: E402


def compute(inp, params):
    op = params["op"]
    if op in ("silu", "gelu", "gelu_tanh"):
        x = leaf(inp["x"])
        if op == "silu":
            y = F.silu(x)
        else:
            y = F.gelu(x, approximate="tanh" if op == "gelu_tanh" else "none")
        y.backward(inp["d_out"])
        return {"y": y, "d_x": x.grad}
    if op == "swiglu":
        gate, up = leaf(inp["gate"]), leaf(inp["up"])
        y = F.silu(gate) * up
        y.backward(inp["d_out"])
        return {"y": y, "d_gate": gate.grad, "d_up": up.grad}
    if op == "swiglu_fused":
        gate_up = leaf(inp["gate_up"])
        gate, up = gate_up.chunk(2, dim=-1)
        y = F.silu(gate) * up
        y.backward(inp["d_out"])
        return {"y": y, "d_gate_up": gate_up.grad}
    raise ValueError("unknown op " + op)


run(compute)
