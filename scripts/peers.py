#!/usr/bin/env python3
"""Our towers beside ONNX Runtime and PyTorch, on the same weights and inputs, in one run.

Each workload's weights are written by `pali3 init` (seeded); a PyTorch module is built from that
same file, exported to ONNX, and all three outputs are checked against each other before any
timing. Then every peer runs in its own process, interleaved (round after round: each workload,
each thread count, each peer), so a noisy neighbour hits all of them alike; the table gives the
median over rounds of each process's median. The machine's limits (f32 FMA and bf16 dot peaks)
come from the same run (pali3_bench's limit_* cases).

Workloads (batch 1):
  vit_b16        SigLIP ViT-B/16 image tower at 224 px: patch embedding, position table,
                 12 pre-norm blocks, final LayerNorm (196 tokens, width 768, tanh GELU)
  vit_b16_block  the same with one block: patch embedding + 1 block + LayerNorm
  t5_xl_block    T5 v1.1 XL shape (UL2-3B, PaLI-3's text width: d_model 2048, d_ff 5120,
                 32 heads of 64, gated tanh GELU), 1 encoder + 1 decoder block, vocabulary 512:
                 encode 64 tokens, then one teacher-forced decoder step to logits

Peers, each set up as its documentation recommends for CPU inference speed:
  ONNX Runtime   npm onnxruntime-node, CPU provider, graph optimisation level "all",
                 intra-op threads = T, sequential execution, static shapes
  PyTorch        Debian python3-torch, torch.inference_mode, set_num_threads(T); timed eager and
                 TorchScript (trace + freeze + optimize_for_inference); the faster is reported
  pali3          `pali3 dump --time N --prepack` (f32 and bf16 weights): the same model code as
                 every other command, weights prepacked into the GEMM's layout as ORT does

Run through scripts/peers.sh (installs the peers, builds ours); by hand:
  /usr/bin/python3 scripts/peers.py --build build/gcc --work build/peers
It prints a table and writes WORK/peers.json (and --plot PNG when matplotlib is there)."""
import argparse
import json
import math
import os
import re
import statistics
import struct
import subprocess
import sys
import time

import numpy as np

WORKLOADS = {
    "vit_b16": {"kind": "vit", "config": {"model": "vit", "vision": {
        "width": 768, "depth": 12, "mlp": 3072, "heads": 12, "patch": 16, "image": 224, "map_head": False}}},
    "vit_b16_block": {"kind": "vit", "config": {"model": "vit", "vision": {
        "width": 768, "depth": 1, "mlp": 3072, "heads": 12, "patch": 16, "image": 224, "map_head": False}}},
    "t5_xl_block": {"kind": "t5", "tokens": 64, "config": {"model": "t5", "text": {
        "vocab": 512, "d_model": 2048, "d_ff": 5120, "heads": 32, "d_kv": 64,
        "encoder_layers": 1, "decoder_layers": 1}}},
}


# ---- weights and inputs ---------------------------------------------------------------------

def read_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        if t["dtype"] != "F32":
            raise SystemExit(f"{path}: {name} is {t['dtype']}, expected F32 (written by pali3 init)")
        b, e = t["data_offsets"]
        out[name] = np.frombuffer(data[b:e], dtype=np.float32).reshape(t["shape"])
    return out


def flops(name):
    """Multiply-adds x 2 of one forward (matrix products and attention; norms and activations left out)."""
    c = WORKLOADS[name]["config"]
    if WORKLOADS[name]["kind"] == "vit":
        v = c["vision"]
        t, w, p = (v["image"] // v["patch"]) ** 2, v["width"], v["patch"]
        block = 2 * t * (4 * w * w + 2 * w * v["mlp"]) + 4 * t * t * w
        return 2 * t * 3 * p * p * w + v["depth"] * block
    x = c["text"]
    t, d, f, inner, vocab = WORKLOADS[name]["tokens"], x["d_model"], x["d_ff"], x["heads"] * x["d_kv"], x["vocab"]
    enc = 2 * t * (4 * d * inner + 3 * d * f) + 4 * t * t * inner
    dec = 2 * (6 * d * inner + 3 * d * f) + 2 * t * 2 * d * inner + 4 * (1 + t) * inner + 2 * d * vocab
    return enc + dec


# ---- PyTorch modules built from the checkpoint ----------------------------------------------

def torch_modules():
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    def P(w, name):
        return nn.Parameter(torch.from_numpy(w[name].copy()), requires_grad=False)

    def linear(w, prefix, bias=True):
        out_f, in_f = w[prefix + ".weight"].shape
        m = nn.Linear(in_f, out_f, bias=bias)
        m.weight = P(w, prefix + ".weight")
        if bias:
            m.bias = P(w, prefix + ".bias")
        return m

    class ViTBlock(nn.Module):
        def __init__(self, w, pre, width, heads):
            super().__init__()
            self.heads, self.scale = heads, (width // heads) ** -0.5
            self.norm1 = nn.LayerNorm(width, eps=1e-6)
            self.norm2 = nn.LayerNorm(width, eps=1e-6)
            for n in ("norm1", "norm2"):
                getattr(self, n).weight = P(w, f"{pre}{n}.weight")
                getattr(self, n).bias = P(w, f"{pre}{n}.bias")
            self.qkv = nn.Linear(width, 3 * width)  # one fused product, as timm and HF do
            self.qkv.weight = nn.Parameter(torch.from_numpy(np.concatenate(
                [w[f"{pre}attn.{x}.weight"] for x in "qkv"])), requires_grad=False)
            self.qkv.bias = nn.Parameter(torch.from_numpy(np.concatenate(
                [w[f"{pre}attn.{x}.bias"] for x in "qkv"])), requires_grad=False)
            self.o = linear(w, f"{pre}attn.o")
            self.fc1 = linear(w, f"{pre}mlp.fc1")
            self.fc2 = linear(w, f"{pre}mlp.fc2")

        def forward(self, x):
            b, t, d = x.shape
            q, k, v = self.qkv(self.norm1(x)).view(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4).unbind(0)
            a = torch.softmax((q * self.scale) @ k.transpose(-1, -2), dim=-1) @ v
            x = x + self.o(a.transpose(1, 2).reshape(b, t, d))
            return x + self.fc2(F.gelu(self.fc1(self.norm2(x)), approximate="tanh"))

    class ViT(nn.Module):
        def __init__(self, w, v):
            super().__init__()
            width, p = v["width"], v["patch"]
            self.patch = nn.Conv2d(3, width, p, stride=p)
            self.patch.weight = P(w, "embedding.weight")
            self.patch.bias = P(w, "embedding.bias")
            self.pos = P(w, "pos_embedding.weight")
            self.blocks = nn.ModuleList(ViTBlock(w, f"encoder.blocks.{i}.", width, v["heads"]) for i in range(v["depth"]))
            self.norm = nn.LayerNorm(width, eps=1e-6)
            self.norm.weight = P(w, "encoder.norm.weight")
            self.norm.bias = P(w, "encoder.norm.bias")

        def forward(self, pixels):
            x = self.patch(pixels).flatten(2).transpose(1, 2) + self.pos
            for b in self.blocks:
                x = b(x)
            return self.norm(x)

    def buckets(q_len, k_len, bidirectional, num_buckets=32, max_distance=128):
        # T5's relative position buckets (HF T5Attention._relative_position_bucket)
        rel = torch.arange(k_len)[None, :] - torch.arange(q_len)[:, None]
        ret = torch.zeros_like(rel)
        if bidirectional:
            num_buckets //= 2
            ret += (rel > 0).long() * num_buckets
            n = rel.abs()
        else:
            n = -torch.clamp(rel, max=0)
        exact = num_buckets // 2
        large = exact + (torch.log(n.float().clamp(min=1) / exact) / math.log(max_distance / exact)
                         * (num_buckets - exact)).long()
        large = torch.clamp(large, max=num_buckets - 1)
        return ret + torch.where(n < exact, n, large)

    class RMSNorm(nn.Module):
        def __init__(self, w, name):
            super().__init__()
            self.weight = P(w, name)

        def forward(self, x):
            return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6) * self.weight

    class T5Attention(nn.Module):
        def __init__(self, w, pre, heads):
            super().__init__()
            self.heads = heads
            self.q, self.k, self.v, self.o = (linear(w, f"{pre}.{x}", bias=False) for x in "qkvo")

        def forward(self, x, memory, bias):
            b, t, _ = x.shape
            s = memory.shape[1]
            q = self.q(x).view(b, t, self.heads, -1).transpose(1, 2)
            k = self.k(memory).view(b, s, self.heads, -1).transpose(1, 2)
            v = self.v(memory).view(b, s, self.heads, -1).transpose(1, 2)
            scores = q @ k.transpose(-1, -2)  # T5: no 1/sqrt(d) scaling
            if bias is not None:
                scores = scores + bias
            a = torch.softmax(scores, dim=-1) @ v
            return self.o(a.transpose(1, 2).reshape(b, t, -1))

    class T5FFN(nn.Module):
        def __init__(self, w, pre):
            super().__init__()
            self.wi_0, self.wi_1, self.wo = (linear(w, f"{pre}.{x}", bias=False) for x in ("wi_0", "wi_1", "wo"))

        def forward(self, x):
            return self.wo(F.gelu(self.wi_0(x), approximate="tanh") * self.wi_1(x))

    class T5(nn.Module):
        """Encoder and decoder of one block each; the position biases of the fixed lengths are constants."""

        def __init__(self, w, x, enc_len, dec_len):
            super().__init__()
            h = x["heads"]
            self.shared = P(w, "shared.weight")
            e = torch.from_numpy(w["encoder.rel_bias.weight"].copy())
            d = torch.from_numpy(w["decoder.rel_bias.weight"].copy())
            self.register_buffer("enc_bias", e[buckets(enc_len, enc_len, True)].permute(2, 0, 1)[None].contiguous())
            causal = torch.triu(torch.full((dec_len, dec_len), float("-inf")), diagonal=1)
            self.register_buffer("dec_bias", (d[buckets(dec_len, dec_len, False)].permute(2, 0, 1) + causal)[None].contiguous())
            self.e_n1, self.e_n2 = RMSNorm(w, "encoder.blocks.0.norm1.weight"), RMSNorm(w, "encoder.blocks.0.norm2.weight")
            self.e_attn, self.e_ffn = T5Attention(w, "encoder.blocks.0.attn", h), T5FFN(w, "encoder.blocks.0.mlp")
            self.e_norm = RMSNorm(w, "encoder.norm.weight")
            self.d_n1, self.d_n2, self.d_n3 = (RMSNorm(w, f"decoder.blocks.0.norm{i}.weight") for i in (1, 2, 3))
            self.d_self = T5Attention(w, "decoder.blocks.0.self_attn", h)
            self.d_cross = T5Attention(w, "decoder.blocks.0.cross_attn", h)
            self.d_ffn = T5FFN(w, "decoder.blocks.0.mlp")
            self.d_norm = RMSNorm(w, "decoder.norm.weight")
            self.lm_head = linear(w, "lm_head", bias=False)

        def forward(self, enc_ids, dec_ids):
            x = self.shared[enc_ids]
            h = self.e_n1(x)
            x = x + self.e_attn(h, h, self.enc_bias)
            x = x + self.e_ffn(self.e_n2(x))
            memory = self.e_norm(x)
            y = self.shared[dec_ids]
            h = self.d_n1(y)
            y = y + self.d_self(h, h, self.dec_bias)
            y = y + self.d_cross(self.d_n2(y), memory, None)
            y = y + self.d_ffn(self.d_n3(y))
            return self.lm_head(self.d_norm(y))

    return ViT, T5


def build_torch(name, weights_path):
    ViT, T5 = torch_modules()
    w = read_safetensors(weights_path)
    c = WORKLOADS[name]["config"]
    m = ViT(w, c["vision"]) if WORKLOADS[name]["kind"] == "vit" else T5(w, c["text"], WORKLOADS[name]["tokens"], 1)
    return m.eval()


def inputs(name, work):
    """The workload's inputs as numpy arrays (also written where the other processes read them)."""
    rng = np.random.RandomState(7)
    if WORKLOADS[name]["kind"] == "vit":
        s = WORKLOADS[name]["config"]["vision"]["image"]
        return {"pixels": rng.uniform(-1, 1, (1, 3, s, s)).astype(np.float32)}
    t, vocab = WORKLOADS[name]["tokens"], WORKLOADS[name]["config"]["text"]["vocab"]
    return {"enc_ids": rng.randint(0, vocab, (1, t)).astype(np.int64), "dec_ids": np.zeros((1, 1), np.int64)}


# ---- one timed process per peer -------------------------------------------------------------

def torch_worker(args):
    """Runs in its own process (threads are fixed at start): times eager and TorchScript, prints JSON."""
    import torch
    torch.set_num_threads(args.threads)
    torch.set_grad_enabled(False)
    work = args.work
    m = build_torch(args.workload, os.path.join(work, args.workload + ".safetensors"))
    feed = [torch.from_numpy(v) for v in inputs(args.workload, work).values()]
    out = {}
    with torch.inference_mode():
        modes = {"eager": m}
        traced = torch.jit.optimize_for_inference(torch.jit.freeze(torch.jit.trace(m, tuple(feed)).eval()))
        modes["torchscript"] = traced
        for mode, f in modes.items():
            for _ in range(args.warmup):
                f(*feed)
            ts = []
            for _ in range(args.runs):
                t0 = time.perf_counter()
                f(*feed)
                ts.append((time.perf_counter() - t0) * 1e3)
            out[mode] = statistics.median(ts)
    print(json.dumps(out))


def run_torch(a, name, threads):
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), OPENBLAS_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads),
               OMP_WAIT_POLICY="PASSIVE", OPENBLAS_CORETYPE=a.openblas_core)
    cmd = [sys.executable, os.path.abspath(__file__), "--torch-worker", "--workload", name, "--threads", str(threads),
           "--work", a.work, "--runs", str(a.runs), "--warmup", str(a.warmup)]
    r = json.loads(subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1])
    return r


def ort_feeds(name, work):
    specs = []
    for k, v in inputs(name, work).items():
        path = os.path.join(work, f"{name}.{k}.bin")
        v.tofile(path)
        specs.append({"name": k, "type": "float32" if v.dtype == np.float32 else "int64", "dims": list(v.shape), "file": path})
    return specs


def run_ort(a, name, threads, out_path=None, runs=None):
    spec = os.path.join(a.work, name + ".feeds.json")
    with open(spec, "w") as f:
        json.dump(ort_feeds(name, a.work), f)
    cmd = ["node", os.path.join(os.path.dirname(os.path.abspath(__file__)), "peers_ort.js"), os.path.join(a.work, name + ".onnx"),
           spec, str(threads), str(runs or a.runs), str(a.warmup), out_path or ""]
    env = dict(os.environ, NODE_PATH=os.path.join(a.work, "node_modules"))
    return json.loads(subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1])


def ours_args(a, name):
    if WORKLOADS[name]["kind"] == "vit":
        return ["--pixels", os.path.join(a.work, name + ".pixels.npy")]
    ids = inputs(name, a.work)["enc_ids"][0]
    return ["--encoder-ids", ",".join(str(int(i)) for i in ids), "--decoder-ids", "0"]


def run_ours(a, name, threads, dtype, runs=None, out_dir=None):
    cmd = [os.path.join(a.build, "tools", "pali3"), "dump", "--weights", os.path.join(a.work, name + ".safetensors"),
           "--out", out_dir or os.path.join(a.work, "dump_" + name), "--threads", str(threads), "--dtype", dtype,
           "--prepack", "--time", str(runs if runs is not None else a.runs)] + ours_args(a, name)
    text = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    if runs == 0:
        return None
    m = re.search(r"untraced runs: \d+, median ([0-9.]+) ms, best ([0-9.]+) ms", text)
    if not m:
        raise SystemExit("pali3 dump printed no timing line:\n" + text)
    return float(m.group(1))


# ---- setup, checks, the interleaved rounds --------------------------------------------------

def rel_err(a, b):
    a, b = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30))


def prepare(a, name):
    import torch
    cfg = os.path.join(a.work, name + ".json")
    with open(cfg, "w") as f:
        json.dump(WORKLOADS[name]["config"], f)
    weights = os.path.join(a.work, name + ".safetensors")
    subprocess.run([os.path.join(a.build, "tools", "pali3"), "init", weights, "--config", cfg, "--seed", "1"], check=True,
                   capture_output=True)
    feed = inputs(name, a.work)
    if "pixels" in feed:
        np.save(os.path.join(a.work, name + ".pixels.npy"), feed["pixels"])
    m = build_torch(name, weights)
    args = tuple(torch.from_numpy(v) for v in feed.values())
    with torch.inference_mode():
        want = m(*args).numpy()
    torch.onnx.export(m, args, os.path.join(a.work, name + ".onnx"), input_names=list(feed), output_names=["out"], opset_version=17)
    # every output against PyTorch f32 (the reference here: the same weights, an independent implementation)
    checks = {}
    ort_out = os.path.join(a.work, name + ".ort_out.bin")
    run_ort(a, name, 1, ort_out, runs=1)
    checks["onnxruntime"] = rel_err(np.fromfile(ort_out, np.float32), want)
    final = "encoder.norm_out.npy" if WORKLOADS[name]["kind"] == "vit" else "logits.npy"
    for dtype in ("f32", "bf16"):
        d = os.path.join(a.work, f"dump_{name}_{dtype}")
        run_ours(a, name, 1, dtype, runs=0, out_dir=d)
        checks[f"pali3 {dtype}"] = rel_err(np.load(os.path.join(d, final)), want)
    return checks


def limits(a):
    exe = os.path.join(a.build, "bench", "pali3_bench")
    path = os.path.join(a.work, "limits.json")
    subprocess.run([exe, "--benchmark_filter=^limit_(fma_f32|dot_bf16)", "--benchmark_out_format=json", "--benchmark_out=" + path,
                    "--benchmark_min_time=0.5"], check=True, capture_output=True, env=dict(os.environ, PALI3_OPENBLAS_CORETYPE="inherit"))
    with open(path) as f:
        result = json.load(f)
    out = {}
    for b in result["benchmarks"]:
        out[b["name"].replace("/real_time", "")] = b.get("GFLOP/s", 0.0)
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--build", default="build/gcc", help="our CMake build directory (tools/pali3, bench/pali3_bench)")
    p.add_argument("--work", default="build/peers", help="weights, ONNX files, node_modules (onnxruntime-node), results")
    p.add_argument("--workloads", default=",".join(WORKLOADS), help="comma-separated: " + ", ".join(WORKLOADS))
    p.add_argument("--threads-list", default="1,2")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--runs", type=int, default=10, help="timed runs per process (after --warmup)")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--openblas-core", default="SkylakeX", help="OPENBLAS_CORETYPE for PyTorch's BLAS (pali3_bench checks it)")
    p.add_argument("--plot", help="write a PNG of the table (needs matplotlib)")
    p.add_argument("--replot", metavar="JSON", help="only draw --plot from an earlier run's peers.json")
    p.add_argument("--torch-worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--workload", help=argparse.SUPPRESS)
    p.add_argument("--threads", type=int, help=argparse.SUPPRESS)
    a = p.parse_args()
    a.work = os.path.abspath(a.work)
    if a.torch_worker:
        return torch_worker(a)
    if a.replot:
        with open(a.replot) as f:
            return plot(json.load(f), a.plot or "peers.png")
    os.makedirs(a.work, exist_ok=True)
    if not os.path.isdir(os.path.join(a.work, "node_modules", "onnxruntime-node")):
        raise SystemExit(f"no onnxruntime-node in {a.work}/node_modules: scripts/peers.sh installs it there")
    names = [n for n in a.workloads.split(",") if n]
    for n in names:
        if n not in WORKLOADS:
            raise SystemExit(f"unknown workload {n!r}; expected one of {', '.join(WORKLOADS)}")
    threads = [int(t) for t in a.threads_list.split(",")]
    import torch
    ort_version = subprocess.run(["node", "-e", "console.log(require('onnxruntime-node').env.versions.common)"],
                                 env=dict(os.environ, NODE_PATH=os.path.join(a.work, "node_modules")),
                                 capture_output=True, text=True).stdout.strip()
    print(f"peers: PyTorch {torch.__version__}, ONNX Runtime {ort_version}; {cpu_name()}")
    checks = {}
    for n in names:
        checks[n] = prepare(a, n)
        print(f"{n}: relative error against PyTorch f32: " + ", ".join(f"{k} {v:.1e}" for k, v in checks[n].items()))
        bound = {"onnxruntime": 1e-4, "pali3 f32": 1e-4, "pali3 bf16": 5e-2}
        for k, v in checks[n].items():
            if not v < bound[k]:
                raise SystemExit(f"{n}: {k} disagrees with PyTorch (relative error {v:.2e}, expected < {bound[k]:.0e}); no timing")
    lim_before = limits(a)
    times = {(n, t): {} for n in names for t in threads}  # (workload, threads) -> peer -> [per-round medians]
    for r in range(a.rounds):
        for n in names:
            for t in threads:
                tr = run_torch(a, n, t)
                measured = {"onnxruntime": run_ort(a, n, t)["median"], "pytorch eager": tr["eager"],
                            "pytorch torchscript": tr["torchscript"], "pali3 f32": run_ours(a, n, t, "f32"),
                            "pali3 bf16": run_ours(a, n, t, "bf16")}
                for peer, ms in measured.items():
                    times[n, t].setdefault(peer, []).append(ms)
        print(f"round {r + 1}/{a.rounds} done", flush=True)
    lim_after = limits(a)
    rows = []
    for n in names:
        for t in threads:
            med = {peer: statistics.median(v) for peer, v in times[n, t].items()}
            torch_best = min(("pytorch eager", "pytorch torchscript"), key=lambda k: med[k])
            gf = flops(n) / 1e6
            fma = lim_before.get(f"limit_fma_f32/{t}", 0.0)
            dot = lim_before.get(f"limit_dot_bf16/{t}", 0.0)
            rows.append({"workload": n, "threads": t, "gflop": flops(n) / 1e9, "ms": med, "pytorch_mode": torch_best.split()[1],
                         "onnxruntime_over_pali3_f32": med["onnxruntime"] / med["pali3 f32"],
                         "pytorch_over_pali3_f32": med[torch_best] / med["pali3 f32"],
                         "pali3_f32_of_fma_peak": gf / med["pali3 f32"] / fma if fma else None,
                         "pali3_bf16_of_dot_peak": gf / med["pali3 bf16"] / dot if dot else None,
                         "rounds": times[n, t]})
    hdr = f"{'workload':<14} {'thr':>3} {'GFLOP':>6} {'ORT ms':>8} {'PyTorch ms':>15} {'pali3 f32':>9} {'pali3 bf16':>10} " \
          f"{'ORT/f32':>7} {'PT/f32':>6} {'f32 %FMA':>8} {'bf16 %dot':>9}"
    print("\n" + hdr + "\n" + "-" * len(hdr))
    for r in rows:
        m = r["ms"]
        pt = f"{m['pytorch ' + r['pytorch_mode']]:.1f} ({r['pytorch_mode'][:6]})"
        print(f"{r['workload']:<14} {r['threads']:>3} {r['gflop']:>6.2f} {m['onnxruntime']:>8.1f} {pt:>15} {m['pali3 f32']:>9.1f} "
              f"{m['pali3 bf16']:>10.1f} {r['onnxruntime_over_pali3_f32']:>7.2f} {r['pytorch_over_pali3_f32']:>6.2f} "
              f"{100 * (r['pali3_f32_of_fma_peak'] or 0):>7.0f}% {100 * (r['pali3_bf16_of_dot_peak'] or 0):>8.0f}%")
    print("\nlimits (GFLOP/s, before / after the rounds): " + ", ".join(
        f"{k} {lim_before.get(k, 0):.0f} / {lim_after.get(k, 0):.0f}" for k in sorted(lim_before)))
    print("ratios > 1: the peer takes longer than pali3 f32; each ms is the median over rounds of a process's median of "
          f"{a.runs} runs")
    result = {"checks_relative_error": checks, "limits_before": lim_before, "limits_after": lim_after, "rows": rows,
              "rounds": a.rounds, "runs": a.runs, "torch": torch.__version__, "cpu": cpu_name()}
    with open(os.path.join(a.work, "peers.json"), "w") as f:
        json.dump(result, f, indent=1)
    print(f"wrote {os.path.join(a.work, 'peers.json')}")
    if a.plot:
        plot(result, a.plot)


def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "?"


def plot(result, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    rows = result["rows"]
    peers = [("onnxruntime", "ONNX Runtime f32"), ("pytorch", "PyTorch f32 (faster mode)"), ("pali3 f32", "pali3 f32"),
             ("pali3 bf16", "pali3 bf16")]
    names = sorted({r["workload"] for r in rows}, key=list(WORKLOADS).index)
    fig, axes = plt.subplots(1, len(names), figsize=(5.5 * len(names), 4.6))
    axes = np.atleast_1d(axes)
    for ax, n in zip(axes, names):
        rs = [r for r in rows if r["workload"] == n]
        width = 0.8 / len(peers)
        for i, (key, label) in enumerate(peers):
            ys = [r["gflop"] / (r["ms"]["pytorch " + r["pytorch_mode"]] if key == "pytorch" else r["ms"][key]) * 1e3 for r in rs]
            ax.bar([j + (i - 1.5) * width for j in range(len(rs))], ys, width, label=label)
        for j, r in enumerate(rs):
            fma = result["limits_before"].get(f"limit_fma_f32/{r['threads']}")
            if fma:
                ax.hlines(fma, j - 0.45, j + 0.45, colors="k", linestyles="--", label="f32 FMA peak" if j == 0 else None)
            dot = result["limits_before"].get(f"limit_dot_bf16/{r['threads']}")
            if dot:
                ax.hlines(dot, j - 0.45, j + 0.45, colors="k", linestyles=":", label="bf16 dot peak" if j == 0 else None)
        ax.set_xticks(range(len(rs)), [f"{r['threads']} thread(s)" for r in rs])
        ax.set_title(n)
        ax.set_ylabel("GFLOP/s (higher is better)")
    axes[0].legend(fontsize=8)
    fig.suptitle(f"Peers in one run, batch 1 ({result['cpu']})", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
