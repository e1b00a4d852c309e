"""Cross-entropy with ignore_index, mean over non-ignored tokens, through
torch.nn.functional.cross_entropy and autograd (float64).
Inputs: logits [..., V], targets [...] (int), params: ignore_index, d_loss.
Outputs: loss (scalar), token_loss [...] (reduction="none"), d_logits [..., V]."""
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
import torch.nn.functional as F  # noqa: E402
from common import leaf, run  # noqa: E402


def compute(inp, params):
    logits = leaf(inp["logits"])
    vocab = logits.shape[-1]
    flat = logits.reshape(-1, vocab)
    targets = inp["targets"].reshape(-1)
    ignore = params["ignore_index"]
    loss = F.cross_entropy(flat, targets, ignore_index=ignore, reduction="mean")
    loss.backward(loss.new_tensor(params["d_loss"]))
    token_loss = F.cross_entropy(flat.detach(), targets, ignore_index=ignore, reduction="none")
    return {
        "loss": loss.reshape(1),
        "token_loss": token_loss.reshape(inp["targets"].shape),
        "d_logits": logits.grad,
    }


run(compute)
