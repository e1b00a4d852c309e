"""HF checkpoint writer for the tiny MoE models: config.json and safetensors (one file, or two
shards plus model.safetensors.index.json), written byte by byte without the safetensors package.

Layout (huggingface/safetensors README): u64 little-endian header length N, N bytes of JSON
{"__metadata__": {"format": "pt"}, name: {"dtype", "shape", "data_offsets": [begin, end]}} padded
with spaces to a multiple of 8 (as the safetensors library pads it), then the tensor bytes, offsets
relative to the end of the header. Tensors are laid out by decreasing element size then name (the
order the safetensors library serialises in). Every file is written to a temporary name, fsynced
and renamed."""
import json
import os
import struct

import torch

# dtype name in params -> (safetensors dtype, config.json torch_dtype, element size)
STORAGE = {
    "f32": ("F32", "float32", 4),
    "bf16": ("BF16", "bfloat16", 2),
    "f16": ("F16", "float16", 2),
}


def write_atomic(path, data):
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def round_to(t, dtype):
    """float64 tensor -> the float64 values of its rounding to the storage dtype."""
    torch_dtype = {"f32": torch.float32, "bf16": torch.bfloat16, "f16": torch.float16}[dtype]
    return t.to(torch_dtype).to(torch.float64)


def tensor_bytes(t, dtype):
    if dtype == "f32":
        return t.to(torch.float32).numpy().astype("<f4").tobytes()
    if dtype == "f16":
        return t.to(torch.float16).numpy().astype("<f2").tobytes()
    return t.to(torch.bfloat16).view(torch.int16).numpy().astype("<i2").tobytes()


def safetensors_bytes(entries):
    """entries: list of (name, dtype, tensor) -> the file's bytes."""
    order = sorted(entries, key=lambda e: (-STORAGE[e[1]][2], e[0]))
    header = {"__metadata__": {"format": "pt"}}
    blobs = []
    offset = 0
    for name, dtype, t in order:
        data = tensor_bytes(t, dtype)
        header[name] = {"dtype": STORAGE[dtype][0], "shape": list(t.shape),
                        "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + b"".join(blobs)


def write_checkpoint(folder, config, entries, shards):
    """config.json plus the tensors (list of (name, dtype, tensor) in state-dict order) as
    model.safetensors or, with shards == 2, two shards split near half the bytes + index."""
    write_atomic(os.path.join(folder, "config.json"),
                 (json.dumps(config, indent=2, sort_keys=True) + "\n").encode("utf-8"))
    if shards == 1:
        write_atomic(os.path.join(folder, "model.safetensors"), safetensors_bytes(entries))
        return
    if shards != 2:
        raise ValueError("shards must be 1 or 2, got {}".format(shards))
    sizes = [t.numel() * STORAGE[d][2] for _, d, t in entries]
    total = sum(sizes)
    split, acc = 0, 0
    while split < len(entries) - 1 and acc + sizes[split] <= total // 2:
        acc += sizes[split]
        split += 1
    split = max(split, 1)
    parts = [entries[:split], entries[split:]]
    names = ["model-0000{}-of-00002.safetensors".format(i + 1) for i in range(2)]
    weight_map = {}
    for part, fname in zip(parts, names):
        write_atomic(os.path.join(folder, fname), safetensors_bytes(part))
        weight_map.update({name: fname for name, _, _ in part})
    index = {"metadata": {"total_size": total},
             "weight_map": {k: weight_map[k] for k in sorted(weight_map)}}
    write_atomic(os.path.join(folder, "model.safetensors.index.json"),
                 (json.dumps(index, indent=2) + "\n").encode("utf-8"))

