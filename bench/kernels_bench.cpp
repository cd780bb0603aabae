// Kernel benchmarks at the real shapes of SigLIP B/16, G-opt/14 and UL2-3B, with OpenBLAS sgemm /
// sgemv at the same shapes in the same binary as the baseline. Names: kernel/args..., the last
// argument of GEMM/GEMV cases is the thread count. Counters: GFLOP/s or GB/s.
// The machine's limits are measured in the same run: limits_bench.cpp (limit_*).
#include <cblas.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <memory>
#include <random>
#include <vector>

#include <benchmark/benchmark.h>

#include <pali3/pali3.hpp>

using namespace pali3;
using namespace pali3::kernels;

namespace {

std::vector<float> random_floats(std::size_t n, unsigned seed) {
    std::mt19937 gen(seed);
    std::uniform_real_distribution<float> dist(-1.f, 1.f);
    std::vector<float> v(n);
    for (auto& x : v) x = dist(gen);
    return v;
}

void set_gflops(benchmark::State& state, double flops) {
    state.counters["GFLOP/s"] = benchmark::Counter(flops * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}
void set_gbytes(benchmark::State& state, double bytes) {
    state.counters["GB/s"] = benchmark::Counter(bytes * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}

// GEMM shapes (m, k, n): tokens x in-features x out-features.
void gemm_shapes(benchmark::internal::Benchmark* b) {
    const std::int64_t shapes[][3] = {
        {64, 64, 64},                                     // smoke
        {256, 768, 3072}, {256, 3072, 768}, {256, 768, 2304},    // ViT-B (patch 14 at 224 px)
        {257, 1536, 6144}, {257, 6144, 1536}, {257, 1536, 4608}, // G-opt/14
        {64, 2048, 5120}, {64, 5120, 2048}, {64, 2048, 2048},    // UL2-3B, 64-token prompt
    };
    for (auto& s : shapes)
        for (std::int64_t t : {1, 2}) b->Args({s[0], s[1], s[2], t});
}

template <class T, weight_layout L, bool AMX = true, bool PREPACK = false>
void bm_gemm(benchmark::State& state) {
    const std::size_t m = state.range(0), k = state.range(1), n = state.range(2);
    // gemm_bf16 takes the AMX path where available; gemm_bf16_xsimd is the same call without it.
    const bool amx_on = bf16_products::enabled();
    if constexpr (!AMX) bf16_products::set_enabled(false);
    const auto a = random_floats(m * k, 1);
    const auto wf = random_floats(n * k, 2);
    std::vector<T> w(wf.size());
    for (std::size_t i = 0; i < w.size(); ++i) {
        if constexpr (std::is_same_v<T, float>) w[i] = wf[i];
        else w[i] = to_bf16(wf[i]);
    }
    std::vector<float> c(m * n);
    weight_ref<T> wr = L == weight_layout::nk ? weight_nk(w.data(), n, k) : weight_kn(w.data(), n, k);
    // Prepacked: W packed once before the loop, as `linear::prepack` keeps it for a layer.
    std::shared_ptr<const packed_panels> packed;
    if constexpr (PREPACK && std::is_same_v<T, float>) {
        packed = pack_panels(wr);
        wr.prepacked = packed.get();
    }
    core::thread_pool pool(static_cast<std::size_t>(state.range(3)));
    for (auto _ : state) {
        gemm(m, a.data(), k, wr, c.data(), n, epilogue<>{}, pool);
        benchmark::DoNotOptimize(c.data());
        benchmark::ClobberMemory();
    }
    bf16_products::set_enabled(amx_on);
    if (std::is_same_v<T, bf16>) state.SetLabel(AMX && bf16_products::enabled() ? bf16_products::backend_name(bf16_products::backend_in_use()) : "xsimd");
    if (PREPACK) state.SetLabel("W prepacked");
    set_gflops(state, 2.0 * m * n * k);
}

// int8 W (one scale per row) at the GEMM shapes: gemm_int8 (more than 4 rows): integer products
// on the CPU's engine (int8_products.hpp: AVX512-VNNI `vpdpbusd`, A quantised per row) where it
// has one; PORTABLE: f32 products on W dequantised while packed (the only path without VNNI).
// PREPACK: W packed once for the integer GEMM (int8_products::pack_weights, as linear::prepack).
// GOP/s counted as 2 m n k, as the f32 GEMM's flops.
template <bool PORTABLE = false, bool PREPACK = false>
void bm_gemm_int8(benchmark::State& state) {
    const std::size_t m = state.range(0), k = state.range(1), n = state.range(2);
    const auto a = random_floats(m * k, 1);
    const auto wf = random_floats(n * k, 2);
    std::vector<std::int8_t> q(n * k);
    std::vector<float> scales(n);
    quantize_int8(wf.data(), n, k, k, 0, q.data(), k, scales.data());
    int8_matrix w{q.data(), n, k, k, scales.data(), 0};
    const auto packed = PREPACK ? int8_products::pack_weights(w) : nullptr;
    w.prepacked = packed.get();
    std::vector<float> c(m * n);
    core::thread_pool pool(static_cast<std::size_t>(state.range(3)));
    gemm_tiling<default_arch> tiling;
    if (PORTABLE) tiling.int8_engine = int8_products::backend::none;
    for (auto _ : state) {
        gemm_int8(m, a.data(), k, w, c.data(), n, epilogue<>{}, pool, tiling);
        benchmark::DoNotOptimize(c.data());
        benchmark::ClobberMemory();
    }
    state.SetLabel(PORTABLE || !int8_products::enabled()
                       ? std::string("f32 products")
                       : std::string(int8_products::backend_name(int8_products::backend_in_use())) + (packed ? ", prepacked" : ""));
    set_gflops(state, 2.0 * m * n * k);
}

void bm_openblas_sgemm(benchmark::State& state) {
    const std::size_t m = state.range(0), k = state.range(1), n = state.range(2);
    const auto a = random_floats(m * k, 1);
    const auto w = random_floats(n * k, 2);
    std::vector<float> c(m * n);
    openblas_set_num_threads(static_cast<int>(state.range(3)));
    for (auto _ : state) {
        // W stored (n, k) as a PyTorch Linear weight: C = A . W^T, as gemm_f32 above.
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(m), static_cast<int>(n),
                    static_cast<int>(k), 1.f, a.data(), static_cast<int>(k), w.data(),
                    static_cast<int>(k), 0.f, c.data(), static_cast<int>(n));
        benchmark::DoNotOptimize(c.data());
        benchmark::ClobberMemory();
    }
    set_gflops(state, 2.0 * m * n * k);
}

// GEMV: a set of weight matrices larger than the L3 cache (300 MiB here) is cycled so every call
// reads its weights from DRAM. Args: m, k, n, threads.
constexpr std::size_t rotation_bytes = std::size_t(640) << 20;

// The weight copies, made once per storage type and shared by every case and repetition (first-
// touching 640 MiB took ~10 s per case, most of a GEMV sweep's time).
template <class T>
const std::vector<T>& rotation_buffer() {
    static const std::vector<T> w = [] {
        std::vector<T> v(rotation_bytes / sizeof(T));
        for (std::size_t i = 0; i < v.size(); ++i) {
            const float x = static_cast<float>((i * 2654435761u) % 1000) * 1e-3f - 0.5f;
            if constexpr (std::is_same_v<T, float>) v[i] = x;
            else v[i] = to_bf16(x);
        }
        return v;
    }();
    return w;
}

template <class T, weight_layout L = weight_layout::nk>
void bm_gemv(benchmark::State& state) {
    const std::size_t m = state.range(0), k = state.range(1), n = state.range(2);
    const auto& w = rotation_buffer<T>();
    const std::size_t copies = w.size() / (n * k);
    if (copies < 2) {
        state.SkipWithError("matrix larger than half the rotation buffer");
        return;
    }
    const auto a = random_floats(m * k, 3);
    std::vector<float> c(m * n);
    core::thread_pool pool(static_cast<std::size_t>(state.range(3)));
    std::size_t next = 0;
    for (auto _ : state) {
        const T* wd = w.data() + next * n * k;
        gemm(m, a.data(), k, L == weight_layout::nk ? weight_nk(wd, n, k) : weight_kn(wd, n, k), c.data(), n, epilogue<>{}, pool);
        benchmark::DoNotOptimize(c.data());
        next = (next + 1) % copies;
    }
    set_gbytes(state, static_cast<double>(n * k * sizeof(T)));
    set_gflops(state, 2.0 * m * n * k);
}

// int8 weights (kernels/int8.hpp): the same shapes and rotation of copies as bm_gemv (each
// iteration reads a matrix that is not in cache). Bytes: the int8 values and the scales.
// Arg 4: scale group along k (0: one per row).
void bm_gemv_int8(benchmark::State& state) {
    const std::size_t m = state.range(0), k = state.range(1), n = state.range(2), group = state.range(4);
    static const std::vector<std::int8_t> q = [] {
        std::vector<std::int8_t> v(rotation_bytes);
        for (std::size_t i = 0; i < v.size(); ++i) v[i] = static_cast<std::int8_t>(static_cast<int>((i * 2654435761u) % 255) - 127);
        return v;
    }();
    const std::size_t copies = q.size() / (n * k);
    if (copies < 2) {
        state.SkipWithError("matrix larger than half the rotation buffer");
        return;
    }
    const std::size_t groups = int8_groups(k, group);
    const auto scales = random_floats(copies * n * groups, 4);
    const auto a = random_floats(m * k, 3);
    std::vector<float> c(m * n);
    core::thread_pool pool(static_cast<std::size_t>(state.range(3)));
    std::size_t next = 0;
    for (auto _ : state) {
        const int8_matrix w{q.data() + next * n * k, n, k, k, scales.data() + next * n * groups, group};
        gemv_int8(m, a.data(), k, w, c.data(), n, epilogue<>{}, pool);
        benchmark::DoNotOptimize(c.data());
        next = (next + 1) % copies;
    }
    set_gbytes(state, static_cast<double>(n * k + n * groups * sizeof(float)));
    set_gflops(state, 2.0 * m * n * k);
}

void bm_openblas_sgemv(benchmark::State& state) {
    const std::size_t k = state.range(1), n = state.range(2);
    const auto& w = rotation_buffer<float>();
    const std::size_t copies = w.size() / (n * k);
    if (copies < 2) {
        state.SkipWithError("matrix larger than half the rotation buffer");
        return;
    }
    const auto a = random_floats(k, 3);
    std::vector<float> c(n);
    openblas_set_num_threads(static_cast<int>(state.range(3)));
    std::size_t next = 0;
    for (auto _ : state) {
        cblas_sgemv(CblasRowMajor, CblasNoTrans, static_cast<int>(n), static_cast<int>(k), 1.f,
                    w.data() + next * n * k, static_cast<int>(k), a.data(), 1, 0.f, c.data(), 1);
        benchmark::DoNotOptimize(c.data());
        next = (next + 1) % copies;
    }
    set_gbytes(state, static_cast<double>(n * k * sizeof(float)));
    set_gflops(state, 2.0 * n * k);
}

void gemv_shapes(benchmark::internal::Benchmark* b) {
    for (std::int64_t t : {1, 2}) {
        b->Args({1, 2048, 5120, t});  // UL2-3B wi_0 / wi_1
        b->Args({1, 5120, 2048, t});  // UL2-3B wo
        b->Args({4, 2048, 5120, t});  // 4 beams
    }
}

void bm_softmax(benchmark::State& state) {
    const std::size_t n = state.range(0);
    auto x0 = random_floats(n, 4);
    auto x = x0;
    for (auto _ : state) {
        std::memcpy(x.data(), x0.data(), n * sizeof(float));
        softmax(x.data(), n, 0.125f);
        benchmark::DoNotOptimize(x.data());
    }
    set_gbytes(state, 2.0 * n * sizeof(float));
}

// One attention layer's heads (tokens, heads x dh interleaved as the layers store them), 1 thread:
// f32 products, or bf16 products (AMX where available) as bf16 models run them. Masked: an HF-style
// 0/1 key mask (16 keys of left padding, then every 8th key hidden); FLOPs counted as unmasked
// (every score is still computed), so the ratio to the unmasked run is the mask's cost.
template <bool BF16, bool Masked = false>
void bm_attention_heads(benchmark::State& state) {
    const std::size_t t = state.range(0), heads = state.range(1), dh = state.range(2), inner = heads * dh;
    const auto q = random_floats(t * inner, 5), k = random_floats(t * inner, 6), v = random_floats(t * inner, 7);
    std::vector<float> out(t * inner);
    attention_tiling tiling;
    tiling.bf16_products = BF16;
    std::vector<std::uint8_t> keep(t);
    for (std::size_t j = 0; j < t; ++j) keep[j] = j >= 16 && j % 8 != 3;
    attention_mask mask;
    if (Masked) mask.keep = keep.data();
    for (auto _ : state) {
        for (std::size_t h = 0; h < heads; ++h)
            attention(t, t, dh, q.data() + h * dh, inner, k.data() + h * dh, inner, v.data() + h * dh, inner,
                      out.data() + h * dh, inner, 0.125f, mask, {}, tiling);
        benchmark::DoNotOptimize(out.data());
    }
    if (BF16)
        state.SetLabel(bf16_products::enabled() ? std::string("bf16 products, ") + bf16_products::backend_name(bf16_products::backend_in_use())
                                      : std::string("bf16 products requested, no engine here: f32"));
    set_gflops(state, 4.0 * t * t * dh * heads);
}

void bm_layer_norm(benchmark::State& state) {
    const std::size_t rows = state.range(0), width = state.range(1);
    const auto x = random_floats(rows * width, 5);
    const auto g = random_floats(width, 6), b = random_floats(width, 7);
    std::vector<float> y(x.size());
    for (auto _ : state) {
        layer_norm(x.data(), width, y.data(), width, rows, width, g.data(), b.data(), 1e-6f);
        benchmark::DoNotOptimize(y.data());
    }
    set_gbytes(state, 2.0 * rows * width * sizeof(float));
}

void bm_rms_norm(benchmark::State& state) {
    const std::size_t rows = state.range(0), width = state.range(1);
    const auto x = random_floats(rows * width, 5);
    const auto g = random_floats(width, 6);
    std::vector<float> y(x.size());
    for (auto _ : state) {
        rms_norm(x.data(), width, y.data(), width, rows, width, g.data(), 1e-6f);
        benchmark::DoNotOptimize(y.data());
    }
    set_gbytes(state, 2.0 * rows * width * sizeof(float));
}

template <class Act>
void bm_activation(benchmark::State& state) {
    const std::size_t n = state.range(0);
    const auto x0 = random_floats(n, 8);
    auto x = x0;
    for (auto _ : state) {
        std::memcpy(x.data(), x0.data(), n * sizeof(float));
        apply_activation<Act>(x.data(), n);
        benchmark::DoNotOptimize(x.data());
    }
    set_gbytes(state, 2.0 * n * sizeof(float));
}

// act(gate) * up, the T5 v1.1 (tanh GELU) / UL2 (SiLU) feed-forward's elementwise pass.
template <class Act>
void bm_gated(benchmark::State& state) {
    const std::size_t n = state.range(0);
    const auto g = random_floats(n, 8), u = random_floats(n, 9);
    std::vector<float> out(n);
    for (auto _ : state) {
        gated_activation<Act>(g.data(), u.data(), out.data(), n);
        benchmark::DoNotOptimize(out.data());
    }
    set_gbytes(state, 3.0 * n * sizeof(float));
}

void bm_convert_bf16(benchmark::State& state) {
    const std::size_t n = state.range(0);
    const auto x = random_floats(n, 10);
    std::vector<bf16> h(n);
    std::vector<float> back(n);
    for (auto _ : state) {
        convert(x.data(), h.data(), n);
        convert(h.data(), back.data(), n);
        benchmark::DoNotOptimize(back.data());
    }
    set_gbytes(state, 12.0 * n);
}

// "model name (family F model M)" from /proc/cpuinfo; "unknown" where it cannot be read.
std::string cpu_description() {
    std::ifstream in("/proc/cpuinfo");
    std::string line, name, family, model;
    const auto value = [&](const char* key, std::string& out) {
        if (out.empty() && line.rfind(key, 0) == 0) {
            const auto colon = line.find(':');
            if (colon != std::string::npos) out = line.substr(std::min(line.size(), colon + 2));
        }
    };
    while (std::getline(in, line)) {
        value("model name", name);
        value("cpu family", family);
        value("model\t", model);
    }
    if (name.empty()) return "unknown";
    return name + " (family " + family + " model " + model + ")";
}

}  // namespace

BENCHMARK(bm_gemm<float, weight_layout::nk>)->Name("gemm_f32")->Apply(gemm_shapes)->UseRealTime();
BENCHMARK(bm_gemm<float, weight_layout::kn>)->Name("gemm_f32_kn")->Apply(gemm_shapes)->UseRealTime();
BENCHMARK(bm_gemm<float, weight_layout::nk, true, true>)->Name("gemm_f32_prepacked")->Apply(gemm_shapes)->UseRealTime();
BENCHMARK(bm_gemm<bf16, weight_layout::nk>)->Name("gemm_bf16")->Apply(gemm_shapes)->UseRealTime();
BENCHMARK(bm_gemm<bf16, weight_layout::nk, false>)->Name("gemm_bf16_xsimd")->Apply(gemm_shapes)->UseRealTime();
BENCHMARK(bm_gemm_int8<>)->Name("gemm_int8")->Apply(gemm_shapes)->UseRealTime();
BENCHMARK(bm_gemm_int8<false, true>)->Name("gemm_int8_prepacked")->Apply(gemm_shapes)->UseRealTime();
BENCHMARK(bm_gemm_int8<true>)->Name("gemm_int8_f32products")->Apply(gemm_shapes)->UseRealTime();
BENCHMARK(bm_openblas_sgemm)->Name("openblas_sgemm")->Apply(gemm_shapes)->UseRealTime();
BENCHMARK(bm_gemv<bf16>)->Name("gemv_bf16")->Apply(gemv_shapes)->UseRealTime();
BENCHMARK(bm_gemv<float>)->Name("gemv_f32")->Apply(gemv_shapes)->UseRealTime();
BENCHMARK(bm_gemv_int8)->Name("gemv_int8")->Apply([](benchmark::internal::Benchmark* b) {
    for (std::int64_t t : {1, 2})
        for (std::int64_t m : {1, 4}) {
            b->Args({m, 2048, 5120, t, 0});   // one scale per row
            b->Args({m, 2048, 5120, t, 32});  // per 32 values (Q8_0's blocks)
        }
})->UseRealTime();
BENCHMARK(bm_gemv<bf16, weight_layout::kn>)->Name("gemv_bf16_kn")->Apply(gemv_shapes)->UseRealTime();
BENCHMARK(bm_gemv<float, weight_layout::kn>)->Name("gemv_f32_kn")->Apply(gemv_shapes)->UseRealTime();
BENCHMARK(bm_openblas_sgemv)->Name("openblas_sgemv")->Args({1, 2048, 5120, 1})->Args({1, 5120, 2048, 1})->Args({1, 2048, 5120, 2})->UseRealTime();
BENCHMARK(bm_softmax)->Name("softmax")->Arg(256)->Arg(3364)->Arg(5776);
BENCHMARK(bm_attention_heads<false>)->Name("attention_f32")->Args({196, 12, 64})->Args({256, 16, 96})->Args({1024, 16, 96})->UseRealTime();
BENCHMARK(bm_attention_heads<true>)->Name("attention_bf16")->Args({196, 12, 64})->Args({256, 16, 96})->Args({1024, 16, 96})->UseRealTime();
BENCHMARK(bm_attention_heads<false, true>)->Name("attention_f32_masked")->Args({196, 12, 64})->Args({1024, 16, 96})->UseRealTime();
BENCHMARK(bm_layer_norm)->Name("layer_norm")->Args({256, 768})->Args({257, 1536});
BENCHMARK(bm_rms_norm)->Name("rms_norm")->Args({64, 2048});
BENCHMARK(bm_activation<act::gelu_tanh>)->Name("gelu_tanh")->Arg(256 * 3072);
BENCHMARK(bm_activation<act::gelu_erf>)->Name("gelu_erf")->Arg(256 * 3072);
BENCHMARK(bm_activation<act::silu>)->Name("silu")->Arg(256 * 3072);
BENCHMARK(bm_gated<act::gelu_tanh>)->Name("gated_gelu")->Arg(64 * 5120);
BENCHMARK(bm_gated<act::silu>)->Name("gated_silu")->Arg(64 * 5120);
BENCHMARK(bm_convert_bf16)->Name("convert_bf16")->Arg(1 << 20);

namespace {

// OpenBLAS at its best on this CPU (the baseline must be the peer at its best). Debian's 0.3.21
// does not recognise Zen 5 and picks generic kernels; machines also export OPENBLAS_CORETYPE
// (here "Haswell": AVX2). The core type is read when the library loads, before main, so the
// binary re-executes itself once with the best core the CPU supports, for itself only (tests and
// CI never see it), and says so. PALI3_OPENBLAS_CORETYPE=inherit keeps the environment's choice;
// any other value names the core to use.
const char* best_openblas_core() {
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl"))
        return "SkylakeX";
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return "Haswell";
    return nullptr;
}

void choose_openblas_core(char** argv) {
    if (std::getenv("PALI3_OPENBLAS_REEXEC")) return;  // this is the re-executed process
    const char* pick = std::getenv("PALI3_OPENBLAS_CORETYPE");
    if (pick && std::strcmp(pick, "inherit") == 0) return;
    const char* want = pick && *pick ? pick : best_openblas_core();
    const char* have = std::getenv("OPENBLAS_CORETYPE");
    if (!want || (have && std::strcmp(have, want) == 0)) return;
    setenv("PALI3_OPENBLAS_INHERITED", have ? have : "(unset)", 1);
    setenv("PALI3_OPENBLAS_REEXEC", "1", 1);
    setenv("OPENBLAS_CORETYPE", want, 1);
    execv("/proc/self/exe", argv);  // returns only on failure: then run with what was inherited
    std::fprintf(stderr, "could not re-execute with OPENBLAS_CORETYPE=%s; OpenBLAS keeps its core\n", want);
}

// The picked core's sgemm against a double product at an odd shape: a baseline that is fast
// but wrong would be no baseline. Returns the largest error relative to the product's scale.
double openblas_check() {
    const int m = 33, n = 611, k = 257;
    const auto a = random_floats(static_cast<std::size_t>(m) * k, 11), w = random_floats(static_cast<std::size_t>(n) * k, 12);
    std::vector<float> c(static_cast<std::size_t>(m) * n);
    openblas_set_num_threads(1);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, n, k, 1.f, a.data(), k, w.data(), k, 0.f, c.data(), n);
    double worst = 0;
    for (int i = 0; i < m; ++i)
        for (int j = 0; j < n; ++j) {
            double ref = 0, scale = 0;
            for (int p = 0; p < k; ++p) {
                const double x = static_cast<double>(a[static_cast<std::size_t>(i) * k + p]) * w[static_cast<std::size_t>(j) * k + p];
                ref += x;
                scale += std::abs(x);
            }
            worst = std::max(worst, std::abs(c[static_cast<std::size_t>(i) * n + j] - ref) / scale);
        }
    return worst;
}

}  // namespace

int main(int argc, char** argv) {
    choose_openblas_core(argv);
    pali3::core::retain_freed_memory();  // as the pali3 command line does (core/malloc_tuning.hpp)
    const double blas_error = openblas_check();
    const char* inherited = std::getenv("PALI3_OPENBLAS_INHERITED");
    std::printf("pali3 kernels on %s; OpenBLAS core %s%s%s%s (sgemm vs double: %.1e)\n", xsimd::default_arch::name(),
                openblas_get_corename(), inherited ? " (this benchmark only; OPENBLAS_CORETYPE was " : "",
                inherited ? inherited : "", inherited ? ")" : "", blas_error);
    if (!(blas_error < 1e-5)) {
        std::fprintf(stderr, "OpenBLAS core %s gives wrong products here (%.2e): run with PALI3_OPENBLAS_CORETYPE=inherit or "
                     "name another core\n", openblas_get_corename(), blas_error);
        return 1;
    }
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
    // Which machine and which engines a JSON file came from (scripts/plot_bench.py prints them).
    benchmark::AddCustomContext("cpu", cpu_description());
    benchmark::AddCustomContext("simd", xsimd::default_arch::name());
    benchmark::AddCustomContext("bf16_engine", bf16_products::backend_name(bf16_products::backend_in_use()));
    benchmark::AddCustomContext("openblas_core", openblas_get_corename());
    benchmark::AddCustomContext("openblas_core_inherited", inherited ? inherited : "(kept)");
    char error_text[32];
    std::snprintf(error_text, sizeof error_text, "%.2e", blas_error);
    benchmark::AddCustomContext("openblas_check_error", error_text);
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    return 0;
}
