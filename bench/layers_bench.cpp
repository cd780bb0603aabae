// Layer benchmarks at real sizes, seeded random weights. Args: tokens, threads (attention
// adds nothing else). FLOP counts: dense 2*t*in*out per matrix, attention 4*t^2*inner.
//   vit_block/<B16|Gopt14>/<tokens>/<threads>   one pre-LN ViT block (SigLIP B/16, G-opt/14)
//   vit_block_bf16/Gopt14/<tokens>/<threads>   the same G-opt/14 block with bf16 weights
//   vit_attention[_bf16]/Gopt14/<tokens>/<threads>  its attention alone, 224/812/1064 px token counts
//   t5_block/UL2/<tokens>/<threads>             one UL2-3B (T5 v1.1 XL shape) encoder block
//   t5_decode_step/UL2/<cached>/<threads>       one decoder self-attention step + FFN, bf16 weights
#include <string>
#include <type_traits>
#include <vector>

#include <benchmark/benchmark.h>

#include <pali3/layers/block.hpp>
#include <pali3/weights/random_source.hpp>

using namespace pali3;
using namespace pali3::layers;

namespace {

const weights::random_source seeded(2024);

std::vector<float> input(std::size_t n) {
    std::vector<float> v(n);
    for (std::size_t i = 0; i < n; ++i) v[i] = static_cast<float>((i * 2654435761u) % 2001) * 1e-3f - 1.f;
    return v;
}

block_config vit_config(const std::string& variant) {
    if (variant == "B16") return {{768, 1e-6f}, {768, 12, 0, true}, {768, 3072, true}};
    return {{1536, 1e-6f}, {1536, 16, 0, true}, {1536, 8192, true}};  // G-opt/14
}

double block_flops(const block_config& c, std::size_t t) {
    const double d = static_cast<double>(c.attn.width), inner = static_cast<double>(c.attn.inner());
    const double h = static_cast<double>(c.mlp.hidden);
    return 2.0 * t * (4 * d * inner) + 4.0 * t * t * inner + 2.0 * t * 2 * d * h;
}

void set_gflops(benchmark::State& state, double flops) {
    state.counters["GFLOP/s"] = benchmark::Counter(flops * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}

template <class S = float>
void bm_vit_block(benchmark::State& state, const std::string& variant) {
    const std::size_t t = state.range(0);
    const auto c = vit_config(variant);
    vit_block<S> block(c, weights::cursor(seeded, "block"));
    core::thread_pool pool(static_cast<std::size_t>(state.range(1)));
    core::workspace ws(vit_block<S>::workspace_floats(c, 1, t));
    const auto x0 = input(t * c.attn.width);
    auto x = x0;
    for (auto _ : state) {
        x = x0;
        block.forward(x.data(), 1, t, ws, pool);
        benchmark::DoNotOptimize(x.data());
    }
    set_gflops(state, block_flops(c, t));
    if (std::is_same_v<S, bf16>)
        state.SetLabel(kernels::bf16_products::enabled() ? kernels::bf16_products::backend_name(kernels::bf16_products::backend_in_use()) : "xsimd");
}

void bm_vit_block_f32(benchmark::State& state, const std::string& variant) { bm_vit_block<float>(state, variant); }
void bm_vit_block_bf16(benchmark::State& state, const std::string& variant) { bm_vit_block<bf16>(state, variant); }

// One G-opt/14 attention layer (projections + 16 heads of 96) at 224 / 812 / 1064 px; bf16
// weights take the AMX GEMMs and bf16 products in the heads, as the 5B preset runs them.
template <class S = float>
void bm_vit_attention(benchmark::State& state) {
    const std::size_t t = state.range(0);
    const auto c = vit_config("Gopt14");
    attention<attn::inv_sqrt_dim, S> attn(c.attn, weights::cursor(seeded, "attn"));
    core::thread_pool pool(static_cast<std::size_t>(state.range(1)));
    core::workspace ws(attention<attn::inv_sqrt_dim, S>::workspace_floats(c.attn, t, t));
    const auto x = input(t * c.attn.width);
    std::vector<float> y(x.size());
    for (auto _ : state) {
        attn.forward(x.data(), 1, t, y.data(), ws, pool);
        benchmark::DoNotOptimize(y.data());
    }
    const double d = static_cast<double>(c.attn.width);
    set_gflops(state, 2.0 * t * 4 * d * d + 4.0 * t * t * d);
    state.counters["workspace_MB"] = static_cast<double>(ws.capacity() * sizeof(float)) / 1e6;
    kernels::attention_tiling tiling;  // as the layer picks it
    tiling.bf16_products = std::is_same_v<S, bf16>;
    state.counters["attention_scratch_KB"] =
        static_cast<double>(kernels::attention_scratch_bytes(c.attn.dim_per_head(), t, tiling)) / 1e3;
}

const block_config ul2{{2048, 1e-6f}, {2048, 32, 64, false}, {2048, 5120, false}};

void bm_t5_block(benchmark::State& state) {
    const std::size_t t = state.range(0);
    t5_encoder_block<bf16> block(ul2, weights::cursor(seeded, "enc"));
    relative_position_bias bias({32, 32, 128, true}, weights::cursor(seeded, "rel"));
    core::thread_pool pool(static_cast<std::size_t>(state.range(1)));
    core::workspace ws(t5_encoder_block<bf16>::workspace_floats(ul2, 1, t));
    const auto x0 = input(t * 2048);
    auto x = x0;
    for (auto _ : state) {
        x = x0;
        block.forward(x.data(), 1, t, ws, pool, {.pos_bias = &bias});
        benchmark::DoNotOptimize(x.data());
    }
    set_gflops(state, block_flops(ul2, t) + 2.0 * t * 2048 * 5120);  // + the second gate matrix
}

// One decoded token: causal self-attention over `cached` past positions (KV cache) + gated FFN,
// bf16 weights: bound by reading 4*2048*2048 + 3*2048*5120 bf16 weights (96 MB; inside the
// 300 MiB L3 of this machine, so this measures L3, not DRAM, bandwidth).
// One decoder position of a UL2 layer (self-attention over `past` cached positions, gated FFN;
// bf16 weights) for `rows` sequences at once: a beam search's step, W read once for all rows.
// Args: past, threads, rows.
void bm_t5_decode_step(benchmark::State& state) {
    const std::size_t past = state.range(0), rows = state.range(2);
    attention<attn::unscaled, bf16> self(ul2.attn, weights::cursor(seeded, "dec.attn"));
    gated_mlp<kernels::act::gelu_tanh, bf16> ffn(ul2.mlp, weights::cursor(seeded, "dec.mlp"));
    relative_position_bias bias({32, 32, 128, false}, weights::cursor(seeded, "dec.rel"));
    core::thread_pool pool(static_cast<std::size_t>(state.range(1)));
    core::workspace ws(attention<>::workspace_floats(ul2.attn, rows, rows * (past + 1)) + gated_mlp<>::workspace_floats(ul2.mlp, rows));
    kv_cache cache(rows, past + 1, ul2.attn.inner());
    const auto prefix = input(rows * past * 2048);
    std::vector<float> scratch(rows * past * 2048);
    if (past) self.forward_step(prefix.data(), rows, past, cache, scratch.data(), ws, pool, &bias);
    const auto x = input(rows * 2048);
    std::vector<float> y(rows * 2048);
    for (auto _ : state) {
        state.PauseTiming();
        if (cache.length() > past) {  // rewind to `past` cached positions
            cache.clear();
            if (past) self.forward_step(prefix.data(), rows, past, cache, scratch.data(), ws, pool, &bias);
        }
        state.ResumeTiming();
        self.forward_step(x.data(), rows, 1, cache, y.data(), ws, pool, &bias);
        ffn.forward(y.data(), rows, y.data(), ws, pool, true);
        benchmark::DoNotOptimize(y.data());
    }
    const double bytes = (4.0 * 2048 * 2048 + 3.0 * 2048 * 5120) * 2;
    state.counters["GB/s"] = benchmark::Counter(bytes * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}

}  // namespace

BENCHMARK_CAPTURE(bm_vit_block_f32, B16, std::string("B16"))->Name("vit_block/B16")->Args({196, 1})->Args({196, 2})->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(bm_vit_block_f32, Gopt14, std::string("Gopt14"))->Name("vit_block/Gopt14")->Args({256, 1})->Args({256, 2})->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(bm_vit_block_bf16, Gopt14_bf16, std::string("Gopt14"))->Name("vit_block_bf16/Gopt14")->Args({256, 1})->Args({256, 2})->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(bm_vit_attention<float>)->Name("vit_attention/Gopt14")->Args({256, 1})->Args({3364, 1})->Args({5776, 1})->Args({5776, 2})->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(1);
BENCHMARK(bm_vit_attention<bf16>)->Name("vit_attention_bf16/Gopt14")->Args({256, 1})->Args({3364, 1})->Args({5776, 1})->Args({5776, 2})->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(1);
BENCHMARK(bm_t5_block)->Name("t5_block/UL2")->Args({64, 1})->Args({64, 2})->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(bm_t5_decode_step)->Name("t5_decode_step/UL2")->Args({16, 1, 1})->Args({16, 2, 1})->Args({255, 1, 1})->Args({16, 1, 4})->Args({16, 2, 4})->Unit(benchmark::kMillisecond)->UseRealTime();

#include <pali3/models/vit.hpp>

namespace {
// Whole SigLIP ViT-B/16 tower at 224 px, batch 1 (ONNX Runtime and PyTorch on the same tower, same
// weights, same run: scripts/peers.sh, docs/benchmarks.md "Peers").
template <class S = float, bool AMX = true, bool PREPACK = false, bool INT8 = false, bool INT8_PRODUCTS = true>
void bm_vit_tower(benchmark::State& state) {
    const auto c = models::presets::vit_b16_224::value;
    models::vision_tower<S> tower(c, weights::cursor(seeded, "img"));
    core::thread_pool pool(static_cast<std::size_t>(state.range(0)));
    core::workspace ws(tower.workspace_floats(1));
    const auto image = input(3 * 224 * 224);
    std::vector<float> tokens(c.tokens() * c.width);
    const bool amx_on = kernels::bf16_products::enabled();
    const bool int8_on = kernels::int8_products::enabled();
    if constexpr (!AMX) kernels::bf16_products::set_enabled(false);
    if constexpr (!INT8_PRODUCTS) kernels::int8_products::set_enabled(false);
    if constexpr (INT8) layers::quantize_int8(tower);  // every linear layer, one scale per row
    if constexpr (PREPACK) layers::prepack(tower);      // int8: the integer GEMM's panels (VNNI)
    for (auto _ : state) {
        tower.forward(image.data(), 1, image_layout::nchw, tokens.data(), ws, pool);
        benchmark::DoNotOptimize(tokens.data());
    }
    kernels::bf16_products::set_enabled(amx_on);
    kernels::int8_products::set_enabled(int8_on);
    if (INT8)
        state.SetLabel(std::string("int8 linear layers, ") +
                       (INT8_PRODUCTS && int8_on ? kernels::int8_products::backend_name(kernels::int8_products::backend_in_use())
                                                 : "f32 products") + (PREPACK ? ", prepacked" : ""));
    else if (std::is_same_v<S, bf16>)
        state.SetLabel(AMX && kernels::bf16_products::enabled()
                           ? std::string(kernels::bf16_products::backend_name(kernels::bf16_products::backend_in_use())) + (PREPACK ? ", prepacked" : "")
                           : std::string("xsimd"));
    else if (PREPACK) state.SetLabel("prepacked");
    const auto b = c.block();
    const double t = static_cast<double>(c.tokens());
    set_gflops(state, c.depth * block_flops(b, c.tokens()) + 2.0 * t * 3 * 16 * 16 * c.width);
}
}  // namespace

BENCHMARK(bm_vit_tower<float>)->Name("vit_tower/B16/224")->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(bm_vit_tower<float, true, true>)->Name("vit_tower_prepacked/B16/224")->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(bm_vit_tower<bf16, true, true>)->Name("vit_tower_bf16_prepacked/B16/224")->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(bm_vit_tower<bf16, true>)->Name("vit_tower_bf16/B16/224")->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(bm_vit_tower<bf16, false>)->Name("vit_tower_bf16_xsimd/B16/224")->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(bm_vit_tower<bf16, true, false, true>)->Name("vit_tower_int8/B16/224")->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(bm_vit_tower<bf16, true, true, true>)->Name("vit_tower_int8_prepacked/B16/224")->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(bm_vit_tower<bf16, true, false, true, false>)->Name("vit_tower_int8_f32products/B16/224")->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime();
