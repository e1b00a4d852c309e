"""Rotary position embedding, written from the HF transformers formulas: inv_freq computed in
float32 exactly as HF does, `1.0 / (base ** (torch.arange(0, dim, 2).float() / dim))`; the angle
pos * inv_freq and its cos/sin then in float64 (HF uses float32 there, which at position 4096
loses ~2e-4 rad; the kernel under test computes them in double, so the comparison is tight).
NeoX layout: HF `rotate_half` (pairs i, i + R/2); interleaved: GPT-J `rotate_every_two` (pairs
2i, 2i + 1). Dims past rotary_dim pass through. Backward by autograd."""
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
import torch  # noqa: E402
from common import leaf, run  # noqa: E402


def rotate_half(x):
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def rotate_every_two(x):
    return torch.stack((-x[..., 1::2], x[..., ::2]), dim=-1).flatten(-2)


def compute(inp, params):
    x = leaf(inp["x"])  # [T, H, Dh]
    tokens = x.shape[0]
    rotary = params["rotary_dim"]
    inv_freq = 1.0 / (params["theta"] ** (torch.arange(0, rotary, 2, dtype=torch.int64).float() / rotary))
    assert inv_freq.dtype == torch.float32
    if "positions" in inp:
        pos = inp["positions"]
    else:
        pos = torch.arange(tokens, dtype=torch.int64) + params["offset"]
    angle = pos.to(torch.float64)[:, None] * inv_freq.to(torch.float64)[None, :]  # [T, R/2]
    if params["layout"] == "neox":
        cos, sin = torch.cat((angle.cos(), angle.cos()), -1), torch.cat((angle.sin(), angle.sin()), -1)
        rotate = rotate_half
    else:
        cos, sin = angle.cos().repeat_interleave(2, -1), angle.sin().repeat_interleave(2, -1)
        rotate = rotate_every_two
    cos, sin = cos[:, None, :], sin[:, None, :]  # broadcast over heads
    x_rot, x_pass = x[..., :rotary], x[..., rotary:]
    y = torch.cat((x_rot * cos + rotate(x_rot) * sin, x_pass), dim=-1)
    y.backward(inp["d_out"])
    return {"y": y, "d_x": x.grad, "inv_freq": inv_freq}


run(compute)
