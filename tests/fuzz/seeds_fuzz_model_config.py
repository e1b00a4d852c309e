#!/usr/bin/env python3
"""Writes a seed corpus for fuzz_model_config into the folder given as the only argument.

For every architecture case of the model tests (tests/reference/model_arch.py): its config.json,
and a GGUF file with the same model's metadata (model_arch_gguf.metadata) and the tensors the GGUF
readers look at (token embeddings of a vocabulary of 8, each routed layer's router),
zero-filled. Plus a
switchyard_moe config.json with a router block. Uses the reference scripts' numpy.
"""
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "reference"))
from model_arch import CASES  # noqa: E402
from model_arch_gguf import gguf_bytes, metadata  # noqa: E402
from model_arch_math import is_sparse_layer  # noqa: E402

SWITCHYARD = {
    "model_type": "switchyard_moe", "vocab_size": 96, "hidden_size": 32, "num_hidden_layers": 2,
    "num_attention_heads": 4, "num_key_value_heads": 2, "intermediate_size": 48,
    "num_experts": 4, "num_experts_per_tok": 2, "moe_intermediate_size": 16,
    "first_k_dense_replace": 1, "moe_layer_freq": 1, "rms_norm_eps": 1e-6, "rope_theta": 10000.0,
    "max_position_embeddings": 128, "qk_norm": True,
    "router": {"name": "topk_softmax", "options": {"normalize": True}},
}


def gguf_seed(case, cfg):
    cfg = dict(cfg, vocab_size=8)  # the embedding's values are never read: keep the seed small
    experts = cfg.get("num_local_experts") or cfg.get("num_experts") or cfg.get("n_routed_experts")
    tensors = [("token_embd.weight", np.zeros((cfg["vocab_size"], cfg["hidden_size"]), "f4"))]
    for layer in range(cfg["num_hidden_layers"]):
        if is_sparse_layer(cfg, layer):
            tensors.append(("blk.{}.ffn_gate_inp.weight".format(layer),
                            np.zeros((experts, cfg["hidden_size"]), "f4")))
    return gguf_bytes(metadata(case, cfg), tensors)


def main():
    folder = sys.argv[1]
    os.makedirs(folder, exist_ok=True)
    seeds = {"switchyard.json": json.dumps(SWITCHYARD).encode()}
    for case, cfg in CASES.items():
        seeds[case + ".json"] = json.dumps(cfg, indent=1).encode()
        seeds[case + ".gguf"] = gguf_seed(case, cfg)
    for name, data in seeds.items():
        with open(os.path.join(folder, "seed_" + name), "wb") as f:
            f.write(data)


if __name__ == "__main__":
    main()
