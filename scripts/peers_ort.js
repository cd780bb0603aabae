// ONNX Runtime's side of scripts/peers.py: one process per measurement.
//   node scripts/peers_ort.js MODEL.onnx FEEDS.json THREADS RUNS WARMUP [OUT.bin]
// FEEDS.json: [{name, type: "float32" | "int64", dims, file (raw little-endian values)}].
// Session options as ONNX Runtime's performance docs recommend for CPU latency: every graph
// optimisation, THREADS intra-op threads, sequential execution, one inter-op thread.
// Prints {"median": ms, "best": ms, "runs": [...]}; writes the first output's floats to OUT.bin.
"use strict";
const fs = require("fs");
const ort = require("onnxruntime-node");

async function main() {
    const [model, feedsPath, threads, runs, warmup, out] = process.argv.slice(2);
    if (!model || !feedsPath || !threads || !runs || warmup === undefined) {
        console.error("usage: node peers_ort.js MODEL.onnx FEEDS.json THREADS RUNS WARMUP [OUT.bin]");
        process.exit(2);
    }
    const session = await ort.InferenceSession.create(model, {
        executionProviders: ["cpu"],
        graphOptimizationLevel: "all",
        executionMode: "sequential",
        intraOpNumThreads: Number(threads),
        interOpNumThreads: 1,
    });
    const feeds = {};
    for (const f of JSON.parse(fs.readFileSync(feedsPath, "utf8"))) {
        const bytes = fs.readFileSync(f.file);
        const buf = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
        const data = f.type === "float32" ? new Float32Array(buf) : new BigInt64Array(buf);
        feeds[f.name] = new ort.Tensor(f.type, data, f.dims);
    }
    for (let i = 0; i < Number(warmup); ++i) await session.run(feeds);
    const times = [];
    let result = null;
    for (let i = 0; i < Number(runs); ++i) {
        const t0 = process.hrtime.bigint();
        result = await session.run(feeds);
        times.push(Number(process.hrtime.bigint() - t0) / 1e6);
    }
    if (out && result) {
        const first = result[session.outputNames[0]];
        fs.writeFileSync(out, Buffer.from(first.data.buffer, first.data.byteOffset, first.data.byteLength));
    }
    const sorted = [...times].sort((a, b) => a - b);
    const mid = sorted.length >> 1;
    const median = sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
    console.log(JSON.stringify({ median, best: sorted[0], runs: times }));
}

main().catch((e) => {
    console.error(`peers_ort.js: ${e.message || e}`);
    process.exit(1);
});
