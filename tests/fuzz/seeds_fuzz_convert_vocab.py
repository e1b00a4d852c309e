#!/usr/bin/env python3
"""Writes a seed corpus for fuzz_convert_vocab into the folder given as the only argument.

Each seed is a tokenizer.json, a zero byte, then a tokenizer_config.json (fuzz_convert_vocab.cpp):
the tokenizer.json files of seeds_fuzz_tokenizer.py (byte-level BPE with the known pre-tokenizers,
SentencePiece-style BPE), each with no tokenizer_config.json and with one naming special tokens,
add_bos_token / add_eos_token and a chat template. Python standard library only.
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import seeds_fuzz_tokenizer  # noqa: E402

TOKENIZER_CONFIG = {"bos_token": "<s>", "eos_token": {"content": "</s>"}, "pad_token": None,
                    "unk_token": "<unk>", "add_bos_token": True, "add_eos_token": False,
                    "chat_template": "{% for m in messages %}{{ m.content }}{% endfor %}"}


def main():
    folder = sys.argv[1]
    os.makedirs(folder, exist_ok=True)
    config = json.dumps(TOKENIZER_CONFIG).encode()
    for name, data in seeds_fuzz_tokenizer.seeds():
        if name.startswith("gguf"):
            continue
        for suffix, tail in (("", b""), ("_config", b"\0" + config)):
            with open(os.path.join(folder, "seed_" + name + suffix), "wb") as f:
                f.write(data + tail)


if __name__ == "__main__":
    main()
