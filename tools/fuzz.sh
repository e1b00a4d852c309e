#!/usr/bin/env bash
# Builds every libFuzzer target (tests/fuzz/fuzz_*.cpp) with clang, coverage, ASan and UBSan into
# build/fuzz, then runs each for SECONDS (default 60). Fails on any crash, sanitizer report, leak,
# uncaught exception, or input that takes over 10 s. The corpus grows in build/fuzz/corpus/<target>
# (seeded by tests/fuzz/seeds_<target>.py when present); a failing input is saved as
# build/fuzz/artifacts/<target>/crash-* and can be replayed with build/fuzz/tests/fuzz/<target> FILE.
#   tools/fuzz.sh [SECONDS [TARGET...]]
# SECONDS is the time of each fuzzer while there are at most three; with more, the three fuzzers'
# total (3 x SECONDS, 90 s from tools/test.sh) is shared evenly, so CI's fuzz step keeps its
# length as fuzzers are added. TARGETs (e.g. fuzz_tokenizer) run only those, each for SECONDS.
# SY_FUZZ_BUILD names another build folder (default build/fuzz).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
shift $(($# > 0 ? 1 : 0))
jobs=${SY_JOBS:-$(nproc)}
build=${SY_FUZZ_BUILD:-build/fuzz}

if command -v clang++-14 >/dev/null; then
  cc=clang-14 cxx=clang++-14
elif command -v clang++ >/dev/null; then
  cc=clang cxx=clang++
else
  echo "fuzz.sh: clang is not installed (apt-get install clang libomp-dev)" >&2
  exit 2
fi

if (($# > 0)); then
  targets=("$@")
  per_target=$seconds
else
  mapfile -t targets < <(find tests/fuzz -maxdepth 1 -name 'fuzz_*.cpp' -printf '%f\n' |
    sed 's/\.cpp$//' | sort)
  if ((${#targets[@]} == 0)); then
    echo "fuzz.sh: no tests/fuzz/fuzz_*.cpp" >&2
    exit 2
  fi
  per_target=$((${#targets[@]} > 3 ? seconds * 3 / ${#targets[@]} : seconds))
  ((per_target > 0)) || per_target=1
fi
for target in "${targets[@]}"; do
  [[ -f tests/fuzz/$target.cpp ]] || { echo "fuzz.sh: no tests/fuzz/$target.cpp" >&2; exit 2; }
done

cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O1 -g" "-DCMAKE_C_FLAGS_RELWITHDEBINFO=-O1 -g" \
  -DCMAKE_C_COMPILER="$cc" -DCMAKE_CXX_COMPILER="$cxx" \
  "-DCMAKE_CXX_FLAGS=-Wno-unknown-warning-option" \
  -DSY_BUILD_FUZZERS=ON -DSY_BUILD_TESTS=OFF >/dev/null
ninja -C "$build" -j "$jobs" "${targets[@]}"

failed=()
for target in "${targets[@]}"; do
  corpus=$build/corpus/$target
  artifacts=$build/artifacts/$target/
  mkdir -p "$corpus" "$artifacts"
  if [[ -f tests/fuzz/seeds_$target.py ]]; then
    /usr/bin/python3 "tests/fuzz/seeds_$target.py" "$corpus"
  fi
  args=(-max_total_time="$per_target" -timeout=10 -rss_limit_mb=4096 -use_value_profile=1
        -print_final_stats=1
        -artifact_prefix="$artifacts")
  [[ -f tests/fuzz/$target.dict ]] && args+=(-dict="tests/fuzz/$target.dict")
  log=$build/$target.log
  echo "== $target: ${per_target}s"
  if "$build"/tests/fuzz/"$target" "${args[@]}" "$corpus" >"$log" 2>&1; then
    grep -E '^stat::number_of_executed_units|^#[0-9]+.*DONE' "$log" | tail -n 2 || true
  else
    tail -n 60 "$log"
    echo "fuzz.sh: $target FAILED (log: $log; input saved under $artifacts)"
    failed+=("$target")
  fi
done
if ((${#failed[@]} > 0)); then
  echo "fuzz.sh: failures in ${failed[*]}"
  exit 1
fi
echo "fuzz.sh: ${#targets[@]} fuzzer(s) ran ${per_target}s each without a failure"
