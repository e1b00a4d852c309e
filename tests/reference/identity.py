"""Hands every input back unchanged, through NumPy's own .npy reader and writer."""
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
from common import run  # noqa: E402

run(lambda inp, params: dict(inp))
