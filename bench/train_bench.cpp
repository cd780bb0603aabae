// Training benchmarks: forward with saved activations, and forward + backward, at real sizes.
// The ratio train_*_step / train_*_forward (same run) is what docs/training.md reports against
// the target "forward + backward at most 3x the forward"; `act_MB` is the activation memory a
// step keeps for backward (with /recompute: only each block's input).
//   train_vit_tower_forward/B16/<batch>/<threads>     inference forward (workspace), the baseline
//   train_vit_tower_step/B16/<batch>/<threads>        forward_train + backward, every parameter's gradient
//   train_vit_tower_step_recompute/B16/<batch>/<threads>
//   train_t5_block_forward/base/<tokens>/<threads>    one T5-base encoder block (768, 12 heads, d_ff 2048)
//   train_t5_block_step/base/<tokens>/<threads>
//   train_attention_backward/<tokens>/<heads>/<dh>   one layer's heads, kernels::attention_backward, 1 thread
//   train_pali3_step/shapes/<batch>/<threads>        a whole PaLI-3 loss_and_grad + AdamW step at the size the
//                                                    shapes recipe trains (docs/shapes.md: ViT 96 x 4, patch 8,
//                                                    64 px; T5 v1.1 d_model 192, d_ff 512, 4 x 48, 2 + 2 layers)
// FLOPs: a step counts 3x the forward's dense and attention products (forward, input gradient,
// weight gradient); recompute adds one forward.
#include <cmath>
#include <string>
#include <vector>

#include <benchmark/benchmark.h>

#include <pali3/kernels/backward.hpp>
#include <pali3/models/pali3.hpp>
#include <pali3/models/t5.hpp>
#include <pali3/models/vit.hpp>
#include <pali3/train/optimizer.hpp>
#include <pali3/train/parameters.hpp>
#include <pali3/weights/random_source.hpp>

using namespace pali3;

namespace {

const weights::random_source seeded(7);

std::vector<float> pattern(std::size_t n) {
    std::vector<float> v(n);
    for (std::size_t i = 0; i < n; ++i) v[i] = static_cast<float>((i * 2654435761u) % 2001) * 1e-3f - 1.f;
    return v;
}

double block_flops(const layers::block_config& c, std::size_t t) {
    const double d = static_cast<double>(c.attn.width), inner = static_cast<double>(c.attn.inner());
    const double h = static_cast<double>(c.mlp.hidden) * (c.mlp.bias ? 1.0 : 1.5);  // gated: three matrices
    return 2.0 * t * (4 * d * inner) + 4.0 * t * t * inner + 2.0 * t * 2 * d * h;
}

template <class Saved>
std::size_t block_bytes(const Saved& s) {
    std::size_t n = s.x0.size() + s.x1.size() + s.attn.q.size() + s.attn.k.size() + s.attn.v.size() + s.attn.ctx.size();
    if constexpr (requires { s.mlp.pre; }) n += s.mlp.pre.size();
    else n += s.mlp.gate.size() + s.mlp.up.size();
    return n * sizeof(float);
}

models::vit_config b16() {
    auto c = models::vit_sizes::B;
    models::vit_config v = models::with(c, 16, 224);
    v.map_head = false;
    return v;
}

void bm_vit_forward(benchmark::State& state) {
    const auto c = b16();
    const std::size_t batch = static_cast<std::size_t>(state.range(0));
    models::vision_tower<float> tower(c, weights::cursor(seeded, "img"));
    core::thread_pool pool(static_cast<std::size_t>(state.range(1)));
    core::workspace ws(tower.workspace_floats(batch));
    const auto img = pattern(batch * 3 * 224 * 224);
    std::vector<float> tokens(batch * c.tokens() * c.width);
    tower.forward(img.data(), batch, layers::image_layout::nchw, tokens.data(), ws, pool);  // warm-up, as for the step
    for (auto _ : state) {
        tower.forward(img.data(), batch, layers::image_layout::nchw, tokens.data(), ws, pool);
        benchmark::DoNotOptimize(tokens.data());
    }
    const double f = static_cast<double>(c.depth) * block_flops(c.block(), c.tokens()) * static_cast<double>(batch);
    state.counters["GFLOP/s"] = benchmark::Counter(f * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}

void bm_vit_step(benchmark::State& state, bool recompute) {
    const auto c = b16();
    const std::size_t batch = static_cast<std::size_t>(state.range(0));
    models::vision_tower<float> tower(c, weights::cursor(seeded, "img"));
    train::parameters ps(tower);
    core::thread_pool pool(static_cast<std::size_t>(state.range(1)));
    const auto img = pattern(batch * 3 * 224 * 224);
    const auto r = pattern(batch * c.tokens() * c.width);
    std::vector<float> tokens(r.size()), dt(r.size());
    std::size_t act = 0;
    models::vision_tower<float>::saved s;  // reused across steps, as a training loop would
    auto step = [&] {
        tower.forward_train(img.data(), batch, layers::image_layout::nchw, tokens.data(), s, pool, recompute);
        act = 0;
        for (const auto& b : s.encoder.blocks) act += block_bytes(b);
        dt = r;
        tower.backward(img.data(), batch, layers::image_layout::nchw, s, dt.data(), ps, pool);
        benchmark::DoNotOptimize(ps.list()[0].grad.data());
    };
    step();  // warm-up: the first step's allocations (page faults) are not a step's cost
    for (auto _ : state) step();
    const double f = (recompute ? 4.0 : 3.0) * static_cast<double>(c.depth) * block_flops(c.block(), c.tokens()) *
                     static_cast<double>(batch);
    state.counters["GFLOP/s"] = benchmark::Counter(f * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
    state.counters["act_MB"] = static_cast<double>(act) / 1e6;
}

layers::block_config t5_base() { return models::t5_sizes::base().block(); }

void bm_t5_forward(benchmark::State& state) {
    const auto c = t5_base();
    const std::size_t t = static_cast<std::size_t>(state.range(0));
    layers::t5_encoder_block<float> block(c, weights::cursor(seeded, "t5"));
    core::thread_pool pool(static_cast<std::size_t>(state.range(1)));
    core::workspace ws(layers::t5_encoder_block<float>::workspace_floats(c, 1, t));
    const auto x0 = pattern(t * c.attn.width);
    auto x = x0;
    for (auto _ : state) {
        x = x0;
        block.forward(x.data(), 1, t, ws, pool);
        benchmark::DoNotOptimize(x.data());
    }
    state.counters["GFLOP/s"] = benchmark::Counter(block_flops(c, t) * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}

void bm_t5_step(benchmark::State& state) {
    const auto c = t5_base();
    const std::size_t t = static_cast<std::size_t>(state.range(0));
    layers::t5_encoder_block<float> block(c, weights::cursor(seeded, "t5"));
    train::parameters ps(block);
    core::thread_pool pool(static_cast<std::size_t>(state.range(1)));
    const auto x0 = pattern(t * c.attn.width);
    auto x = x0, dx = x0;
    std::size_t act = 0;
    layers::t5_encoder_block<float>::saved s;
    for (auto _ : state) {
        x = x0;
        block.forward_train(x.data(), 1, t, s, pool);
        act = block_bytes(s);
        dx = x0;
        block.backward(dx.data(), 1, t, s, ps, pool);
        benchmark::DoNotOptimize(dx.data());
    }
    state.counters["GFLOP/s"] = benchmark::Counter(3 * block_flops(c, t) * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
    state.counters["act_MB"] = static_cast<double>(act) / 1e6;
}

// One attention layer's heads backward (kernels::attention_backward per head, heads x dh
// interleaved as the layers store them), 1 thread: the score tiles recomputed from q and k, the
// softmax's exp, and the four gradient products. FLOPs: 5 products of 2 t^2 dh per head (scores,
// dV, dP, dQ, dK; one score pass while the keys fit one tile).
void bm_attention_backward(benchmark::State& state) {
    const std::size_t t = static_cast<std::size_t>(state.range(0)), heads = static_cast<std::size_t>(state.range(1)),
                      dh = static_cast<std::size_t>(state.range(2)), inner = heads * dh;
    const auto q = pattern(t * inner), k = pattern(t * inner + 3), v = pattern(t * inner + 7), dout = pattern(t * inner + 11);
    std::vector<float> o(t * inner), dq(t * inner), dk(t * inner), dv(t * inner);
    const float scale = 1.f / std::sqrt(static_cast<float>(dh));
    for (std::size_t h = 0; h < heads; ++h)
        kernels::attention(t, t, dh, q.data() + h * dh, inner, k.data() + h * dh, inner, v.data() + h * dh, inner, o.data() + h * dh,
                           inner, scale, {}, {});
    for (auto _ : state) {
        for (std::size_t h = 0; h < heads; ++h)
            kernels::attention_backward(t, t, dh, q.data() + h * dh, inner, k.data() + h * dh, inner, v.data() + h * dh, inner,
                                        o.data() + h * dh, inner, dout.data() + h * dh, inner, scale, {}, {},
                                        {dq.data() + h * dh, inner, dk.data() + h * dh, inner, dv.data() + h * dh, inner, nullptr});
        benchmark::DoNotOptimize(dq.data());
    }
    state.counters["GFLOP/s"] =
        benchmark::Counter(5 * 2.0 * static_cast<double>(t * t * dh * heads) * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}

// A whole PaLI-3 training step as `pali3 train` runs it on the shapes world: images (batch, 3, 64,
// 64), prompts of 5 tokens ("detect red circle" + EOS), 12 decoder positions, every parameter
// trainable, then AdamW. FLOPs: 3x the forward's dense products (patch embedding, tower blocks,
// projector, encoder and decoder blocks with cross-attention, logits) and attention products.
void bm_pali3_step(benchmark::State& state) {
    const models::vit_config v{96, 4, 384, 4, 8, 64};
    const models::t5_config t{1216, 192, 512, 4, 48, 2, 2};
    const models::pali3_config c = models::pali3_of(v, t);
    const std::size_t batch = static_cast<std::size_t>(state.range(0)), prompt = 5, dec = 12;
    models::pali3_model<float> model(c, weights::cursor(seeded, "pali3"));
    train::parameters ps(model);
    train::adamw opt(ps, {1e-4f, 0.9f, 0.999f, 1e-8f, 1e-4f, 1.f});
    core::thread_pool pool(static_cast<std::size_t>(state.range(1)));
    const auto img = pattern(batch * 3 * 64 * 64);
    std::vector<std::vector<std::int32_t>> prompts(batch);
    std::vector<std::int32_t> ids(batch * dec), targets(batch * dec);
    for (std::size_t b = 0; b < batch; ++b) {
        for (std::size_t i = 0; i < prompt; ++i) prompts[b].push_back(static_cast<std::int32_t>((b * 31 + i * 7) % 60 + 3));
        for (std::size_t i = 0; i < dec; ++i) {
            ids[b * dec + i] = static_cast<std::int32_t>((b * 13 + i * 101) % t.vocab);
            targets[b * dec + i] = static_cast<std::int32_t>((b * 17 + i * 89 + 5) % t.vocab);
        }
    }
    auto step = [&] {
        ps.zero_grad();
        const double loss = model.loss_and_grad(img.data(), prompts, ids.data(), dec, targets.data(), &ps, pool).first;
        opt.step(1, pool);
        benchmark::DoNotOptimize(loss);
    };
    step();  // warm-up: the first step's allocations
    for (auto _ : state) step();
    const double n = static_cast<double>(v.tokens()), len = n + prompt, d = static_cast<double>(t.d_model);
    const double inner = static_cast<double>(t.heads * t.d_kv);
    const double tower = 2.0 * n * static_cast<double>(v.patch * v.patch * 3 * v.width) +
                         static_cast<double>(v.depth) * block_flops(v.block(), v.tokens());
    const double projector = 2.0 * n * static_cast<double>(v.width) * d;
    const double encoder = static_cast<double>(t.encoder_layers) * block_flops(t.block(), static_cast<std::size_t>(len));
    const double cross = 2.0 * dec * 2 * d * inner + 2.0 * len * 2 * d * inner + 4.0 * dec * len * inner;
    const double decoder = static_cast<double>(t.decoder_layers) * (block_flops(t.block(), dec) + cross);
    const double logits = 2.0 * dec * static_cast<double>(t.vocab) * d;
    const double f = 3.0 * static_cast<double>(batch) * (tower + projector + encoder + decoder + logits);
    state.counters["GFLOP/s"] = benchmark::Counter(f * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}

}  // namespace

BENCHMARK(bm_vit_forward)->Name("train_vit_tower_forward/B16")->Args({8, 1})->Args({8, 2})->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(bm_vit_step, plain, false)->Name("train_vit_tower_step/B16")->Args({8, 1})->Args({8, 2})->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(bm_vit_step, recompute, true)->Name("train_vit_tower_step_recompute/B16")->Args({8, 2})->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(bm_t5_forward)->Name("train_t5_block_forward/base")->Args({256, 1})->Args({256, 2})->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(bm_attention_backward)->Name("train_attention_backward")->Args({197, 12, 64})->Args({74, 4, 48})->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(bm_t5_step)->Name("train_t5_block_step/base")->Args({256, 1})->Args({256, 2})->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(bm_pali3_step)->Name("train_pali3_step/shapes")->Args({32, 1})->Args({32, 2})->Unit(benchmark::kMillisecond)->UseRealTime();
