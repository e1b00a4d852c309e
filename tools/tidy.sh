#!/usr/bin/env bash
# clang-tidy (the subset in .clang-tidy) on C++ sources changed since BASE, or on the given
# files. BASE defaults to the last commit older than 6 hours (what a session changed); with
# --all every source is checked. Needs build/release/compile_commands.json (tools/build.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=${SY_JOBS:-$(nproc)}

if [[ ${1:-} == --all ]]; then
  mapfile -t files < <(git ls-files -- 'src/*.cpp' 'apps/*.cpp' 'bench/*.cpp')
elif [[ $# -gt 0 ]]; then
  files=("$@")
else
  base=$(git rev-list -1 --before='6 hours ago' HEAD 2>/dev/null || true)
  [[ -n $base ]] || base=$(git rev-list --max-parents=0 HEAD | tail -n 1)
  mapfile -t files < <(git diff --name-only --diff-filter=d "$base" -- 'src/*.cpp' 'apps/*.cpp' \
    'bench/*.cpp'; [[ $base == $(git rev-list --max-parents=0 HEAD | tail -n 1) ]] &&
    git ls-tree -r --name-only "$base" -- src apps bench | grep '\.cpp$' || true)
  mapfile -t files < <(printf '%s\n' "${files[@]}" | sort -u | grep . || true)
fi
if ((${#files[@]} == 0)); then
  echo "tidy: no changed sources"
  exit 0
fi
echo "tidy: ${#files[@]} file(s)"
printf '%s\n' "${files[@]}" |
  xargs -P "$jobs" -I{} clang-tidy -p build/release --quiet \
    --extra-arg=-Wno-unknown-warning-option {} 2>/dev/null
echo "tidy: clean"
