"""Shared plumbing for the PyTorch reference scripts.

A C++ test writes each case's inputs as <name>.npy and its parameters as params.json into its own
subfolder (case00000, case00001, ...) of one folder, and runs `python3 tests/reference/<op>.py
FOLDER`. The script calls run(compute): compute(inputs, params) gets float64 (floating) or int64
(integer) torch tensors and returns a dict of results, saved as out_<name>.npy (float32 for
floating results) beside the inputs.
"""
import json
import math
import os
import sys

import numpy as np
import torch

torch.set_default_dtype(torch.float64)


def _load(folder):
    inputs = {}
    for name in os.listdir(folder):
        if name.endswith(".npy") and not name.startswith("out_"):
            tensor = torch.from_numpy(np.load(os.path.join(folder, name)))
            if tensor.is_floating_point():
                tensor = tensor.to(torch.float64)
            elif tensor.dtype != torch.bool:
                tensor = tensor.to(torch.int64)
            inputs[name[:-4]] = tensor
    with open(os.path.join(folder, "params.json")) as f:
        params = json.load(f)
    return inputs, params


def _save(folder, outputs):
    for name, value in outputs.items():
        value = torch.as_tensor(value).detach()
        if value.is_floating_point():
            array = value.numpy().astype(np.float32)
        else:
            array = value.numpy().astype(np.int64)
        np.save(os.path.join(folder, "out_" + name + ".npy"), array)


def run(compute):
    root = sys.argv[1]
    for case in sorted(os.listdir(root)):
        folder = os.path.join(root, case)
        if os.path.isdir(folder):
            inputs, params = _load(folder)
            _save(folder, compute(inputs, params))


def leaf(t):
    """A float64 copy that records gradients."""
    return t.clone().to(torch.float64).requires_grad_(True)


# ---- shared by the router references -------------------------------------------------------


def entropy(p):
    e = p.shape[1]
    if e == 1:
        return torch.tensor(0.0)
    h = -(p * torch.log(p.clamp_min(1e-300))).sum(-1)
    return h.mean() / math.log(e)


def load_balance(p, idx, k):
    """Switch loss with Megatron's top-k normalisation: E * sum_e f_e P_e, f_e = count_e/(T k)."""
    t, e = p.shape
    count = torch.nn.functional.one_hot(idx.reshape(-1), e).sum(0).to(p.dtype)
    return e * (count / (t * k) * p.mean(0)).sum()
