#!/usr/bin/env bash
# Every test: set up, check layer rules and formatting, build Release (warnings are errors) and
# run the whole suite, then build with AddressSanitizer + UBSan and run the whole suite again,
# then run every file-format fuzzer (libFuzzer, clang) for SY_FUZZ_SECONDS (default 30) each.
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=${SY_JOBS:-$(nproc)}

bash tools/setup.sh
bash tools/check_layers.sh
bash tools/check_format.sh

for flavour in release asan; do
  echo "== $flavour: build"
  bash tools/build.sh "$flavour"
  echo "== $flavour: test"
  (cd "build/$flavour" && ctest --output-on-failure -j "$jobs")
done
echo "== fuzz"
bash tools/fuzz.sh "${SY_FUZZ_SECONDS:-30}"
echo "test.sh: all tests passed (release, asan, fuzz)"
