#!/usr/bin/env bash
# Installs the dependencies, then builds and runs the whole test suite twice:
#   1. g++, Release, -march=native: unit tests, header self-containment, the three consumer
#      builds, and a benchmark smoke run;
#   2. clang++, -Werror, AddressSanitizer + UndefinedBehaviorSanitizer: the unit tests.
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc)
bash scripts/install-deps.sh

echo "== g++ Release =="
cmake -S . -B build/gcc -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_COMPILER=g++ >/dev/null
cmake --build build/gcc -j "$jobs"
ctest --test-dir build/gcc -j "$jobs" --output-on-failure
# The benchmarks must keep running, not only compiling: one short pass over the small cases.
build/gcc/bench/pali3_bench --benchmark_min_time=0.01 \
  --benchmark_filter='softmax|layer_norm|rms_norm|gelu|gemm_f32/64/|vit_block/B16' >/dev/null
build/gcc/examples/pali3_compose_variant >/dev/null

echo "== clang++ -Werror, ASan + UBSan =="
cmake -S . -B build/clang-asan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_CXX_COMPILER=clang++ -DPALI3_WERROR=ON -DPALI3_SANITIZE=address,undefined \
  -DPALI3_BUILD_BENCH=OFF -DPALI3_BUILD_EXAMPLES=OFF >/dev/null
cmake --build build/clang-asan -j "$jobs"
ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
  ctest --test-dir build/clang-asan -j "$jobs" --output-on-failure -LE consumer
