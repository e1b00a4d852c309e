#!/usr/bin/env bash
# The real switchyard program: help, version, env, bad flags and unknown subcommands.
# Usage: cli.sh PATH_TO_SWITCHYARD
set -uo pipefail
sy=$1
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }

# expect RC PATTERN -- ARGS...: exit status RC and PATTERN (grep -E) somewhere in stdout+stderr.
expect() {
  local want_rc=$1 pattern=$2
  shift 3
  local out rc
  out=$("$sy" "$@" 2>&1)
  rc=$?
  [[ $rc -eq $want_rc ]] || fail "switchyard $*: exit $rc, expected $want_rc; output: $out"
  grep -qE -- "$pattern" <<<"$out" || fail "switchyard $*: output lacks /$pattern/: $out"
}

expect 0 'Usage: .*SUBCOMMAND' -- --help
expect 0 'env +print CPU features' -- --help
expect 0 '^switchyard [0-9]+\.[0-9]+\.[0-9]+' -- --version
expect 0 'simd chosen: +(AVX3|AVX3_[A-Z]+|AVX2|EMU128|SCALAR|NEON|SVE)' -- env
expect 0 'blas: +OpenBLAS' -- env
expect 0 'threads: +1 ' -- -t 1 env
expect 2 'not expected: --bogus' -- --bogus
expect 2 'not expected: --bogus' -- env --bogus
expect 2 'A subcommand is required' --
expect 2 'nosuch' -- nosuchcommand
expect 2 'suite: nosuch not in \{all,limits,kernels,moe,decode,prefill,train\}' -- bench nosuch
expect 2 'threads' -- -t -3 env
expect 2 'log-level' -- --log-level loud env
expect 1 'error: /nonexistent/m: no such file or folder' -- inspect /nonexistent/m
expect 2 'path is required' -- inspect

# bench prints one JSON object per line on stdout, the table on stderr.
json=$("$sy" bench limits --quick 2>/dev/null)
rc=$?
[[ $rc -eq 0 ]] || fail "bench limits --quick: exit $rc"
n=$(grep -c . <<<"$json")
[[ $n -ge 2 ]] || fail "bench limits --quick printed $n lines, expected >= 2: $json"
while IFS= read -r line; do
  /usr/bin/python3 -c '
import json, sys
o = json.loads(sys.argv[1])
keys = ["bench", "case", "metric", "value", "limit", "limit_kind", "ratio", "reference",
        "reference_value", "speedup"]
assert list(o) == keys, list(o)
assert isinstance(o["value"], (int, float)) and o["value"] > 0, o
' "$line" || fail "bench line is not a DESIGN.md figure: $line"
done <<<"$json"

# bench moe --quick: the layer against PyTorch in the same run, expert GEMMs against sgemm.
# Release builds only (SY_SANITIZED is set by CTest for ASan/UBSan builds, where it takes minutes).
if [[ ${SY_SANITIZED:-0} != 1 ]]; then
  moe=$("$sy" bench moe --quick 2>/dev/null)
  rc=$?
  [[ $rc -eq 0 ]] || fail "bench moe --quick: exit $rc"
  /usr/bin/python3 -c '
import json, sys
rows = [json.loads(l) for l in sys.argv[1].splitlines() if l.strip()]
moe = [r for r in rows if r["bench"] == "moe"]
assert len(moe) == 4, moe
for r in moe:
    if r["case"].startswith("fwd_bwd/"):
        assert r["reference"] == "pytorch" and r["speedup"] > 0, r
    else:
        assert r["limit_kind"] == "gemm_peak" and r["ratio"] > 0, r
  ' "$moe" || fail "bench moe --quick figures: $moe"

  # bench decode / prefill --quick on the 2-layer Mixtral-shaped random model: tokens/s against
  # the triad ceiling and GFLOP/s against the FMA peak, each measured around the case.
  for suite in decode prefill; do
    out=$("$sy" bench "$suite" --quick --filter mixtral8l/q4_0 2>&1 >/dev/null)
    rc=$?
    [[ $rc -eq 0 ]] || fail "bench $suite --quick: exit $rc"
    rows=$("$sy" bench "$suite" --quick --filter mixtral8l/q4_K 2>/dev/null)
    /usr/bin/python3 -c '
import json, sys
suite = sys.argv[2]
rows = [json.loads(l) for l in sys.argv[1].splitlines() if l.strip()]
mine = [r for r in rows if r["bench"] == suite]
assert len(mine) == (1 if suite == "decode" else 2), mine
head = mine[0]
assert head["case"].startswith("mixtral8l/q4_K/p64"), head
assert head["limit_kind"] == ("bandwidth_bound" if suite == "decode" else "fma_peak"), head
assert head["value"] > 0 and head["limit"] > 0 and head["ratio"] > 0, head
    ' "$rows" "$suite" || fail "bench $suite --quick figures: $rows"
    # A limit measured around the case: before and after the prompts, or around each decode window.
    grep -Eq "before the|over [0-9]+ readings" <<<"$out" ||
      fail "bench $suite --quick: no limit measured around the case: $out"
  done
fi

if [[ $failures -gt 0 ]]; then
  echo "$failures failure(s)"
  exit 1
fi
echo "cli: all checks passed"
