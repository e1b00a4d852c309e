#!/usr/bin/env python3
"""Writes a small seed corpus for fuzz_gguf into the folder given as the only argument.

Each seed is a whole GGUF file of a few hundred bytes laid out as ggml docs/gguf.md says: every
metadata value type (nested arrays included), f32 / f16 / q8_0 / q4_K tensors, the default and a
custom alignment, version 2, split keys, and a zero-size tensor. Python standard library only.
"""
import os
import struct
import sys

U8, I8, U16, I16, U32, I32, F32, BOOL, STRING, ARRAY, U64, I64, F64 = range(13)
SCALAR = {U8: "<B", I8: "<b", U16: "<H", I16: "<h", U32: "<I", I32: "<i", F32: "<f",
          BOOL: "<?", U64: "<Q", I64: "<q", F64: "<d"}
# ggml type id -> (values per block, bytes per block)
GGML = {0: (1, 4), 1: (1, 2), 8: (32, 34), 12: (256, 144), 30: (1, 2)}


def string(s):
    raw = s.encode()
    return struct.pack("<Q", len(raw)) + raw


def value(vtype, v):
    if vtype == STRING:
        return string(v)
    if vtype == ARRAY:
        etype, items = v
        return struct.pack("<IQ", etype, len(items)) + b"".join(value(etype, x) for x in items)
    return struct.pack(SCALAR[vtype], v)


def gguf(kvs, tensors, version=3, alignment=32):
    """kvs: [(key, type, value)]; tensors: [(name, ggml_type, ne)]; data is a byte pattern."""
    out = b"GGUF" + struct.pack("<IQQ", version, len(tensors), len(kvs))
    for key, vtype, v in kvs:
        out += string(key) + struct.pack("<I", vtype) + value(vtype, v)
    offset, sizes = 0, []
    for name, gtype, ne in tensors:
        per_block, block_bytes = GGML[gtype]
        size = ne[0] // per_block * block_bytes
        for n in ne[1:]:
            size *= n
        out += string(name) + struct.pack("<I", len(ne)) + b"".join(struct.pack("<Q", n) for n in ne)
        out += struct.pack("<IQ", gtype, offset)
        sizes.append((offset, size))
        offset += (size + alignment - 1) // alignment * alignment
    out += b"\0" * (-len(out) % alignment)
    start = len(out)
    for at, size in sizes:
        out += b"\0" * (start + at - len(out))
        out += bytes((i * 7 + at) & 0xFF for i in range(size))
    return out


def seeds():
    every = [
        ("general.architecture", STRING, "llama"),
        ("t.u8", U8, 200), ("t.i8", I8, -100), ("t.u16", U16, 65000), ("t.i16", I16, -32000),
        ("t.u32", U32, 4000000000), ("t.i32", I32, -2000000000), ("t.f32", F32, 0.5),
        ("t.bool", BOOL, True), ("t.str", STRING, "h\u00e9llo \u2713"), ("t.u64", U64, 1 << 40),
        ("t.i64", I64, -(1 << 40)), ("t.f64", F64, 0.1),
        ("t.tokens", ARRAY, (STRING, ["<s>", "\u00df", ""])),
        ("t.nested", ARRAY, (ARRAY, [(I16, [1, -2]), (I16, []), (I16, [3])])),
        ("t.scores", ARRAY, (F32, [0.5, -1.25])),
    ]
    tensors = [("tok_embd.weight", 0, [4, 3]), ("norm.weight", 1, [5]),
               ("blk.0.ffn_up.weight", 8, [64, 2]), ("blk.0.ffn_down_exps.weight", 12, [256, 2])]
    yield "every_type", gguf(every, tensors)
    yield "align64", gguf([("general.alignment", U32, 64)] + every[:3], tensors, alignment=64)
    yield "v2", gguf(every[:2], tensors[:2], version=2)
    yield "empty", gguf([], [])
    yield "metadata_only", gguf(every, [])
    yield "split_part", gguf([("split.no", U16, 0), ("split.count", U16, 1),
                              ("split.tensors.count", I32, 2)], tensors[:2])
    yield "zero_size", gguf([], [("z", 8, [0, 4]), ("bf", 30, [2, 1, 1, 1])])


def main():
    folder = sys.argv[1]
    os.makedirs(folder, exist_ok=True)
    for name, data in seeds():
        with open(os.path.join(folder, "seed_" + name + ".gguf"), "wb") as f:
            f.write(data)


if __name__ == "__main__":
    main()
