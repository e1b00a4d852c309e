"""Reference conversions for the 16-bit float types, by NumPy (f16) and PyTorch (bf16).

Inputs: x (f32 values to round), h (i32 f16 bit patterns to widen). Outputs: f16 and bf16 bit
patterns of x (round to nearest, ties to even, as IEEE 754 and both libraries define it), and
the f32 values of h.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
import numpy as np  # noqa: E402
import torch  # noqa: E402
from common import run  # noqa: E402


def compute(inp, params):
    # Inputs arrive as float64 holding the exact f32 values, so one rounding happens below.
    x32 = inp["x"].numpy().astype(np.float32)
    f16_bits = x32.astype(np.float16).view(np.uint16).astype(np.int64)
    bf16 = torch.from_numpy(x32).to(torch.bfloat16)
    bf16_bits = bf16.view(torch.int16).to(torch.int64) & 0xFFFF
    widened = inp["h"].numpy().astype(np.uint16).view(np.float16).astype(np.float64)
    return {"f16_bits": torch.from_numpy(f16_bits), "bf16_bits": bf16_bits,
            "widened": torch.from_numpy(widened)}


run(compute)
