#!/usr/bin/env python3
"""Turns pali3_bench JSON output (--benchmark_out=FILE --benchmark_out_format=json, ideally
with --benchmark_repetitions=N) into the markdown tables of docs/benchmarks.md: medians per
case, GEMM next to OpenBLAS at the same shape and thread count, and % of the machine limits."""
import json
import re
import sys

# Used only when the JSON has no limit_* cases (older runs, or a --benchmark_filter without
# them): the Intel machine of docs/benchmarks.md ("Limits of this machine").
FALLBACK_FMA = {1: 135.0, 2: 266.0}  # GFLOP/s
FALLBACK_READ = {1: 11.0, 2: 21.0}   # GB/s


def load(path):
    with open(path) as f:
        data = json.load(f)
    rows = {}
    for b in data["benchmarks"]:
        if b.get("run_type") == "aggregate" and b.get("aggregate_name") != "median":
            continue
        name = re.sub(r"(/real_time)?(_median)?$", "", b["name"])
        rows[name] = b
    # Random interleaving shuffles the order; print in a stable one.
    key = lambda n: [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", n)]
    return data.get("context", {}), {n: rows[n] for n in sorted(rows, key=key)}


def counter(b, key):
    v = b.get(key)
    return float(v) if v is not None else None


def limits(rows):
    """The machine limits measured in the same run (bench/limits_bench.cpp), by thread count:
    {"fma": {1: GFLOP/s, 2: ...}, "dot": {...} (AVX512-BF16, may be empty), "read": {1: GB/s, ...},
    "measured": bool}. Falls back to the Intel figures of docs/benchmarks.md when the run has no limit_* cases."""
    out = {"fma": {}, "dot": {}, "read": {}}
    for name, b in rows.items():
        m = re.match(r"limit_(fma_f32|dot_bf16|read)/(\d+)$", name)
        if not m or b.get("error_occurred"):
            continue
        kind = {"fma_f32": "fma", "dot_bf16": "dot", "read": "read"}[m.group(1)]
        v = counter(b, "GB/s" if kind == "read" else "GFLOP/s")
        if v:
            out[kind][int(m.group(2))] = v
    out["measured"] = bool(out["fma"] and out["read"])
    if not out["fma"]:
        out["fma"] = dict(FALLBACK_FMA)
    if not out["read"]:
        out["read"] = dict(FALLBACK_READ)
    return out


def main(path):
    context, rows = load(path)
    lim = limits(rows)
    print(f"Run: {context.get('date', '?')}, {context.get('cpu', '?')}, {context.get('num_cpus', '?')} CPUs, "
          f"load {context.get('load_avg', '?')}, bf16 engine {context.get('bf16_engine', '?')}")
    src = "measured in this run" if lim["measured"] else "not in this run: the Intel figures of docs/benchmarks.md"
    fmt_lim = lambda d, unit: ", ".join(f"{v:.0f} {unit} ({t}T)" for t, v in sorted(d.items())) or "-"
    print(f"Limits ({src}): f32 FMA {fmt_lim(lim['fma'], 'GFLOP/s')}; bf16 dot {fmt_lim(lim['dot'], 'GFLOP/s')}; "
          f"read {fmt_lim(lim['read'], 'GB/s')}\n")
    print("| shape m/k/n | threads | pali3 f32 (n,k) | pali3 f32 (k,n) | pali3 f32 prepacked | pali3 bf16 | OpenBLAS "
          "| f32 / OpenBLAS | f32 % of peak | prepacked % of peak |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, b in rows.items():
        m = re.match(r"gemm_f32/(\d+)/(\d+)/(\d+)/(\d+)$", name)
        if not m:
            continue
        shape, t = "/".join(m.groups()[:3]), int(m.group(4))
        ours = counter(b, "GFLOP/s")
        kn = rows.get(f"gemm_f32_kn/{shape}/{t}")
        bf = rows.get(f"gemm_bf16/{shape}/{t}")
        pp = rows.get(f"gemm_f32_prepacked/{shape}/{t}")
        ppv = counter(pp, "GFLOP/s") if pp else None
        ob = rows.get(f"openblas_sgemm/{shape}/{t}")
        obv = counter(ob, "GFLOP/s") if ob else None
        fmt = lambda x: f"{x:.1f}" if x is not None else "-"
        ratio = f"{ours / obv:.2f}" if obv else "-"
        peak = lim["fma"].get(t)
        pct = lambda x: f"{100 * x / peak:.0f}%" if x is not None and peak else "-"
        print(f"| {shape} | {t} | {fmt(ours)} | {fmt(counter(kn, 'GFLOP/s') if kn else None)} | {fmt(ppv)} | "
              f"{fmt(counter(bf, 'GFLOP/s') if bf else None)} | {fmt(obv)} | {ratio} | {pct(ours)} | {pct(ppv)} |")
    print()
    print("| case | GB/s | % of DRAM bandwidth (threads) |")
    print("|---|---|---|")
    for name, b in rows.items():
        if not re.match(r"(gemv_|openblas_sgemv)", name):
            continue
        t = int(name.split("/")[-1])
        gbs = counter(b, "GB/s")
        bw = lim["read"].get(t)
        print(f"| {name} | {gbs:.1f} | {f'{100 * gbs / bw:.0f}%' if bw else '-'} |")
    print()
    print("| case | GB/s |")
    print("|---|---|")
    for name, b in rows.items():
        if re.match(r"(softmax|layer_norm|rms_norm|gelu|gated_gelu|convert_bf16)", name):
            print(f"| {name} | {counter(b, 'GB/s'):.1f} |")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "bench.json")
