#!/usr/bin/env python3
"""Writes a seed corpus for fuzz_train_config into the folder given as the only argument: the
embedded default model's train.toml and config.json (a Mixtral config with switchyard's
lm_config block), the training config again as JSON, and a switchyard_moe checkpoint config.
Python standard library only."""
import json
import os
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
DEFAULT = os.path.join(ROOT, "models", "default")

TRAIN_JSON = {
    "model": {"vocab_size": 300, "d_model": 32, "n_layers": 2, "n_heads": 4, "n_kv_heads": 2,
              "seq_len": 16, "moe": {"num_experts": 4, "top_k": 2, "expert_ffn": 24,
                                     "router": "deepseek", "router_options": {"groups": 2}}},
    "data": {"files": ["a.txt"], "validation_fraction": 0.1},
    "train": {"batch_size": 2, "grad_accum": 2, "tokens": 4096, "seed": 3},
    "optim": {"lr": 1e-3, "schedule": "wsd", "warmup_steps": 2},
    "output": {"dir": "runs/x", "save_dtype": "bf16"},
}


def main():
    folder = sys.argv[1]
    os.makedirs(folder, exist_ok=True)
    seeds = {"train.json": json.dumps(TRAIN_JSON, indent=1).encode()}
    for name in ("train.toml", "config.json"):
        with open(os.path.join(DEFAULT, name), "rb") as f:
            seeds["default_" + name] = f.read()
    for name, data in seeds.items():
        with open(os.path.join(folder, "seed_" + name), "wb") as f:
            f.write(data)


if __name__ == "__main__":
    main()
