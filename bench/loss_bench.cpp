// SigLIP loss + gradients for a batch of 4096 pairs of So400m-width (1152) embeddings, direct
// (block = n) and chunked (block 512). FLOPs: three n x n x d GEMMs (logits, dU, dV) = 6 n^2 d.
#include <vector>

#include <benchmark/benchmark.h>

#include <pali3/loss/siglip_loss.hpp>

namespace {
void bm_siglip_loss(benchmark::State& state) {
    const std::size_t n = state.range(0), d = state.range(1), block = state.range(2);
    std::vector<float> img(n * d), txt(n * d), gi(n * d), gt(n * d);
    for (std::size_t i = 0; i < n * d; ++i) {
        img[i] = static_cast<float>((i * 2654435761u) % 1000) * 1e-3f - 0.5f;
        txt[i] = static_cast<float>((i * 40503u) % 997) * 1e-3f - 0.5f;
    }
    pali3::core::thread_pool pool(static_cast<std::size_t>(state.range(3)));
    for (auto _ : state) {
        const auto r = pali3::loss::siglip_loss(img.data(), txt.data(), n, d, 2.3f, -10.f, {gi.data(), gt.data()}, block,
                                                1e-8f, pool);
        benchmark::DoNotOptimize(r.loss);
    }
    state.counters["GFLOP/s"] = benchmark::Counter(6.0 * n * n * d * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}
}  // namespace

BENCHMARK(bm_siglip_loss)->Name("siglip_loss")->Args({4096, 1152, 4096, 1})->Args({4096, 1152, 4096, 2})
    ->Args({4096, 1152, 512, 1})->Args({256, 1152, 256, 1})->Unit(benchmark::kMillisecond)->UseRealTime();
