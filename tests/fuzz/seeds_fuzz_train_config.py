#!/usr/bin/env python3
"""Writes a seed corpus for fuzz_train_config into the folder given as the only argument: the
embedded default model's train.toml and config.json (a Mixtral config with switchyard's
lm_config block), the training config again as JSON, a batch iterator state as trainer_state.json
holds it, corpus samples (plain text, JSONL), a study run's record and train.jsonl events, and a
study's summary.json.
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

BATCH_STATE = {"seed": 7, "batch_size": 2, "sequences": 6, "shuffle": True, "epoch": 1,
               "position": 2}

CORPUS_TEXT = "First document,\r\nits second line.\n\n \t\nSecond document.\n"
CORPUS_JSONL = '{"text": "one"}\n\n{"text": "two", "id": 2}\n{"text": ""}\n'

STUDY_RUN = {"variant": "e8k2", "router": "remoe", "options": {"target_sparsity": 0.75},
             "settings": "", "causal": True, "stable": True, "finished": True, "error": "",
             "params_total": 1000, "params_active": 400, "steps": 10, "tokens": 5120,
             "skipped_steps": 0, "val_loss": 3.5, "val_ppl": 33.1, "max_vio": 0.4,
             "dropped": 0.0, "active_per_token": 2.0, "tokens_per_s": 900.0,
             "val_curve": [[5, 2560, 4.0], [10, 5120, 3.5]], "max_vio_curve": [[1, 512, None]],
             "sparsity_curve": [], "lambda_curve": [], "final_load": [[3, 5], [4, 4]]}

DENSE_RUN = dict(STUDY_RUN, variant="dense", router="dense_ffn", options={}, val_loss=3.9,
                 max_vio=None, val_curve=[[10, 5120, 3.9]], final_load=[])
STUDY_SUMMARY = {"settings": {"model": {"d_model": 32}, "tokens": 5120},
                 "variants": [{"name": "e8k2", "experts": 8, "top_k": 2, "expert_ffn": 24}],
                 "runs": [STUDY_RUN, dict(STUDY_RUN, router="topk_softmax", options={}),
                          DENSE_RUN],
                 "plots": ["loss.png"], "plot_error": "", "interrupted": False}

STEP_EVENT = {"event": "step", "step": 3, "tokens": 1536, "loss": 4.2,
              "layers": [{"layer": 0, "max_vio": 0.5, "active_per_token": 2.0,
                          "state": {"remoe.l1_coeff": 1e-4}},
                         {"layer": 1, "max_vio": 0.7, "state": [["remoe.l1_coeff", 2e-4]]}]}


def main():
    folder = sys.argv[1]
    os.makedirs(folder, exist_ok=True)
    seeds = {"train.json": json.dumps(TRAIN_JSON, indent=1).encode(),
             "batch_state.json": json.dumps(BATCH_STATE).encode(),
             "corpus.txt": CORPUS_TEXT.encode(), "corpus.jsonl": CORPUS_JSONL.encode(),
             "study_run.json": json.dumps(STUDY_RUN).encode(),
             "step_event.json": json.dumps(STEP_EVENT).encode(),
             "study_summary.json": json.dumps(STUDY_SUMMARY).encode()}
    for name in ("train.toml", "config.json"):
        with open(os.path.join(DEFAULT, name), "rb") as f:
            seeds["default_" + name] = f.read()
    for name, data in seeds.items():
        with open(os.path.join(folder, "seed_" + name), "wb") as f:
            f.write(data)


if __name__ == "__main__":
    main()
