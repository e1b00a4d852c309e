#!/usr/bin/env bash
# Installs every Debian package switchyard needs to build, test and benchmark. Idempotent: when
# everything is already installed it only checks (well under a second) and touches nothing.
set -euo pipefail

packages=(
  # toolchain
  cmake ninja-build g++ ccache pkg-config git
  clang-format clang-tidy libomp-14-dev libclang-rt-14-dev
  # libraries (see DESIGN.md "Chosen dependencies")
  libfmt-dev libopenblas-dev libopenblas-openmp-dev libhwy-dev nlohmann-json3-dev
  libcli11-dev libcpp-httplib-dev libsentencepiece-dev libicu-dev libtomlplusplus-dev
  # tests and benchmarks
  libgtest-dev libgmock-dev libbenchmark-dev
  # PyTorch references for the tests (Debian's interpreter: /usr/bin/python3)
  python3 python3-torch python3-numpy
  # report plots (switchyard study)
  python3-matplotlib
)

missing=()
for p in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  [[ "$status" == "install ok installed" ]] || missing+=("$p")
done

if ((${#missing[@]} == 0)); then
  echo "setup: all ${#packages[@]} packages present"
  exit 0
fi

echo "setup: installing ${missing[*]}"
sudo=()
if [[ $(id -u) -ne 0 ]]; then
  command -v sudo >/dev/null || { echo "setup: need root or sudo to install packages" >&2; exit 1; }
  sudo=(sudo)
fi
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
echo "setup: done"
