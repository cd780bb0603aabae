#!/usr/bin/env bash
# Installs pali3's build dependencies from Debian 12 packages (nothing else is downloaded).
# Skips apt when everything is already there; needs root (or sudo) otherwise.
set -euo pipefail
packages=(cmake ninja-build g++ clang pkg-config libxtensor-dev xtl-dev libxsimd-dev
          libsentencepiece-dev sentencepiece libstb-dev libbenchmark-dev catch2 libopenblas-dev
          libclang-rt-14-dev libopenmpi-dev openmpi-bin libcli11-dev)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} packages present"
  exit 0
fi
echo "install-deps: installing ${missing[*]}"
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y --no-install-recommends -qq "${missing[@]}" >/dev/null
