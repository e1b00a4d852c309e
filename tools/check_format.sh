#!/usr/bin/env bash
# Fails when a C++ file of ours differs from clang-format's output (.clang-format: Google, 100
# columns). `tools/check_format.sh --fix` rewrites the files instead.
set -euo pipefail
cd "$(dirname "$0")/.."
mapfile -t files < <(git ls-files -- 'src/*.h' 'src/*.cpp' 'tests/*.h' 'tests/*.cpp' \
  'bench/*.h' 'bench/*.cpp' 'apps/*.h' 'apps/*.cpp')
if [[ ${1:-} == --fix ]]; then
  clang-format -i "${files[@]}"
  exit 0
fi
if ! clang-format --dry-run --Werror "${files[@]}" 2>/tmp/sy_format.txt; then
  grep -E '^[^ ].*(warning|error):' /tmp/sy_format.txt | cut -d: -f1 | sort -u |
    sed 's/^/check_format: not formatted: /'
  echo "check_format: run tools/check_format.sh --fix"
  exit 1
fi
echo "check_format: ${#files[@]} files formatted"
