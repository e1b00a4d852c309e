#!/usr/bin/env python3
"""Writes a small seed corpus for fuzz_safetensors into the folder given as the only argument.

Each seed is a few hundred bytes at most: whole files laid out as the safetensors format says
(u64 little-endian header length, JSON header, data), a few bare headers (the fuzzer also reads
its input as header text + data), and index files. Python standard library only.
"""
import json
import os
import struct
import sys


def file_bytes(header, data=b"", pad=True):
    text = header if isinstance(header, str) else json.dumps(header, separators=(",", ":"))
    raw = text.encode()
    if pad:
        raw += b" " * ((8 - len(raw) % 8) % 8)
    return struct.pack("<Q", len(raw)) + raw + data


def entry(dtype, shape, begin, end):
    return {"dtype": dtype, "shape": shape, "data_offsets": [begin, end]}


def seeds():
    f32 = struct.pack("<6f", 0, 1, 2, 3, 4, 5)
    yield "hf_tiny", file_bytes({"attn.0": entry("F32", [1, 2, 3], 0, 24)}, f32)
    yield "empty", file_bytes({})
    yield "metadata_only", file_bytes({"__metadata__": {"format": "pt"}})
    mixed = {
        "__metadata__": {"format": "pt", "step": "3"},
        "w": entry("F32", [2, 2], 0, 16),
        "b": entry("BF16", [2], 16, 20),
        "h": entry("F16", [], 20, 22),
        "z": entry("F16", [0, 4], 22, 22),
        "q": entry("I8", [2], 22, 24),
        "p": entry("F4", [2, 3], 24, 27),
        "ids": entry("I64", [1], 27, 35),
        "m": entry("U8", [1], 35, 36),
    }
    yield "mixed", file_bytes(mixed, struct.pack("<4f", 1, -2, 3.5, 0) + bytes(range(20)))
    # Unpadded header: the F32 data is misaligned, so the reader copies it.
    yield "misaligned", file_bytes('{"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}',
                                   struct.pack("<2f", 7, -1), pad=False)
    yield "bad_overlap", file_bytes({"a": entry("U8", [4], 0, 4), "b": entry("U8", [4], 2, 6)},
                                    bytes(6))
    yield "bare_header", b'{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}\x00\x00\x80?'
    yield "bare_pretty", b'{\n "s": {"dtype": "BF16", "shape": [], "data_offsets": [0, 2]}\n}\x80?'
    index = {"metadata": {"total_size": 8},
             "weight_map": {"a": "model-00001-of-00002.safetensors",
                            "b": "model-00002-of-00002.safetensors"}}
    yield "index", json.dumps(index, indent=2).encode()


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    for name, data in seeds():
        with open(os.path.join(out, "seed_" + name), "wb") as f:
            f.write(data)


if __name__ == "__main__":
    main()
