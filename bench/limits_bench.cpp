// The machine's own limits, measured in the same run as the kernels so every GFLOP/s and GB/s
// figure can be read as a fraction of what this CPU does right now (the machine is shared and
// its model changes between sessions: docs/benchmarks.md). Last argument: threads.
//   limit_fma_f32    12 independent chains of f32 FMAs in the widest xsimd batch per thread
//   limit_dot_bf16   12 chains of `vdpbf16ps` (AVX512-BF16) per thread; skipped without it
//   limit_dot_int8   12 chains of integer multiply-adds per thread: `vpdpbusd` (AVX512-VNNI, 64 int8
//                    products per instruction) where compiled in, else `vpmaddwd` + `vpaddd` (AVX2,
//                    16 int16 products: what gemv_int8 runs on here); GOP/s = 2 x products
//   limit_read       streaming read (sum) of 512 MiB, split among the threads
//   limit_pool_run   one thread_pool::run of 2 empty tasks on 2 threads (hand-out + wake-up + wait)
// scripts/plot_bench.py draws these as the reference lines of the kernel plot.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <vector>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include <benchmark/benchmark.h>

#include <pali3/pali3.hpp>

using namespace pali3;

namespace {

constexpr int chains = 12;        // > latency x throughput (4 x 2) of the FMA ports
constexpr std::size_t tasks = 64;  // the pool hands these out dynamically: threads stay busy
constexpr std::size_t steps_per_task = 20000;

// Returns a value that depends on every chain so none can be dropped.
template <class B>
float fma_chains(std::size_t steps, float seed) {
    B acc[chains];
    for (int c = 0; c < chains; ++c) acc[c] = B(seed + static_cast<float>(c));
    const B x(0.999999f), y(1e-7f);
    for (std::size_t s = 0; s < steps; ++s) {
#pragma GCC unroll 12
        for (int c = 0; c < chains; ++c) acc[c] = xsimd::fma(acc[c], x, y);
    }
    B sum = acc[0];
    for (int c = 1; c < chains; ++c) sum += acc[c];
    return xsimd::hadd(sum);
}

void bm_limit_fma_f32(benchmark::State& state) {
    using B = xsimd::batch<float>;
    core::thread_pool pool(static_cast<std::size_t>(state.range(0)));
    std::vector<float> out(tasks);
    for (auto _ : state) {
        pool.run(tasks, [&](std::size_t t) { out[t] = fma_chains<B>(steps_per_task, static_cast<float>(t)); });
        benchmark::DoNotOptimize(out.data());
    }
    state.SetLabel(B::arch_type::name());
    // 2 flops per lane per FMA.
    const double flops = 2.0 * chains * B::size * steps_per_task * tasks;
    state.counters["GFLOP/s"] = benchmark::Counter(flops * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}

#if PALI3_HAVE_AMX_CODE
__attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16"))) float dot_chains(std::size_t steps, float seed) {
    __m512 acc[chains];
    for (int c = 0; c < chains; ++c) acc[c] = _mm512_set1_ps(seed + static_cast<float>(c));
    const __m512bh x = _mm512_cvtne2ps_pbh(_mm512_set1_ps(1e-3f), _mm512_set1_ps(2e-3f));
    const __m512bh y = _mm512_cvtne2ps_pbh(_mm512_set1_ps(3e-3f), _mm512_set1_ps(1e-3f));
    for (std::size_t s = 0; s < steps; ++s) {
#pragma GCC unroll 12
        for (int c = 0; c < chains; ++c) acc[c] = _mm512_dpbf16_ps(acc[c], x, y);
    }
    __m512 sum = acc[0];
    for (int c = 1; c < chains; ++c) sum = _mm512_add_ps(sum, acc[c]);
    alignas(64) float lanes[16];  // not _mm512_reduce_add_ps: g++ 12 warns inside it (GCC bug 105593)
    _mm512_store_ps(lanes, sum);
    float total = 0.f;
    for (float v : lanes) total += v;
    return total;
}
#endif

void bm_limit_dot_bf16(benchmark::State& state) {
#if PALI3_HAVE_AMX_CODE
    if (!kernels::bf16_products::available(kernels::bf16_products::backend::avx512_bf16)) {
        state.SkipWithError("AVX512-BF16 not usable here (no CPU support, or PALI3_NO_AMX=1 / PALI3_BF16_DOT=0)");
        return;
    }
    core::thread_pool pool(static_cast<std::size_t>(state.range(0)));
    std::vector<float> out(tasks);
    for (auto _ : state) {
        pool.run(tasks, [&](std::size_t t) { out[t] = dot_chains(steps_per_task, static_cast<float>(t)); });
        benchmark::DoNotOptimize(out.data());
    }
    // Each `vdpbf16ps` lane: two products and two sums.
    const double flops = 4.0 * chains * 16 * steps_per_task * tasks;
    state.counters["GFLOP/s"] = benchmark::Counter(flops * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
#else
    state.SkipWithError("built without x86-64 AVX512-BF16 code");
#endif
}

#if defined(__AVX512VNNI__) && defined(__AVX512BW__)
constexpr int int8_products_per_op = 64;
constexpr const char* int8_op_name = "vpdpbusd zmm (AVX512-VNNI)";
std::int64_t int8_chains(std::size_t steps, int seed) {
    __m512i acc[chains];
    for (int c = 0; c < chains; ++c) acc[c] = _mm512_set1_epi32(seed + c);
    const __m512i x = _mm512_set1_epi8(3), y = _mm512_set1_epi8(-2);
    for (std::size_t s = 0; s < steps; ++s) {
#pragma GCC unroll 12
        for (int c = 0; c < chains; ++c) acc[c] = _mm512_dpbusd_epi32(acc[c], x, y);
    }
    __m512i sum = acc[0];
    for (int c = 1; c < chains; ++c) sum = _mm512_add_epi32(sum, acc[c]);
    alignas(64) std::int32_t lanes[16];
    _mm512_store_si512(lanes, sum);
    std::int64_t total = 0;
    for (auto v : lanes) total += v;
    return total;
}
#elif defined(__AVX2__)
constexpr int int8_products_per_op = 16;
constexpr const char* int8_op_name = "vpmaddwd + vpaddd ymm (AVX2)";
std::int64_t int8_chains(std::size_t steps, int seed) {
    __m256i acc[chains];
    for (int c = 0; c < chains; ++c) acc[c] = _mm256_set1_epi32(seed + c);
    const __m256i y = _mm256_set1_epi16(-2);
    for (std::size_t s = 0; s < steps; ++s) {
#pragma GCC unroll 12  // each chain multiplies its own accumulator: nothing to hoist or share
        for (int c = 0; c < chains; ++c) acc[c] = _mm256_add_epi32(acc[c], _mm256_madd_epi16(acc[c], y));
    }
    __m256i sum = acc[0];
    for (int c = 1; c < chains; ++c) sum = _mm256_add_epi32(sum, acc[c]);
    alignas(32) std::int32_t lanes[8];
    _mm256_store_si256(reinterpret_cast<__m256i*>(lanes), sum);
    std::int64_t total = 0;
    for (auto v : lanes) total += v;
    return total;
}
#endif

void bm_limit_dot_int8(benchmark::State& state) {
#if (defined(__AVX512VNNI__) && defined(__AVX512BW__)) || defined(__AVX2__)
    core::thread_pool pool(static_cast<std::size_t>(state.range(0)));
    std::vector<std::int64_t> out(tasks);
    for (auto _ : state) {
        pool.run(tasks, [&](std::size_t t) { out[t] = int8_chains(steps_per_task, static_cast<int>(t)); });
        benchmark::DoNotOptimize(out.data());
    }
    state.SetLabel(int8_op_name);
    const double ops = 2.0 * chains * int8_products_per_op * steps_per_task * tasks;
    state.counters["GOP/s"] = benchmark::Counter(ops * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
#else
    state.SkipWithError("built without AVX2 or AVX512-VNNI");
#endif
}

// Streaming read: 512 MiB (past any L3 here) summed in the widest batch, four accumulators.
void bm_limit_read(benchmark::State& state) {
    using B = xsimd::batch<float>;
    constexpr std::size_t bytes = std::size_t(512) << 20, n = bytes / sizeof(float);
    std::vector<float> data(n);
    for (std::size_t i = 0; i < n; ++i) data[i] = static_cast<float>(i % 97) * 1e-3f;
    core::thread_pool pool(static_cast<std::size_t>(state.range(0)));
    const std::size_t per_task = n / tasks;  // a multiple of 4 batches: 512 MiB / 64 = 8 MiB
    std::vector<float> out(tasks);
    for (auto _ : state) {
        pool.run(tasks, [&](std::size_t t) {
            const float* p = data.data() + t * per_task;
            B s0(0.f), s1(0.f), s2(0.f), s3(0.f);
            for (std::size_t i = 0; i < per_task; i += 4 * B::size) {
                s0 += B::load_unaligned(p + i);
                s1 += B::load_unaligned(p + i + B::size);
                s2 += B::load_unaligned(p + i + 2 * B::size);
                s3 += B::load_unaligned(p + i + 3 * B::size);
            }
            out[t] = xsimd::hadd((s0 + s1) + (s2 + s3));
        });
        benchmark::DoNotOptimize(out.data());
    }
    state.counters["GB/s"] = benchmark::Counter(static_cast<double>(bytes) * 1e-9,
                                                benchmark::Counter::kIsIterationInvariantRate);
}

// What one thread_pool::run costs the caller: 2 threads, 2 tasks that do nothing, so the time is
// the hand-out, the wake-up of the worker and the wait for it. Arg: how long the pool polls before
// sleeping, in microseconds (0: it sleeps at once, the pool before issue 25's decode work).
void bm_limit_pool_run(benchmark::State& state) {
    core::thread_pool pool(2, std::chrono::microseconds(state.range(0)));
    std::atomic<std::size_t> sum{0};
    for (auto _ : state) {
        pool.run(2, [&](std::size_t i) { sum.fetch_add(i, std::memory_order_relaxed); });
        // A short gap between jobs, as a decode step has between its products (a norm, a copy).
        for (int i = 0; i < 200; ++i) benchmark::DoNotOptimize(i);
    }
    benchmark::DoNotOptimize(sum.load());
}

}  // namespace

BENCHMARK(bm_limit_fma_f32)->Name("limit_fma_f32")->Arg(1)->Arg(2)->UseRealTime();
BENCHMARK(bm_limit_dot_bf16)->Name("limit_dot_bf16")->Arg(1)->Arg(2)->UseRealTime();
BENCHMARK(bm_limit_dot_int8)->Name("limit_dot_int8")->Arg(1)->Arg(2)->UseRealTime();
BENCHMARK(bm_limit_read)->Name("limit_read")->Arg(1)->Arg(2)->UseRealTime();
BENCHMARK(bm_limit_pool_run)->Name("limit_pool_run")->Arg(0)->Arg(200)->UseRealTime();
