#!/usr/bin/env bash
# `switchyard train`, `switchyard eval` and `switchyard run` end to end on a tiny MoE model over
# a slice of the bundled Brown corpus: a TOML config with command-line overrides, Ctrl-C (SIGINT)
# saving a checkpoint, the resumed run reproducing the uninterrupted one's log, the trained
# model read back by eval and run, and clear errors for bad configs.
# Usage: train_cli.sh PATH_TO_SWITCHYARD
set -uo pipefail
sy=$1
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
py=/usr/bin/python3
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/sy_train_cli.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
export OMP_NUM_THREADS=1  # small matrices: one thread is faster and the test may share cores
steps=40
[[ -n ${SY_SANITIZED:-} ]] && steps=12  # 10-50x slower there

# 16 Brown documents (blank-line separated) as the corpus.
$py - "$here/../../data/brown.txt" "$tmp/corpus.txt" <<'EOF'
import sys
text = open(sys.argv[1], encoding="utf-8").read()
docs = [d for d in text.split("\n\n") if d.strip()][:16]
open(sys.argv[2], "w", encoding="utf-8").write("\n\n".join(docs) + "\n")
EOF

cat >"$tmp/run.toml" <<EOF
[model]
vocab_size = 400
d_model = 32
n_layers = 2
n_heads = 2
seq_len = 32
[model.moe]
num_experts = 4
top_k = 2
expert_ffn = 32
router = "topk_softmax"
router_options = { aux_loss_coeff = 0.01 }
[data]
files = ["$tmp/corpus.txt"]
validation_fraction = 0.125
[train]
batch_size = 4
steps = 60
seed = 3
[optim]
lr = 3e-3
warmup_steps = 5
[output]
dir = "$tmp/unused"
eval_every = 30
EOF

# An uninterrupted run (overrides: a shorter run into another folder).
"$sy" train "$tmp/run.toml" train.steps=$steps -o "$tmp/a" >"$tmp/a.out" 2>&1 || fail "train a: $(tail -3 "$tmp/a.out")"
for f in train.jsonl tokenizer.model train_config.json checkpoint/config.json \
  checkpoint/optimizer.safetensors model/model.safetensors model/tokenizer.model \
  model/training_summary.json; do
  [[ -f $tmp/a/$f ]] || fail "missing $f"
done
grep -q "\"steps\": $steps" "$tmp/a/train_config.json" || fail "train.steps override not applied"
[[ $(grep -c '"event":"step"' "$tmp/a/train.jsonl") == "$steps" ]] || fail "$steps step lines expected"

# The same run stopped by SIGINT, then resumed by the same command.
"$sy" train "$tmp/run.toml" train.steps=$steps -o "$tmp/b" >"$tmp/b1.out" 2>&1 &
pid=$!
for _ in $(seq 1 600); do
  [[ -f $tmp/b/train.jsonl ]] && (($(grep -c '"event":"step"' "$tmp/b/train.jsonl") >= 3)) && break
  sleep 0.1
done
kill -INT "$pid"
wait "$pid"
rc=$?
if ((rc == 0)); then
  echo "note: the run finished before the interrupt; the resume check below is trivial"
elif ((rc != 130)); then
  fail "interrupted train exited $rc, expected 130: $(tail -3 "$tmp/b1.out")"
else
  grep -q "stopped at step" "$tmp/b1.out" || fail "no stop message: $(tail -3 "$tmp/b1.out")"
  [[ -f $tmp/b/checkpoint/trainer_state.json ]] || fail "no checkpoint after Ctrl-C"
  [[ ! -d $tmp/b/model ]] || fail "an interrupted run wrote the final model"
fi
"$sy" train "$tmp/run.toml" train.steps=$steps -o "$tmp/b" >"$tmp/b2.out" 2>&1 || fail "resume: $(tail -3 "$tmp/b2.out")"
strip() { $py -c '
import json, sys
for line in open(sys.argv[1]):
    j = json.loads(line)
    j.pop("tokens_per_s", None); j.pop("step_s", None)
    print(json.dumps(j, sort_keys=True))' "$1"; }
cmp -s <(strip "$tmp/a/train.jsonl") <(strip "$tmp/b/train.jsonl") ||
  fail "the resumed log differs from the uninterrupted one"
cmp -s "$tmp/a/model/model.safetensors" "$tmp/b/model/model.safetensors" ||
  fail "the resumed model differs from the uninterrupted one"

# The same command again over a finished run resumes at its last step: the log (one final
# evaluation, not two) and the model stay as they were.
strip "$tmp/a/train.jsonl" >"$tmp/a_log.jsonl"
cp "$tmp/a/model/model.safetensors" "$tmp/a_model.safetensors"
"$sy" train "$tmp/run.toml" train.steps=$steps -o "$tmp/a" >"$tmp/a2.out" 2>&1 || fail "train a again: $(tail -3 "$tmp/a2.out")"
cmp -s "$tmp/a_log.jsonl" <(strip "$tmp/a/train.jsonl") ||
  fail "running a finished run again changed its log"
cmp -s "$tmp/a_model.safetensors" "$tmp/a/model/model.safetensors" ||
  fail "running a finished run again changed its model"

# eval on the held-out documents gives the trainer's final validation loss.
"$sy" eval -m "$tmp/a/model" --data "$tmp/corpus.txt" --seq-len 32 --split validation \
  --validation-fraction 0.125 >"$tmp/eval.json" 2>"$tmp/eval.err" || fail "eval: $(cat "$tmp/eval.err")"
$py - "$tmp/eval.json" "$tmp/a/model/training_summary.json" <<'EOF' || fail "eval loss differs from the trainer's"
import json, sys
e = json.load(open(sys.argv[1]))
s = json.load(open(sys.argv[2]))
assert abs(e["loss"] - s["val_loss"]) <= 1e-4 * s["val_loss"], (e["loss"], s["val_loss"])
assert len(e["layers"]) == 2 and all(sum(l["load"]) == 2 * e["tokens"] for l in e["layers"]), e
EOF

# run: text and routing statistics from the trained model.
"$sy" run -m "$tmp/a/model" -p "The jury" -n 8 --temp 0 --routing-stats >"$tmp/run.out" 2>"$tmp/run.err" ||
  fail "run: $(cat "$tmp/run.err")"
[[ -s $tmp/run.out ]] || fail "run printed no text"
grep -q "^layer   0:" "$tmp/run.err" || fail "no routing statistics: $(cat "$tmp/run.err")"

# Errors: one line naming the file and key.
expect_error() {
  local want=$1
  shift
  if "$@" >"$tmp/err.out" 2>&1; then
    fail "expected failure: $*"
  elif ! grep -qF -- "$want" "$tmp/err.out"; then
    fail "expected '$want' in: $(cat "$tmp/err.out")"
  fi
}
expect_error "$tmp/run.toml: unknown key 'train.epochs'" "$sy" train "$tmp/run.toml" train.epochs=2
expect_error "$tmp/run.toml: train.batch_size = 0, expected >= 1" "$sy" train "$tmp/run.toml" train.batch_size=0
expect_error "cannot resume: model.d_model is 64 in this config but 32 in the saved run" \
  "$sy" train "$tmp/run.toml" model.d_model=64 -o "$tmp/a"
printf '[model\n' >"$tmp/bad.toml"
expect_error "$tmp/bad.toml:1:" "$sy" train "$tmp/bad.toml"
expect_error "$tmp/missing.toml: cannot open for reading" "$sy" train "$tmp/missing.toml"

if ((failures > 0)); then
  echo "train_cli: $failures failure(s)"
  exit 1
fi
echo "train_cli: ok"
