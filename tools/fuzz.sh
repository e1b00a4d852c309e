#!/usr/bin/env bash
# Builds every libFuzzer target (tests/fuzz/fuzz_*.cpp) with clang, coverage, ASan and UBSan into
# build/fuzz, then runs each for SECONDS (default 60). Fails on any crash, sanitizer report, leak,
# uncaught exception, or input that takes over 10 s. The corpus grows in build/fuzz/corpus/<target>
# (seeded by tests/fuzz/seeds_<target>.py when present); a failing input is saved as
# build/fuzz/artifacts/<target>/crash-* and can be replayed with build/fuzz/tests/fuzz/<target> FILE.
#   tools/fuzz.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
jobs=${SY_JOBS:-$(nproc)}

if command -v clang++-14 >/dev/null; then
  cc=clang-14 cxx=clang++-14
elif command -v clang++ >/dev/null; then
  cc=clang cxx=clang++
else
  echo "fuzz.sh: clang is not installed (apt-get install clang libomp-dev)" >&2
  exit 2
fi

mapfile -t targets < <(find tests/fuzz -maxdepth 1 -name 'fuzz_*.cpp' -printf '%f\n' |
  sed 's/\.cpp$//' | sort)
if ((${#targets[@]} == 0)); then
  echo "fuzz.sh: no tests/fuzz/fuzz_*.cpp" >&2
  exit 2
fi

cmake -S . -B build/fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O1 -g" "-DCMAKE_C_FLAGS_RELWITHDEBINFO=-O1 -g" \
  -DCMAKE_C_COMPILER="$cc" -DCMAKE_CXX_COMPILER="$cxx" \
  "-DCMAKE_CXX_FLAGS=-Wno-unknown-warning-option" \
  -DSY_BUILD_FUZZERS=ON -DSY_BUILD_TESTS=OFF >/dev/null
ninja -C build/fuzz -j "$jobs" "${targets[@]}"

failed=()
for target in "${targets[@]}"; do
  corpus=build/fuzz/corpus/$target
  artifacts=build/fuzz/artifacts/$target/
  mkdir -p "$corpus" "$artifacts"
  if [[ -f tests/fuzz/seeds_$target.py ]]; then
    /usr/bin/python3 "tests/fuzz/seeds_$target.py" "$corpus"
  fi
  args=(-max_total_time="$seconds" -timeout=10 -rss_limit_mb=4096 -use_value_profile=1
        -print_final_stats=1
        -artifact_prefix="$artifacts")
  [[ -f tests/fuzz/$target.dict ]] && args+=(-dict="tests/fuzz/$target.dict")
  log=build/fuzz/$target.log
  echo "== $target: ${seconds}s"
  if build/fuzz/tests/fuzz/"$target" "${args[@]}" "$corpus" >"$log" 2>&1; then
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
echo "fuzz.sh: ${#targets[@]} fuzzer(s) ran ${seconds}s each without a failure"
