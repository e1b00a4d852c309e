#!/usr/bin/env bash
# Enforces DESIGN.md's layer rules: a file under src/<layer>/ may include only headers of the
# layers listed for it below (and its own layer). Prints every violation; exits 1 if any.
set -euo pipefail
cd "$(dirname "$0")/.."

declare -A allowed=(
  [core]=""
  [kernels]="core"
  [io]="core"
  [moe]="core kernels"
  [model]="core kernels moe io"
  [train]="core kernels moe io model"
  [infer]="core kernels moe io model"
  [serve]="core kernels moe io model infer"
  [dist]="core kernels moe"
)

bad=0
checked=0
while IFS= read -r -d '' file; do
  layer=${file#src/}
  layer=${layer%%/*}
  if [[ -z ${allowed[$layer]+set} ]]; then
    echo "$file: layer '$layer' is not in tools/check_layers.sh (add it with its allowed layers)"
    bad=1
    continue
  fi
  checked=$((checked + 1))
  while IFS= read -r line; do
    lineno=${line%%:*}
    target=$(sed -E 's/.*#include "([^/"]+)\/.*/\1/' <<<"${line#*:}")
    [[ $target == "$layer" ]] && continue
    if [[ " ${allowed[$layer]} " != *" $target "* ]]; then
      echo "$file:$lineno: layer '$layer' includes '$target' (allowed: ${allowed[$layer]:-nothing})"
      bad=1
    fi
  done < <(grep -nE '^[[:space:]]*#[[:space:]]*include[[:space:]]+"[^/"]+/' "$file" || true)
done < <(find src -type f \( -name '*.h' -o -name '*.cpp' \) -print0)

if ((bad)); then
  echo "check_layers: upward includes found (see DESIGN.md, Layers)"
  exit 1
fi
echo "check_layers: $checked files keep to the layer rules"
