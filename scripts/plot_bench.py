#!/usr/bin/env python3
"""Plots pali3_bench JSON output as a PNG: GFLOP/s of every GEMM shape for our f32 GEMM, our bf16
GEMM (AMX when the CPU has it, and the portable xsimd path) and OpenBLAS sgemm, on 1 and 2
threads, against the fp32 FMA peak; and GB/s of the bf16/f32 GEMV against DRAM bandwidth.

  build/gcc/bench/pali3_bench --benchmark_filter='gemm|gemv|openblas' --benchmark_repetitions=3 \\
      --benchmark_out=bench.json --benchmark_out_format=json
  python3 scripts/plot_bench.py bench.json docs/img/kernels.png

Needs matplotlib (Debian: python3-matplotlib), a documentation-only dependency."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_table  # noqa: E402

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

FMA_PEAK = {1: 135.0, 2: 266.0}   # GFLOP/s, DESIGN.md section 3
DRAM = {1: 11.0, 2: 21.0}         # GB/s


def medians(path):
    return bench_table.load(path)[1]  # the same median-per-case reading as the markdown tables


def value(b, key):
    v = b.get(key)
    return float(v) if v is not None else 0.0


def main(src, dst):
    rows = medians(src)
    kinds = [("gemm_f32", "pali3 f32"), ("gemm_bf16", "pali3 bf16 (AMX)"), ("gemm_bf16_xsimd", "pali3 bf16 (xsimd)"),
             ("openblas_sgemm", "OpenBLAS sgemm")]
    shapes = sorted({tuple(n.split("/")[1:4]) for n in rows if n.startswith("gemm_f32/")}, key=lambda s: [int(x) for x in s])
    fig, axes = plt.subplots(1, 3, figsize=(18, 5.5), gridspec_kw={"width_ratios": [2, 2, 1.2]})
    for ax, threads in zip(axes[:2], (1, 2)):
        width = 0.8 / len(kinds)
        for i, (kind, label) in enumerate(kinds):
            ys = [value(rows.get(f"{kind}/{m}/{k}/{n}/{threads}", {}), "GFLOP/s") / 1e0 for (m, k, n) in shapes]
            ys = [y / 1 for y in ys]
            ax.bar([x + i * width for x in range(len(shapes))], ys, width, label=label)
        ax.axhline(FMA_PEAK[threads], color="k", linestyle="--", linewidth=1, label=f"fp32 FMA peak ({FMA_PEAK[threads]:.0f})")
        ax.set_xticks([x + 0.4 - width / 2 for x in range(len(shapes))])
        ax.set_xticklabels(["{}x{}x{}".format(*s) for s in shapes], rotation=35, ha="right", fontsize=8)
        ax.set_ylabel("GFLOP/s")
        ax.set_title(f"GEMM (M x K x N), {threads} thread{'s' if threads > 1 else ''}")
        ax.legend(fontsize=8)
    ax = axes[2]
    gemv = sorted({tuple(n.split("/")[1:5]) for n in rows if n.startswith("gemv_bf16/")}, key=lambda s: [int(x) for x in s])
    labels, ours_bf16, ours_f32, limits = [], [], [], []
    for (m, k, n, t) in gemv:
        labels.append(f"{m}x{k}x{n} t{t}")
        ours_bf16.append(value(rows.get(f"gemv_bf16/{m}/{k}/{n}/{t}", {}), "GB/s"))
        ours_f32.append(value(rows.get(f"gemv_f32/{m}/{k}/{n}/{t}", {}), "GB/s"))
        limits.append(DRAM[int(t)] if int(t) in DRAM else 0)
    xs = range(len(labels))
    ax.bar([x - 0.2 for x in xs], ours_bf16, 0.4, label="pali3 gemv bf16")
    ax.bar([x + 0.2 for x in xs], ours_f32, 0.4, label="pali3 gemv f32")
    ax.plot(list(xs), limits, "k_", markersize=30, label="DRAM (STREAM)")
    ax.set_xticks(list(xs))
    ax.set_xticklabels(labels, rotation=35, ha="right", fontsize=8)
    ax.set_ylabel("GB/s of weights read")
    ax.set_title("GEMV (decode)")
    ax.legend(fontsize=8)
    fig.suptitle("pali3 kernels on this machine (medians; shared 2-core machine, compare within one run)")
    fig.tight_layout()
    fig.savefig(dst, dpi=90)
    print(f"wrote {dst}")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: plot_bench.py BENCH.json OUT.png")
    main(sys.argv[1], sys.argv[2])
