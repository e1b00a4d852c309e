#!/usr/bin/env bash
# The main job: set up, build Release, then run the most complete end-to-end thing switchyard
# does today. Until a model exists that is: describe the machine, then measure its limits and
# every kernel against them, then the MoE layer (forward + backward) against PyTorch in the same
# run (JSON lines on stdout, a table on stderr).
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh
bash tools/build.sh release
./build/release/switchyard env
./build/release/switchyard bench kernels
./build/release/switchyard bench moe
