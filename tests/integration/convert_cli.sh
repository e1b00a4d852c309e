#!/usr/bin/env bash
# `switchyard convert` end to end on a tiny random Mixtral written by
# tests/reference/model_arch.py, with a byte-level tokenizer.json written here: the f32 GGUF
# gives the safetensors model's logits and greedy text (tokenizer embedded), a quantized one with
# a recipe runs, and bad flags are one-line errors.
# Usage: convert_cli.sh PATH_TO_SWITCHYARD
set -uo pipefail
sy=$1
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
py=/usr/bin/python3
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/sy_convert_cli.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
ck=$tmp/ck
tokens=1,17,42,5,99,23,64,8,31,77,2,50

if ! SY_REF="$here/../reference" $py - "$ck" "$tokens" <<'EOF_PY'; then
import json, os, sys
sys.path.insert(0, os.environ["SY_REF"])
import model_arch

folder, tokens = sys.argv[1], [int(t) for t in sys.argv[2].split(",")]
model_arch.compute({}, {"case": "mixtral", "dir": folder, "seed": 1, "tokens": tokens,
                        "gguf": False})
# Byte-level BPE of exactly the model's 128 ids: <pad> <s> </s>, printable ASCII, merges.
vocab = {"<pad>": 0, "<s>": 1, "</s>": 2}
for b in range(32, 127):
    vocab["\u0120" if b == 32 else chr(b)] = len(vocab)
merges = []
for a, b in [("\u0120", c) for c in "tasowcbfpmhildnergy"] + [("h", "e"), ("i", "n"), ("e", "r"),
             ("a", "n"), ("o", "n"), ("r", "e"), ("a", "t"), ("o", "r"), ("i", "s"), ("e", "s"),
             ("l", "l"), ("o", "u")]:
    if len(vocab) == 128:
        break
    vocab[a + b] = len(vocab)
    merges.append(a + " " + b)
assert len(vocab) == 128
special = lambda i, s: {"id": i, "content": s, "special": True}
tok = {
    "added_tokens": [special(0, "<pad>"), special(1, "<s>"), special(2, "</s>")],
    "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "use_regex": True},
    "post_processor": {"type": "TemplateProcessing",
                       "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}},
                                  {"Sequence": {"id": "A", "type_id": 0}}],
                       "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}}},
    "decoder": {"type": "ByteLevel"},
    "model": {"type": "BPE", "vocab": vocab, "merges": merges},
}
with open(os.path.join(folder, "tokenizer.json"), "w") as f:
    json.dump(tok, f)
EOF_PY
  echo "FAIL: could not write the checkpoint"
  exit 1
fi

# f32: same logits as the safetensors folder, same greedy text through the embedded tokenizer.
out=$("$sy" convert -m "$ck" -o "$tmp/f32.gguf" --quant f32 2>&1)
rc=$?
[[ $rc -eq 0 ]] || fail "convert --quant f32: exit $rc: $out"
line='^wrote .*/f32.gguf: llama \(f32\), 23 tensors \(f32 23\), [0-9.]+ MiB, tokenizer embedded$'
grep -qE "$line" <<<"$out" || fail "convert --quant f32 said: $out"
"$sy" logits -m "$ck" --tokens "$tokens" --out "$tmp/st.npy" 2>/dev/null || fail "logits safetensors"
"$sy" logits -m "$tmp/f32.gguf" --tokens "$tokens" --out "$tmp/gg.npy" 2>/dev/null ||
  fail "logits f32.gguf"
$py -c '
import sys
import numpy as np
a, b = np.load(sys.argv[1]), np.load(sys.argv[2])
assert a.shape == b.shape == (12, 128), (a.shape, b.shape)
err = np.abs(a.astype(np.float64) - b).max() / np.abs(b).max()
assert err < 1e-5, err
' "$tmp/gg.npy" "$tmp/st.npy" || fail "logits of f32.gguf differ from the safetensors model"
for model in "$ck" "$tmp/f32.gguf"; do
  "$sy" run -m "$model" -p "the cat is on" --temp 0 -n 6 --ignore-eos >"$tmp/$(basename "$model").txt" \
    2>"$tmp/err.txt" || fail "run -m $model: $(cat "$tmp/err.txt")"
done
[[ -s $tmp/ck.txt ]] || fail "run: no text from the safetensors model"
cmp -s "$tmp/ck.txt" "$tmp/f32.gguf.txt" ||
  fail "run: '$(cat "$tmp/f32.gguf.txt")' from the GGUF, '$(cat "$tmp/ck.txt")' from safetensors"

# Quantized with a recipe: experts q4_0, attention f16, the rest q8_0; 1-D and routers f32.
out=$("$sy" convert -m "$ck" -o "$tmp/q.gguf" --quant q8_0 --recipe "ffn_*_exps=q4_0,attn_*=f16" 2>&1)
rc=$?
[[ $rc -eq 0 ]] || fail "convert --quant q8_0: exit $rc: $out"
line='^wrote .*/q.gguf: llama \(q8_0\), 23 tensors \(f16 8, f32 7, q4_0 6, q8_0 2\), '
grep -qE "$line" <<<"$out" || fail "convert --quant q8_0 said: $out"
"$sy" run -m "$tmp/q.gguf" -p "the cat" --temp 0 -n 4 --ignore-eos >/dev/null 2>"$tmp/err.txt" ||
  fail "run -m q.gguf: $(cat "$tmp/err.txt")"

# Errors: one line, exit 1 (2 for CLI usage), no file written.
expect_error() {
  local want=$1
  shift
  out=$("$sy" convert "$@" 2>&1)
  rc=$?
  [[ $rc -eq 1 ]] || fail "convert $*: exit $rc, expected 1: $out"
  [[ $out == "$want" ]] || fail "convert $*: '$out', expected '$want'"
}
expect_error "error: --quant: unknown type 'q4_k_m', expected one of f32, f16, bf16, q4_0, q4_1, q5_0, q5_1, q8_0, q2_K, q3_K, q4_K, q5_K, q6_K, iq4_nl, iq4_xs" \
  -m "$ck" -o "$tmp/x.gguf" --quant q4_k_m
expect_error "error: --recipe: recipe entry 2 'attn_*' is not pattern=type" \
  -m "$ck" -o "$tmp/x.gguf" --recipe "ffn_*_exps=q4_K,attn_*"
expect_error "error: $tmp/none: no such file or folder" -m "$tmp/none" -o "$tmp/x.gguf"
[[ ! -e $tmp/x.gguf ]] || fail "an output file was left after errors"
"$sy" convert -m "$ck" >/dev/null 2>&1
[[ $? -eq 2 ]] || fail "convert without -o: expected exit 2"

if [[ $failures -gt 0 ]]; then
  echo "$failures failure(s)"
  exit 1
fi
echo "convert_cli: ok"
