#!/usr/bin/env python3
"""Plots pali3_bench JSON output as a PNG: GFLOP/s of every GEMM shape for our f32 GEMM, our bf16
GEMM (on the engine this CPU picked: AMX tiles, AVX512-BF16, or the portable xsimd path), the
portable bf16 path and OpenBLAS sgemm, on 1 and 2 threads, against the f32 FMA peak and the bf16
dot peak; and GB/s of the GEMVs (both weight layouts, OpenBLAS sgemv) against the read bandwidth.
The limits are the run's own limit_* cases (bench/limits_bench.cpp), so the lines are this
machine's, measured next to the bars.

  build/gcc/bench/pali3_bench \\
      --benchmark_filter='^(limit_|gemm_f32|gemm_bf16|openblas_sgemm|gemv_|openblas_sgemv)' \\
      --benchmark_min_time=1 --benchmark_repetitions=3 --benchmark_report_aggregates_only=true \\
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


def value(rows, name, key):
    b = rows.get(name)
    if not b or b.get("error_occurred"):
        return 0.0
    v = b.get(key)
    return float(v) if v is not None else 0.0


def main(src, dst):
    context, rows = bench_table.load(src)  # medians per case, as the markdown tables
    lim = bench_table.limits(rows)
    engine = context.get("bf16_engine", "?")
    kinds = [("gemm_f32", "pali3 f32"), ("gemm_bf16", f"pali3 bf16 ({engine})"),
             ("gemm_bf16_xsimd", "pali3 bf16 (portable xsimd)"), ("openblas_sgemm", "OpenBLAS sgemm")]
    shapes = sorted({tuple(n.split("/")[1:4]) for n in rows if n.startswith("gemm_f32/")},
                    key=lambda s: [int(x) for x in s])
    fig, axes = plt.subplots(1, 3, figsize=(19, 5.8), gridspec_kw={"width_ratios": [2, 2, 1.5]})
    src_note = "measured" if lim["measured"] else "docs/benchmarks.md"
    for ax, threads in zip(axes[:2], (1, 2)):
        width = 0.8 / len(kinds)
        top = max([lim["fma"].get(threads, 0.0), lim["dot"].get(threads, 0.0)])
        for i, (kind, label) in enumerate(kinds):
            ys = [value(rows, f"{kind}/{m}/{k}/{n}/{threads}", "GFLOP/s") for (m, k, n) in shapes]
            top = max([top] + ys)
            ax.bar([x + i * width for x in range(len(shapes))], ys, width, label=label)
        ax.set_ylim(0, top * 1.4)  # room for the legend above the bars and lines
        if threads in lim["fma"]:
            ax.axhline(lim["fma"][threads], color="k", linestyle="--", linewidth=1,
                       label=f"f32 FMA peak, {src_note} ({lim['fma'][threads]:.0f})")
        if threads in lim["dot"]:
            ax.axhline(lim["dot"][threads], color="k", linestyle=":", linewidth=1,
                       label=f"bf16 vdpbf16ps peak, measured ({lim['dot'][threads]:.0f})")
        ax.set_xticks([x + 0.4 - width / 2 for x in range(len(shapes))])
        ax.set_xticklabels(["{}x{}x{}".format(*s) for s in shapes], rotation=35, ha="right", fontsize=8)
        ax.set_ylabel("GFLOP/s")
        ax.set_title(f"GEMM (M x K x N), {threads} thread{'s' if threads > 1 else ''}")
        ax.legend(fontsize=7, loc="upper left", ncol=2)
    ax = axes[2]
    cases = sorted({tuple(n.split("/")[1:5]) for n in rows if n.startswith("gemv_bf16/")},
                   key=lambda s: [int(x) for x in s[3:]] + [int(x) for x in s[:3]])
    series = [("gemv_bf16", "bf16 W (n, k)"), ("gemv_bf16_kn", "bf16 W (k, n)"), ("gemv_f32", "f32 W (n, k)"),
              ("openblas_sgemv", "OpenBLAS sgemv (f32)")]
    series = [s for s in series if any(n.startswith(s[0] + "/") for n in rows)]
    width = 0.8 / max(1, len(series))
    top = max(lim["read"].values(), default=0.0)
    for i, (kind, label) in enumerate(series):
        ys = [value(rows, f"{kind}/{m}/{k}/{n}/{t}", "GB/s") for (m, k, n, t) in cases]
        top = max([top] + ys)
        ax.bar([x + i * width for x in range(len(cases))], ys, width, label=label)
    ax.set_ylim(0, top * 1.4)
    for x, (m, k, n, t) in enumerate(cases):
        bw = lim["read"].get(int(t))
        if bw:
            ax.plot([x - width / 2, x + 0.8 - width / 2], [bw, bw], "k-", linewidth=1.5,
                    label=f"read bandwidth, {src_note}" if x == 0 else None)
    ax.set_xticks([x + 0.4 - width / 2 for x in range(len(cases))])
    ax.set_xticklabels([f"{m}x{k}x{n} t{t}" for (m, k, n, t) in cases], rotation=35, ha="right", fontsize=8)
    ax.set_ylabel("GB/s of weights read")
    ax.set_title("GEMV (decode; m = rows of A)")
    ax.legend(fontsize=7, loc="upper left", ncol=2)
    fig.suptitle(f"pali3 kernels on {context.get('cpu', 'this machine')}, bf16 engine {engine} "
                 f"(medians of {context.get('date', '?')[:10]}; shared machine, compare within one run)")
    fig.tight_layout()
    fig.savefig(dst, dpi=90)
    print(f"wrote {dst}")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: plot_bench.py BENCH.json OUT.png")
    main(sys.argv[1], sys.argv[2])
