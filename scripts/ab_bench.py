#!/usr/bin/env python3
"""A/B comparison of two benchmark binaries on a shared, noisy machine.

Runs `before` and `after` alternately (ABAB...) for ROUNDS rounds with the same filter, so both
see the same load, and prints per benchmark the median and minimum real time of each and the
ratio after/before. Noise from other tenants only ever slows a run down, so the minimum is the
steadier figure; the median shows whether the minimum was luck.

  scripts/ab_bench.py /tmp/bench_before build/bench/pali3_bench 'vit_tower_prepacked/B16/224/1' --rounds 8
"""
import argparse
import json
import statistics
import subprocess
import sys
import tempfile


def run(binary, pattern):
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        subprocess.run([binary, f"--benchmark_filter={pattern}", f"--benchmark_out={out.name}",
                        "--benchmark_out_format=json"], check=True, capture_output=True, text=True)
        benchmarks = json.load(open(out.name))["benchmarks"]
    if not benchmarks:
        sys.exit(f"{binary}: no benchmark matches {pattern!r}")
    return ({b["name"]: b["real_time"] for b in benchmarks if b.get("run_type", "iteration") == "iteration"},
            benchmarks[0]["time_unit"])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("before")
    ap.add_argument("after")
    ap.add_argument("filter")
    ap.add_argument("--rounds", type=int, default=6)
    args = ap.parse_args()
    times = {"before": {}, "after": {}}
    unit = ""
    for _ in range(args.rounds):
        for side in ("before", "after"):
            got, unit = run(getattr(args, side), args.filter)
            for name, t in got.items():
                times[side].setdefault(name, []).append(t)
    print(f"| benchmark | before median / min ({unit}) | after median / min ({unit}) | after / before (min) |")
    print("|---|---|---|---|")
    for name in times["before"]:
        b, a = times["before"][name], times["after"].get(name)
        if not a:
            continue
        print(f"| {name} | {statistics.median(b):.1f} / {min(b):.1f} | {statistics.median(a):.1f} / {min(a):.1f} "
              f"| {min(a) / min(b):.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
