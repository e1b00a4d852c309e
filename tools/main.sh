#!/usr/bin/env bash
# The main job: set up, build Release, describe the machine, then generate text from the
# embedded default model (models/default: a small Mixtral-layout MoE trained by
# `switchyard train models/default/train.toml` on the bundled Brown corpus) with its per-layer
# routing summary, and score it on the corpus documents its training run held out.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh
bash tools/build.sh release
./build/release/switchyard env
./build/release/switchyard run -m models/default -p "The jury said that the city" -n 64 \
  --temp 0.7 --seed 1 --routing-stats
./build/release/switchyard eval -m models/default --data data/brown.txt --split validation \
  --seq-len 128 --max-sequences 256
