#!/usr/bin/env bash
# Configures and builds one flavour of switchyard into build/<flavour>.
#   tools/build.sh release   Release, warnings are errors (what users and benchmarks run)
#   tools/build.sh asan      AddressSanitizer + UBSan, -O1 with debug info (what CI tests too)
set -euo pipefail
cd "$(dirname "$0")/.."
flavour=${1:-release}
jobs=${SY_JOBS:-$(nproc)}
case "$flavour" in
  release) args=(-DCMAKE_BUILD_TYPE=Release -DSY_WERROR=ON) ;;
  asan) args=(-DCMAKE_BUILD_TYPE=RelWithDebInfo -DSY_SANITIZE=ON -DSY_WERROR=ON
              "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O1 -g") ;;
  *) echo "build.sh: unknown flavour '$flavour', expected release or asan" >&2; exit 2 ;;
esac
cmake -S . -B "build/$flavour" -G Ninja "${args[@]}" >/dev/null
ninja -C "build/$flavour" -j "$jobs"
