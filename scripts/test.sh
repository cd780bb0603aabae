#!/usr/bin/env bash
# Installs the dependencies, then builds and runs the whole test suite twice:
#   1. g++, Release, -march=native: unit tests, header self-containment, the three consumer
#      builds, and a benchmark smoke run;
#   2. clang++, -Werror, AddressSanitizer + UndefinedBehaviorSanitizer: the unit tests, the
#      command line end to end, and a short run of every libFuzzer target (headers
#      parsed once through pali3/pali3.hpp; self-containment and MPI are the g++ pass's).
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
  --benchmark_filter='softmax|layer_norm|rms_norm|gelu|gemm_f32/64/|vit_block/B16|attention_(f32|bf16)/196' >/dev/null
build/gcc/examples/pali3_compose_variant >/dev/null
build/gcc/examples/pali3_siglip_train 100 >/dev/null

echo "== clang++ -Werror, ASan + UBSan =="
# Line tables only: sanitizer reports keep file:line, the build spends less on debug info. -O1, as
# the sanitizers' docs advise: tests/kernels/test_gemm.cpp compiles in 308 s of CPU against 384 s
# at -O2 (the largest file of this pass), for a few seconds more of test time.
cmake -S . -B build/clang-asan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -gline-tables-only -DNDEBUG" \
  -DCMAKE_CXX_COMPILER=clang++ -DPALI3_WERROR=ON -DPALI3_SANITIZE=address,undefined \
  -DPALI3_BUILD_BENCH=OFF -DPALI3_BUILD_EXAMPLES=OFF -DPALI3_MPI_TESTS=OFF -DPALI3_HEADER_CHECKS=OFF -DPALI3_FUZZ=ON >/dev/null
cmake --build build/clang-asan -j "$jobs"
ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
  ctest --test-dir build/clang-asan -j "$jobs" --output-on-failure -LE 'consumer|mpi'
# Fuzz each kind of untrusted input (checkpoints, npy arrays, configs, images, tokenizer models,
# prompts and generated ids, flags) for a few seconds from the committed seeds, which hold the
# inputs of every bug found so far (scripts/fuzz.sh runs them longer; docs/robustness.md).
for f in safetensors npz npy config image tokenizer prompt flags; do
  mkdir -p "build/clang-asan/fuzz/corpus_$f"
  log="build/clang-asan/fuzz/fuzz_$f.log"
  if ! build/clang-asan/fuzz/fuzz_$f -max_total_time="${PALI3_FUZZ_SECONDS:-8}" -rss_limit_mb=2048 \
       -print_final_stats=1 "build/clang-asan/fuzz/corpus_$f" "fuzz/corpus/$f" >"$log" 2>&1; then
    tail -40 "$log"; echo "fuzz_$f failed"; exit 1
  fi
  echo "fuzz_$f: $(grep -E 'stat::number_of_executed_units' "$log")"
done
