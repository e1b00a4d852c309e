#!/usr/bin/env bash
# `switchyard study --quick` end to end (issue #4): every causal router of the registry and the
# dense baseline on the tiny study model, into a temporary folder; report.md has a row per router
# in each variant's table, every PNG it links exists and is a PNG, every run has its train.jsonl;
# a rerun keeps the finished runs; bad arguments fail with one clear line.
# Usage: study_cli.sh PATH_TO_SWITCHYARD
set -uo pipefail
sy=$1
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/sy_study_cli.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

# Errors first (cheap): unknown router, non-causal router without --non-causal.
if "$sy" study --quick --out "$tmp/bad" --routers nope --data "$root/data/brown.txt" \
    >"$tmp/err.txt" 2>&1; then
  fail "an unknown router was accepted"
elif ! grep -q "unknown router 'nope'; registered routers:" "$tmp/err.txt"; then
  fail "unknown router message: $(cat "$tmp/err.txt")"
fi
if "$sy" study --quick --out "$tmp/bad" --routers expert_choice --data "$root/data/brown.txt" \
    >"$tmp/err.txt" 2>&1; then
  fail "a non-causal router ran without --non-causal"
elif ! grep -q "router 'expert_choice' is not causal" "$tmp/err.txt"; then
  fail "non-causal message: $(cat "$tmp/err.txt")"
fi

# A damaged record of a finished run (kept by a resumed study) names its file.
mkdir -p "$tmp/damaged/runs/e8k2/topk_softmax"
echo '{"variant": 3}' >"$tmp/damaged/runs/e8k2/topk_softmax/study_run.json"
if "$sy" -t 1 study --quick --out "$tmp/damaged" --routers topk_softmax \
    --data "$root/data/brown.txt" >"$tmp/err.txt" 2>&1; then
  fail "a damaged study_run.json was accepted"
elif ! grep -q "topk_softmax/study_run.json: not a study run record: " "$tmp/err.txt"; then
  fail "damaged record message: $(cat "$tmp/err.txt")"
fi

if [[ "${SY_SANITIZED:-0}" == 1 ]]; then
  echo "sanitized build: skipping the quick study (too slow there)"
  [[ $failures == 0 ]] && echo "PASS" && exit 0
  exit 1
fi

# One thread: the quick model's matrices are tiny (width 32), so a second thread only adds
# synchronisation, and on a loaded machine OpenMP's spinning makes -t 2 several times slower.
out=$tmp/study
start=$(date +%s)
if ! "$sy" -t 1 study --quick --out "$out" --data "$root/data/brown.txt" >"$tmp/log.txt" 2>&1; then
  cat "$tmp/log.txt"
  fail "switchyard study --quick failed"
fi
elapsed=$(($(date +%s) - start))
echo "quick study: ${elapsed}s"
report=$out/report.md
[[ -f $report ]] || fail "no report.md"

# The causal routers of the registry (the default list), read from the error message above.
routers=$("$sy" study --quick --out "$tmp/bad" --routers nope 2>&1 |
  sed -n "s/.*registered routers: //p" | tr ',' '\n' | tr -d ' ')
[[ -n $routers ]] || fail "could not read the router list"
for variant in e8k2 e32k8; do
  table=$(awk -v v="$variant" '$0 ~ "^## Results: `"v"`" {on=1; next} /^## / {on=0} on' "$report")
  [[ -n $table ]] || fail "no results section for $variant"
  for r in $routers; do
    case $r in expert_choice | soft_moe | sinkhorn) continue ;; esac
    grep -q "^| $r | " <<<"$table" || fail "$variant: no row for $r"
    [[ -s $out/runs/$variant/$r/train.jsonl ]] || fail "$variant/$r: no train.jsonl"
  done
  grep -q "^| dense_ffn | " <<<"$table" || fail "$variant: no dense baseline row"
  for r in expert_choice soft_moe sinkhorn; do
    grep -q "^| $r | " <<<"$table" && fail "$variant: non-causal $r ran by default"
  done
done

# Every plot the report links exists and is a PNG; the four kinds are all there.
pngs=$(grep -o '([a-z0-9_]*\.png)' "$report" | tr -d '()')
for kind in val_loss maxvio load remoe; do
  for variant in e8k2 e32k8; do
    grep -qx "${kind}_${variant}.png" <<<"$pngs" || fail "report does not link ${kind}_${variant}.png"
  done
done
for p in $pngs; do
  if [[ ! -f $out/$p ]]; then
    fail "$p is linked but missing"
  elif [[ $(head -c 8 "$out/$p" | od -An -tx1 | tr -d ' \n') != 89504e470d0a1a0a ]]; then
    fail "$p is not a PNG"
  fi
done
grep -q "Paper orderings" "$report" || fail "no ordering sentences"
grep -q "Scale compared with the papers" "$report" || fail "no scale section"
[[ -f $out/summary.json ]] || fail "no summary.json"

# A rerun keeps every finished run (nothing is trained again).
if ! "$sy" -t 1 study --quick --out "$out" --data "$root/data/brown.txt" >"$tmp/log2.txt" 2>&1; then
  cat "$tmp/log2.txt"
  fail "rerun failed"
fi
grep -q "e8k2/topk_softmax: done before, kept" "$tmp/log2.txt" || fail "rerun trained again"

if [[ $failures == 0 ]]; then
  echo "PASS"
  exit 0
fi
echo "$failures failure(s)"
exit 1
