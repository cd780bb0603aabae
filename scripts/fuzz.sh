#!/usr/bin/env bash
# Runs every libFuzzer target (fuzz/fuzz_*.cpp) from its committed seeds plus a growing corpus,
# one after another, each until RUNS inputs or SECONDS of time, whichever comes first, and prints
# one line per target (inputs run, corpus size, result). A crash, leak, UB report or timeout stops
# the script with the target's log and the reproducer left in build/fuzz/.
# usage: scripts/fuzz.sh [SECONDS_PER_TARGET=60] [RUNS_PER_TARGET=0 (no limit)] [TARGET...]
#   e.g. scripts/fuzz.sh 1500 10000000          # the 10M-input runs of docs/fuzz-log.md
# Environment: PALI3_FUZZ_RSS_MB (default 2048), PALI3_FUZZ_ARGS (more libFuzzer flags, e.g.
# -max_len=512), PALI3_FUZZ_CHUNK (inputs per process, see below), PALI3_FUZZ_BUILD (build/fuzz).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}; runs=${2:-0}; shift $(( $# > 2 ? 2 : $# ))
targets=("$@")
if [[ ${#targets[@]} -eq 0 ]]; then
  for f in fuzz/fuzz_*.cpp; do t=$(basename "$f" .cpp); targets+=("${t#fuzz_}"); done
fi
build=${PALI3_FUZZ_BUILD:-build/fuzz}
if [[ ! -f $build/build.ninja ]]; then
  cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -gline-tables-only -DNDEBUG" -DCMAKE_CXX_COMPILER=clang++ -DPALI3_FUZZ=ON \
    -DPALI3_BUILD_TESTS=OFF -DPALI3_BUILD_BENCH=OFF -DPALI3_BUILD_EXAMPLES=OFF -DPALI3_BUILD_TOOLS=OFF \
    -DPALI3_HEADER_CHECKS=OFF -DPALI3_MPI_TESTS=OFF >/dev/null
fi
cmake --build "$build" --target "${targets[@]/#/fuzz_}"
for t in "${targets[@]}"; do
  corpus=$build/fuzz/corpus_$t; log=$build/fuzz/fuzz_$t.log
  mkdir -p "$corpus"
  start=$(date +%s); total=0; procs=0
  # In chunks of PALI3_FUZZ_CHUNK inputs per process (default: one process): a long-running
  # libFuzzer + ASan process slows down as the sanitizer's bookkeeping grows (fuzz_prompt: 4k
  # inputs/s at first, 1.8k/s after 20 minutes); a fresh process on the same corpus does not.
  chunk=${PALI3_FUZZ_CHUNK:-0}
  while :; do
    left=$(( seconds - ($(date +%s) - start) ))
    (( left > 0 )) || break
    n=-1
    if (( runs > 0 )); then n=$(( runs - total )); (( chunk > 0 && chunk < n )) && n=$chunk; fi
    if ! (cd "$build/fuzz" && ./fuzz_"$t" -max_total_time="$left" -runs="$n" -rss_limit_mb="${PALI3_FUZZ_RSS_MB:-2048}" \
          -timeout=20 -print_final_stats=1 ${PALI3_FUZZ_ARGS:-} "corpus_$t" "$OLDPWD/fuzz/corpus/$t") >"$log" 2>&1; then
      tail -40 "$log"; echo "fuzz_$t: FAILED (log $log)"; exit 1
    fi
    total=$(( total + $(sed -n 's/^stat::number_of_executed_units: *//p' "$log") )); procs=$((procs + 1))
    (( runs > 0 && total < runs && chunk > 0 )) || break
  done
  echo "fuzz_$t: $total inputs in $(( $(date +%s) - start )) s ($procs process(es)), corpus $(ls "$corpus" | wc -l) files, clean"
done
