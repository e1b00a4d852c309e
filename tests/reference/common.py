"""Shared plumbing for the PyTorch reference scripts.

A C++ test writes its inputs as <name>.npy and its parameters as params.json into a folder and
runs `python3 tests/reference/<op>.py FOLDER`. The script computes in float64 with PyTorch and
writes every result as out_<name>.npy (float32), which the test compares against ours.
"""
import json
import os
import sys

import numpy as np
import torch

torch.set_default_dtype(torch.float64)


def load():
    """Returns (folder, inputs as float64/int64 torch tensors, params dict)."""
    folder = sys.argv[1]
    inputs = {}
    for name in os.listdir(folder):
        if name.endswith(".npy") and not name.startswith("out_"):
            array = np.load(os.path.join(folder, name))
            tensor = torch.from_numpy(array)
            if tensor.is_floating_point():
                tensor = tensor.to(torch.float64)
            inputs[name[:-4]] = tensor
    with open(os.path.join(folder, "params.json")) as f:
        params = json.load(f)
    return folder, inputs, params


def save(folder, outputs):
    for name, value in outputs.items():
        value = value.detach()
        array = value.numpy().astype(np.float32) if value.is_floating_point() else value.numpy()
        np.save(os.path.join(folder, "out_" + name + ".npy"), array)


def leaf(t):
    """A float64 copy that records gradients."""
    return t.clone().to(torch.float64).requires_grad_(True)
