#!/usr/bin/env bash
# Our towers beside ONNX Runtime and PyTorch, on the same weights and inputs, in one run
# (docs/benchmarks.md, "Peers"). On a fresh Debian machine:
#   bash scripts/peers.sh [--rounds 3] [--workloads vit_b16,vit_b16_block,t5_xl_block] [--plot docs/img/peers.png]
# Installs what it needs (Debian's python3-torch and python3-numpy, npm's onnxruntime-node into
# build/peers/node_modules; nothing is downloaded at run time), builds the pali3 command and the
# benchmark binary (Release, g++), then runs scripts/peers.py: outputs checked against each other,
# then interleaved timings on 1 and 2 threads; a table on stdout, build/peers/peers.json.
# Measure on a quiet machine: every peer shares the cores with whatever else runs.
set -euo pipefail
cd "$(dirname "$0")/.."

ORT_VERSION=1.30.0
SUDO=""
[ "$(id -u)" = 0 ] || SUDO="sudo"

bash scripts/install-deps.sh
need=()
/usr/bin/python3 -c 'import torch' 2>/dev/null || need+=(python3-torch)
/usr/bin/python3 -c 'import numpy' 2>/dev/null || need+=(python3-numpy)
command -v node >/dev/null || need+=(nodejs)
command -v npm >/dev/null || need+=(npm)
if [ ${#need[@]} -gt 0 ]; then
    echo "peers: installing ${need[*]}"
    $SUDO apt-get update -qq
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends -qq "${need[@]}" >/dev/null
fi

mkdir -p build/peers
if [ "$(node -e "try{console.log(require('./build/peers/node_modules/onnxruntime-node/package.json').version)}catch(e){}")" != "$ORT_VERSION" ]; then
    # --ignore-scripts: the CPU binaries ship in the package; its install script only fetches GPU ones.
    (cd build/peers && npm install --no-audit --no-fund --no-save --ignore-scripts "onnxruntime-node@$ORT_VERSION")
fi

cmake -S . -B build/gcc -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_COMPILER=g++ >/dev/null
ninja -C build/gcc tools/pali3 bench/pali3_bench

exec /usr/bin/python3 scripts/peers.py --build build/gcc --work build/peers "$@"
