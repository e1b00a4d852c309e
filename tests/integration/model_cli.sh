#!/usr/bin/env bash
# `switchyard logits` and `switchyard run` on a tiny random Qwen2-MoE checkpoint written by
# tests/reference/model_arch.py (3 layers, layer 1 dense, vocabulary 136), with a byte-level
# tokenizer.json written here: logits against the float64 PyTorch reference, greedy text against
# a no-cache greedy loop over the same reference, routing statistics, and clear errors.
# Usage: model_cli.sh PATH_TO_SWITCHYARD
set -uo pipefail
sy=$1
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
py=/usr/bin/python3
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/sy_model_cli.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
ck=$tmp/ck
tokens=1,17,42,5,99,23,64,8,31,77,2,50
prompt="xyz q"

# The checkpoint, its tokenizer, the reference logits of $tokens and the greedy text of $prompt
# (8 tokens, each step the whole sequence through the float64 forward, argmax of the last row).
if ! SY_REF="$here/../reference" $py - "$ck" "$tokens" "$prompt" >"$tmp/expected.txt" <<'EOF'; then
import json, os, sys
sys.path.insert(0, os.environ["SY_REF"])
import numpy as np
import torch
import model_arch
from model_arch_math import forward

folder, tokens, prompt = sys.argv[1], [int(t) for t in sys.argv[2].split(",")], sys.argv[3]
params = {"case": "qwen2_moe", "dir": folder, "seed": 1, "tokens": tokens}
out = model_arch.compute({}, params)
np.save(os.path.join(folder, "..", "ref.npy"), out["logits"].numpy().astype(np.float32))

cfg = dict(model_arch.CASES["qwen2_moe"], torch_dtype="float32")
vocab_size = cfg["vocab_size"]
W = {n: t for n, (_, t) in model_arch.draw_weights(cfg, int(out["seed"][0]), "f32").items()}

# Byte-level BPE: <pad> <s> </s>, printable ASCII (space as U+0120), then merges up to V ids.
def mapped(b):
    return "\u0120" if b == 32 else chr(b)
vocab = {"<pad>": 0, "<s>": 1, "</s>": 2}
for b in range(32, 127):
    vocab[mapped(b)] = len(vocab)
merges = []
for a, b in [("\u0120", c) for c in "tasowcbfpmhildnergy"] + [("h", "e"), ("i", "n"), ("e", "r"),
             ("a", "n"), ("o", "n"), ("r", "e"), ("a", "t"), ("o", "r"), ("i", "s"), ("e", "s"),
             ("i", "t"), ("a", "r"), ("a", "l"), ("l", "l"), ("o", "u"), ("l", "e"), ("s", "t"),
             ("e", "n"), ("\u0120t", "he")]:
    if len(vocab) == vocab_size:
        break
    vocab[a + b] = len(vocab)
    merges.append(a + " " + b)
assert len(vocab) == vocab_size, (len(vocab), vocab_size)
special = lambda i, s: {"id": i, "content": s, "special": True}
tok = {
    "version": "1.0",
    "added_tokens": [special(0, "<pad>"), special(1, "<s>"), special(2, "</s>")],
    "normalizer": None,
    "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
        {"type": "Split", "pattern": {"Regex": r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"},
         "behavior": "Isolated", "invert": False},
        {"type": "ByteLevel", "add_prefix_space": False, "use_regex": False}]},
    "post_processor": {"type": "TemplateProcessing",
                       "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}},
                                  {"Sequence": {"id": "A", "type_id": 0}}],
                       "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}}},
    "decoder": {"type": "ByteLevel"},
    "model": {"type": "BPE", "vocab": vocab, "merges": merges, "dropout": None,
              "unk_token": None},
}
with open(os.path.join(folder, "tokenizer.json"), "w") as f:
    json.dump(tok, f)

# "xyz q": the words "xyz" and " q"; "\u0120q" is not a merge, so every byte is its own token.
seq = [1] + [vocab[mapped(ord(c))] for c in prompt]
pieces = {i: s for s, i in vocab.items()}
text = ""
for _ in range(8):
    with torch.no_grad():
        logits, _ = forward(cfg, W, seq)
    seq.append(int(torch.argmax(logits[-1])))
    if seq[-1] > 2:
        text += pieces[seq[-1]].replace("\u0120", " ")
print(text)
EOF
  echo "FAIL: could not write the checkpoint"
  exit 1
fi

# logits: every position's f32 logits, within 1e-4 of the reference's scale, from the
# safetensors folder and from the GGUF file.
for model in "$ck" "$ck/model.gguf"; do
  out=$("$sy" logits -m "$model" --tokens "$tokens" --out "$tmp/got.npy" 2>&1)
  rc=$?
  [[ $rc -eq 0 ]] || fail "logits -m $model: exit $rc: $out"
  grep -qE 'wrote .*got.npy: f32 \[12, 136\]' <<<"$out" || fail "logits -m $model said: $out"
  $py -c '
import sys
import numpy as np
got, ref = np.load(sys.argv[1]), np.load(sys.argv[2])
assert got.dtype == np.float32 and got.shape == ref.shape == (12, 136), (got.dtype, got.shape)
err = np.abs(got.astype(np.float64) - ref).max() / np.abs(ref).max()
assert err < 1e-4, err
' "$tmp/got.npy" "$tmp/ref.npy" || fail "logits -m $model differ from the reference"
  rm -f "$tmp/got.npy"
done

# run: greedy text on stdout, speeds and one routing line per MoE layer (0 and 2) on stderr.
"$sy" run -m "$ck" -p "$prompt" --temp 0 -n 8 --ignore-eos --routing-stats \
  >"$tmp/stdout.txt" 2>"$tmp/stderr.txt"
rc=$?
err=$(cat "$tmp/stderr.txt")
[[ $rc -eq 0 ]] || fail "run: exit $rc: $err"
cmp -s "$tmp/stdout.txt" "$tmp/expected.txt" ||
  fail "run: stdout '$(cat "$tmp/stdout.txt")', expected '$(cat "$tmp/expected.txt")'"
line='^prefill: 6 tokens, [0-9.]+ tokens/s; decode: 8 tokens, [0-9.]+ tokens/s; finish: length$'
grep -qE "$line" <<<"$err" || fail "run: no prefill/decode line /$line/: $err"
# Every routed layer saw the 6 prompt tokens and the 7 decoded ones fed back (the 8th is not).
routing=$(grep -E '^layer ' <<<"$err")
want='^layer +[02]: 13 tokens, max_vio [0-9.]+, unused [0-8]/8, top e[0-7]:[0-9.]+%( e[0-7]:[0-9.]+%){3}$'
[[ $(grep -c . <<<"$routing") -eq 2 ]] || fail "run: expected 2 routing lines, got: $err"
[[ $(grep -cE "$want" <<<"$routing") -eq 2 ]] || fail "run: routing lines not /$want/: $err"
if ! grep -qE '^layer +0:' <<<"$routing" || ! grep -qE '^layer +2:' <<<"$routing"; then
  fail "run: routing lines are not for layers 0 and 2: $err"
fi

# --stop: two characters from the greedy text; the output ends before their first occurrence.
expected=$(cat "$tmp/expected.txt")
if [[ ${#expected} -lt 4 ]]; then
  fail "greedy text '$expected' is too short for the --stop check"
else
  stop=${expected:2:2}
  out=$("$sy" run -m "$ck" -p "$prompt" --temp 0 -n 8 --ignore-eos --stop "$stop" 2>"$tmp/stderr.txt")
  rc=$?
  [[ $rc -eq 0 ]] || fail "run --stop '$stop': exit $rc: $(cat "$tmp/stderr.txt")"
  [[ $out == "${expected%%"$stop"*}" ]] || fail "run --stop '$stop': '$out' from '$expected'"
  grep -q 'finish: stop$' "$tmp/stderr.txt" || fail "run --stop: $(cat "$tmp/stderr.txt")"
fi

# expect RC PATTERN -- ARGS...: exit status RC and PATTERN (grep -E) in stdout+stderr.
expect() {
  local want_rc=$1 pattern=$2
  shift 3
  local out rc
  out=$("$sy" "$@" 2>&1)
  rc=$?
  [[ $rc -eq $want_rc ]] || fail "switchyard $*: exit $rc, expected $want_rc; output: $out"
  grep -qE -- "$pattern" <<<"$out" || fail "switchyard $*: output lacks /$pattern/: $out"
}

expect 1 'error: .*/nonexistent/model' -- run -m "$tmp/nonexistent/model" -p hi
expect 1 'error: .*/nonexistent/model' -- logits -m "$tmp/nonexistent/model" --tokens 1 --out "$tmp/x.npy"
expect 1 "error: --tokens: 'x' is not a token id" -- logits -m "$ck" --tokens 1,x,3 --out "$tmp/x.npy"
expect 1 "error: --tokens: '' is not a token id" -- logits -m "$ck" --tokens 1,,3 --out "$tmp/x.npy"
expect 1 "error: --tokens: '-4' is not a token id" -- logits -m "$ck" --tokens 1,-4 --out "$tmp/x.npy"
expect 1 'error: .*136' -- logits -m "$ck" --tokens 1,136 --out "$tmp/x.npy"
expect 1 'error: .*999999' -- logits -m "$ck" --tokens 999999 --out "$tmp/x.npy"
[[ ! -e $tmp/x.npy ]] || fail "a failed logits command left $tmp/x.npy"
expect 2 'tokens is required' -- logits -m "$ck" --out "$tmp/x.npy"
expect 1 'error: .*tokenizer' -- run -m "$ck/model.gguf" -p hi -n 1

if [[ $failures -gt 0 ]]; then
  echo "$failures failure(s)"
  exit 1
fi
echo "model_cli: all checks passed"
