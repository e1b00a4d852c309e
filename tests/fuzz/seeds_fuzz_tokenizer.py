#!/usr/bin/env python3
"""Writes a small seed corpus for fuzz_tokenizer into the folder given as the only argument.

Each seed is TEXT, a zero byte, then a tokenizer file (fuzz_tokenizer.cpp): tokenizer.json files
of every kind the reader understands (byte-level BPE with the GPT-2, Llama 3, Qwen 2, DeepSeek-V3
and DeepSeek LLM pre-tokenizers, SentencePiece-style BPE with byte fallback, Metaspace, the
post-processors and decoders) and GGUF files holding gpt2 and llama vocabularies
(tokenizer.ggml.*). Vocabularies are about a hundred tokens, so seeds stay at a few kilobytes.
Python standard library only.
"""
import json
import os
import struct
import sys

GPT2 = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"
LLAMA3 = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|"
          r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
QWEN2 = LLAMA3.replace(r"\p{N}{1,3}", r"\p{N}")
DEEPSEEK_V3 = [
    r"\p{N}{1,3}",
    "[\u4e00-\u9fa5\u3040-\u309f\u30a0-\u30ff]+",
    "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?"
    "[\\p{L}\\p{M}]+| ?[\\p{P}\\p{S}]+[\r\n]*|\\s*[\r\n]+|\\s+(?!\\S)|\\s+",
]
DEEPSEEK_LLM = ["[\r\n]", r"\s+$", "[\u4e00-\u9fa5\u0800-\u4e00\uac00-\ud7ff]+", r"\p{N}+"]
TEXT = ("Hello world! It's 12345 caf\u00e9 cafe\u0301 \ufb01 \u4f60\u597d\n\n  <|im_start|>x "
        "<s>\U0001f44b")


def byte_level_char(b):
    """GPT-2's byte -> character map."""
    keep = list(range(33, 127)) + list(range(161, 173)) + list(range(174, 256))
    if b in keep:
        return chr(b)
    return chr(256 + [c for c in range(256) if c not in keep].index(b))


def mapped(text):
    return "".join(byte_level_char(b) for b in text.encode())


def byte_vocab():
    """Printable ASCII bytes plus a few merged words, in byte-level form."""
    tokens = [byte_level_char(b) for b in range(32, 127)] + [byte_level_char(b) for b in b"\n\t"]
    merges = []
    for word in [" the", "Hello", " world", "'s", "123", "  ", "\n\n", "caf\u00e9"]:
        chars = [byte_level_char(b) for b in word.encode()]
        for c in chars:
            if c not in tokens:
                tokens.append(c)
        cur = chars[0]
        for c in chars[1:]:
            if cur + c not in tokens:
                tokens.append(cur + c)
                merges.append(cur + " " + c)
            cur += c
    return tokens, merges


def split(regex):
    return {"type": "Split", "pattern": {"Regex": regex}, "behavior": "Isolated", "invert": False}


def byte_json(pre_tokenizer, ignore_merges=False, pair_merges=False, normalizer=None):
    tokens, merges = byte_vocab()
    n = len(tokens)
    return {
        "version": "1.0",
        "added_tokens": [
            {"id": n, "content": "<|endoftext|>", "special": True},
            {"id": n + 1, "content": "<|im_start|>", "special": True, "lstrip": True},
            {"id": n + 2, "content": "<tool>", "special": False, "rstrip": True},
        ],
        "normalizer": normalizer,
        "pre_tokenizer": pre_tokenizer,
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": "<|im_start|>", "type_id": 0}},
                       {"Sequence": {"id": "A", "type_id": 0}}],
            "special_tokens": {"<|im_start|>": {"id": "<|im_start|>", "ids": [n + 1],
                                                "tokens": ["<|im_start|>"]}},
        },
        "decoder": {"type": "ByteLevel"},
        "model": {"type": "BPE", "vocab": {t: i for i, t in enumerate(tokens)},
                  "merges": [m.split(" ") for m in merges] if pair_merges else merges,
                  "ignore_merges": ignore_merges, "dropout": None, "unk_token": None},
    }


def sequence(regexes):
    steps = [split(r) for r in regexes]
    steps.append({"type": "ByteLevel", "add_prefix_space": False, "use_regex": False})
    return {"type": "Sequence", "pretokenizers": steps}


def spm_json(metaspace=False):
    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2}
    for b in range(256):
        vocab["<0x%02X>" % b] = 3 + b
    for piece in ["\u2581", "a", "b", "c", "\u2581a", "ab", "\u2581ab", "\u2581c"]:
        vocab[piece] = len(vocab)
    doc = {
        "added_tokens": [{"id": i, "content": t, "special": True}
                         for i, t in enumerate(["<unk>", "<s>", "</s>"])],
        "normalizer": {"type": "Sequence", "normalizers": [
            {"type": "Prepend", "prepend": "\u2581"},
            {"type": "Replace", "pattern": {"String": " "}, "content": "\u2581"}]},
        "pre_tokenizer": None,
        "post_processor": {"type": "RobertaProcessing", "cls": ["<s>", 1], "sep": ["</s>", 2]},
        "decoder": {"type": "Sequence", "decoders": [
            {"type": "Replace", "pattern": {"String": "\u2581"}, "content": " "},
            {"type": "ByteFallback"}, {"type": "Fuse"},
            {"type": "Strip", "content": " ", "start": 1, "stop": 0}]},
        "model": {"type": "BPE", "vocab": vocab,
                  "merges": ["\u2581 a", "a b", "\u2581a b", "\u2581 c"],
                  "unk_token": "<unk>", "fuse_unk": True, "byte_fallback": True},
    }
    if metaspace:
        doc["normalizer"] = None
        doc["pre_tokenizer"] = {"type": "Metaspace", "replacement": "\u2581",
                                "prepend_scheme": "first", "split": True}
        doc["decoder"] = {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "first"}
    return doc


# GGUF v3 metadata-only files (ggml docs/gguf.md), the value types a vocabulary uses.
U32, I32, F32, BOOL, STRING, ARRAY = 4, 5, 6, 7, 8, 9


def gguf_string(s):
    raw = s.encode("utf-8", "surrogatepass")
    return struct.pack("<Q", len(raw)) + raw


def gguf_value(vtype, v):
    if vtype == STRING:
        return gguf_string(v)
    if vtype == ARRAY:
        etype, items = v
        return struct.pack("<IQ", etype, len(items)) + b"".join(gguf_value(etype, x) for x in items)
    return struct.pack({U32: "<I", I32: "<i", F32: "<f", BOOL: "<?"}[vtype], v)


def gguf(kvs):
    out = b"GGUF" + struct.pack("<IQQ", 3, 0, len(kvs))
    for key, vtype, v in kvs:
        out += gguf_string(key) + struct.pack("<I", vtype) + gguf_value(vtype, v)
    return out + b"\0" * (-len(out) % 32)


def gpt2_gguf(pre):
    tokens, merges = byte_vocab()
    tokens = tokens + ["<|endoftext|>", "<tool>", "[PAD]"]
    types = [1] * (len(tokens) - 3) + [3, 4, 5]
    return gguf([
        ("tokenizer.ggml.model", STRING, "gpt2"),
        ("tokenizer.ggml.pre", STRING, pre),
        ("tokenizer.ggml.tokens", ARRAY, (STRING, tokens)),
        ("tokenizer.ggml.token_type", ARRAY, (I32, types)),
        ("tokenizer.ggml.merges", ARRAY, (STRING, merges)),
        ("tokenizer.ggml.eos_token_id", U32, len(tokens) - 3),
        ("tokenizer.ggml.add_bos_token", BOOL, False),
    ])


def llama_gguf():
    tokens = ["<unk>", "<s>", "</s>"] + ["<0x%02X>" % b for b in range(256)]
    types = [2, 3, 3] + [6] * 256
    pieces = ["\u2581", "a", "b", "c", "\u2581a", "ab", "\u2581ab", "\u2581c", "<tool>"]
    tokens += pieces
    types += [1] * 8 + [4]
    scores = [0.0] * 259 + [-float(i) for i in range(1, 10)]
    return gguf([
        ("tokenizer.ggml.model", STRING, "llama"),
        ("tokenizer.ggml.tokens", ARRAY, (STRING, tokens)),
        ("tokenizer.ggml.scores", ARRAY, (F32, scores)),
        ("tokenizer.ggml.token_type", ARRAY, (I32, types)),
        ("tokenizer.ggml.bos_token_id", U32, 1),
        ("tokenizer.ggml.eos_token_id", U32, 2),
        ("tokenizer.ggml.unknown_token_id", U32, 0),
        ("tokenizer.ggml.add_eos_token", BOOL, True),
    ])


def as_json(doc):
    return json.dumps(doc, ensure_ascii=False).encode()


def seeds():
    yield "gpt2_bytelevel", as_json(byte_json(
        {"type": "ByteLevel", "add_prefix_space": True, "use_regex": True}, pair_merges=True))
    yield "gpt2_split", as_json(byte_json(sequence([GPT2])))
    yield "llama3", as_json(byte_json(sequence([LLAMA3]), ignore_merges=True))
    yield "qwen2", as_json(byte_json(sequence([QWEN2]), normalizer={"type": "NFC"}))
    yield "deepseek_v3", as_json(byte_json(sequence(DEEPSEEK_V3)))
    yield "deepseek_llm", as_json(byte_json(sequence(DEEPSEEK_LLM)))
    yield "spm", as_json(spm_json())
    yield "spm_metaspace", as_json(spm_json(metaspace=True))
    yield "gguf_qwen2", gpt2_gguf("qwen2")
    yield "gguf_deepseek_v3", gpt2_gguf("deepseek-v3")
    yield "gguf_default", gpt2_gguf("default")
    yield "gguf_llama", llama_gguf()


def main():
    folder = sys.argv[1]
    os.makedirs(folder, exist_ok=True)
    for name, data in seeds():
        with open(os.path.join(folder, "seed_" + name), "wb") as f:
            f.write(TEXT.encode() + b"\0" + data)


if __name__ == "__main__":
    main()
