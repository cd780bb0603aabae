#include <algorithm>
#include <cstdint>
#include <vector>

#include <catch2/catch.hpp>

#include "pali3/models/t5.hpp"
#include "pali3/train/parameters.hpp"
#include "pali3/weights/random_source.hpp"
#include "../common.hpp"

using namespace pali3;
using namespace pali3::models;

TEST_CASE("UL2 / T5 parameter counts equal the closed-form numbers", "[models][t5]") {
    t5_v11<bf16> ul2(t5_sizes::xl(t5_sizes::mt5_vocab));
    CHECK(layers::parameter_count(ul2) == 3'742'619'648u);
    // Each extra vocabulary row (<loc>, <seg> tokens) adds one embedding row and one lm_head row.
    t5_v11<bf16> ul2_loc(t5_sizes::xl(t5_sizes::mt5_vocab + 1152));
    CHECK(layers::parameter_count(ul2_loc) == 3'742'619'648ull + 1152ull * 2 * 2048);
    t5_v11<bf16> xl(t5_sizes::xl());
    CHECK(layers::parameter_count(xl) == 2'849'757'184u);  // "T5 v1.1-XL 2.850B"
    // UL2 20B / Flan-UL2: 2 x 32128 x 4096 (shared, lm_head) + 32 encoder layers of
    // 4 x 4096^2 (attention) + 3 x 4096 x 16384 (gated FFN) + 2 norms, 32 decoder layers with a
    // second attention and norm, two relative-bias tables (32 x 16) and two final norms.
    t5_v11<bf16> ul2_20b(t5_sizes::ul2_20b());
    CHECK(layers::parameter_count(ul2_20b) == 19'591'209'984ull);
    CHECK(ul2_20b.config().block().mlp.activation == kernels::activation_id::silu);
    const auto names = layers::parameters(ul2);
    CHECK(names.front().name == "shared.weight");
    CHECK(names.back().name == "lm_head.weight");
}

namespace {
t5_config tiny(bool tied) {
    t5_config c{97, 32, 56, 4, 8, 2, 3};
    c.tied_embeddings = tied;
    return c;
}

template <class Model>
void check_decoding(bool tied) {
    const auto c = tiny(tied);
    const weights::random_source src(tied ? 5 : 6);
    Model model(c, weights::cursor(src));
    const std::size_t batch = 2, t = 9, steps = 6;
    const std::vector<std::int32_t> enc_ids{3, 14, 15, 92, 65, 35, 89, 79, 32,  // sequence 0
                                            38, 46, 26, 43, 0, 0, 0, 0, 0};      // sequence 1, 5 valid
    const std::vector<std::size_t> lens{9, 5};
    std::vector<float> memory(batch * t * c.d_model);
    model.embed(enc_ids.data(), enc_ids.size(), memory.data());
    core::workspace ws(model.workspace_floats(batch, t, steps));
    model.encode(memory.data(), batch, t, lens, ws);

    const std::vector<std::int32_t> dec_ids{0, 5, 17, 2, 44, 96, 0, 8, 8, 61, 1, 23};  // (batch, steps)
    // All tokens at once (one causal pass) ...
    auto full_state = model.start(memory.data(), batch, t, lens, steps);
    std::vector<float> full(batch * steps * c.vocab);
    model.step(dec_ids.data(), steps, full_state, full.data(), ws);
    // ... equals one token at a time through the KV cache.
    auto state = model.start(memory.data(), batch, t, lens, steps);
    std::vector<float> logits(batch * c.vocab);
    for (std::size_t s = 0; s < steps; ++s) {
        const std::int32_t ids[2] = {dec_ids[s], dec_ids[steps + s]};
        model.step(ids, 1, state, logits.data(), ws);
        for (std::size_t b = 0; b < batch; ++b)
            for (std::size_t v = 0; v < c.vocab; ++v)
                REQUIRE(logits[b * c.vocab + v] == Approx(full[(b * steps + s) * c.vocab + v]).epsilon(1e-4).margin(1e-5));
    }
    // Sequence 1 alone (its 5 valid encoder tokens, no padding) gives the same logits.
    std::vector<float> mem1(5 * c.d_model);
    model.embed(enc_ids.data() + 9, 5, mem1.data());
    const std::vector<std::size_t> len1{5};
    model.encode(mem1.data(), 1, 5, len1, ws);
    auto s1 = model.start(mem1.data(), 1, 5, len1, steps);
    std::vector<float> single(steps * c.vocab);
    model.step(dec_ids.data() + steps, steps, s1, single.data(), ws);
    for (std::size_t i = 0; i < single.size(); ++i)
        REQUIRE(single[i] == Approx(full[steps * c.vocab + i]).epsilon(1e-4).margin(1e-5));
    // The cache is bounded.
    CHECK_THROWS_AS(model.step(dec_ids.data(), 1, state, logits.data(), ws), value_error);
}
}  // namespace

TEST_CASE("T5 v1.1 decoding: KV cache equals recomputation, batch equals single", "[models][t5]") {
    check_decoding<t5_v11<float>>(false);
}

TEST_CASE("T5 v1.0 (ReLU, tied embeddings) decoding", "[models][t5]") {
    // KV-cache exactness is checked on the f32 compute path: with AMX the multi-token pass rounds
    // activations to bf16 while single-token steps (GEMV) do not, a ~1e-3 difference by design.
    const bool amx_on = kernels::amx::enabled();
    kernels::amx::set_enabled(false);
    check_decoding<t5_v10<bf16>>(true);
    kernels::amx::set_enabled(amx_on);
    CHECK(layers::parameter_count(*std::make_unique<t5_v10<>>(tiny(true))) ==
          layers::parameter_count(*std::make_unique<t5_v10<>>(tiny(false))) - 97u * 32);
    CHECK_THROWS_AS(t5_v11<>(t5_config{97, 30, 56, 4, 0, 2, 2}), config_error);
}

TEST_CASE("T5 with HF's 0/1 encoder mask: left padding, right padding, beam reorder and training each equal the sequence alone",
          "[models][t5][mask]") {
    const auto c = tiny(false);
    const weights::random_source src(8);
    t5_v11<float> model(c, weights::cursor(src));
    const std::size_t batch = 3, t = 10, steps = 4, w = c.d_model;
    // Row 0: 3 hidden ids first (left padding), row 1: 5 hidden ids last (right padding said by
    // the mask, not by a length), row 2: all real.
    const std::vector<std::int32_t> ids{50, 51, 52, 3, 14, 15, 92, 65, 35, 89,  //
                                        38, 46, 26, 43, 7, 60, 61, 62, 63, 64,  //
                                        11, 12, 13, 14, 15, 16, 17, 18, 19, 20};
    const std::vector<std::uint8_t> keep{0, 0, 0, 1, 1, 1, 1, 1, 1, 1,  //
                                         1, 1, 1, 1, 1, 0, 0, 0, 0, 0,  //
                                         1, 1, 1, 1, 1, 1, 1, 1, 1, 1};
    const std::size_t first[3] = {3, 0, 0}, count[3] = {7, 5, 10};
    const std::vector<std::int32_t> dec{0, 5, 17, 2, /**/ 0, 8, 8, 61, /**/ 0, 1, 2, 3};
    const std::vector<std::int32_t> tgt{5, 17, 2, 1, /**/ 8, 8, 61, 1, /**/ 1, 2, 3, -100};
    const layers::key_mask mask({}, keep);
    core::workspace ws(model.workspace_floats(batch, t, steps));
    std::vector<float> memory(batch * t * w), logits(batch * steps * c.vocab);
    model.embed(ids.data(), ids.size(), memory.data());
    model.encode(memory.data(), batch, t, mask, ws);
    auto state = model.start(memory.data(), batch, t, mask, steps);
    model.step(dec.data(), steps, state, logits.data(), ws);

    train::parameters batch_grads(model);
    typename t5_v11<float>::loss_options lo;
    lo.normaliser = 1;  // summed losses and gradients: the batch's equal the sum of the rows'
    const auto batch_loss = model.loss_and_grad(ids.data(), batch, t, mask, dec.data(), steps, tgt.data(), &batch_grads,
                                                core::sequential{}, lo);
    train::parameters alone_grads(model);
    double alone_loss = 0;
    for (std::size_t b = 0; b < batch; ++b) {
        INFO("row " << b);
        const std::vector<std::int32_t> own(ids.begin() + static_cast<std::ptrdiff_t>(b * t + first[b]),
                                            ids.begin() + static_cast<std::ptrdiff_t>(b * t + first[b] + count[b]));
        std::vector<float> mem1(count[b] * w), logits1(steps * c.vocab);
        model.embed(own.data(), own.size(), mem1.data());
        model.encode(mem1.data(), 1, count[b], {}, ws);
        const std::vector<float> real(memory.begin() + static_cast<std::ptrdiff_t>((b * t + first[b]) * w),
                                      memory.begin() + static_cast<std::ptrdiff_t>((b * t + first[b] + count[b]) * w));
        CHECK(test::nmse(real, std::vector<double>(mem1.begin(), mem1.end())) < 1e-12);
        auto s1 = model.start(mem1.data(), 1, count[b], {}, steps);
        model.step(dec.data() + b * steps, steps, s1, logits1.data(), ws);
        const std::vector<float> row(logits.begin() + static_cast<std::ptrdiff_t>(b * steps * c.vocab),
                                     logits.begin() + static_cast<std::ptrdiff_t>((b + 1) * steps * c.vocab));
        CHECK(test::nmse(row, std::vector<double>(logits1.begin(), logits1.end())) < 1e-12);
        alone_loss += model.loss_and_grad(own.data(), 1, count[b], {}, dec.data() + b * steps, steps, tgt.data() + b * steps,
                                          &alone_grads, core::sequential{}, lo).first;
    }
    CHECK(batch_loss.first == Approx(alone_loss).epsilon(1e-6));
    for (const auto& p : batch_grads.list()) {
        INFO(p.name);
        const auto& q = alone_grads.at(p.name);
        CHECK(test::nmse(p.grad, std::vector<double>(q.grad.begin(), q.grad.end())) < 1e-10);
    }

    // Beam search reorders rows: the mask follows its row.
    auto s2 = model.start(memory.data(), batch, t, mask, steps);
    const std::vector<std::size_t> order{2, 0, 0};
    auto reordered = s2.gather(order);
    REQUIRE(reordered.memory_keep.size() == 3 * t);
    CHECK(std::equal(reordered.memory_keep.begin(), reordered.memory_keep.begin() + t, keep.begin() + 2 * t));
    CHECK(std::equal(reordered.memory_keep.begin() + t, reordered.memory_keep.begin() + 2 * t, keep.begin()));
    std::vector<float> step_logits(3 * c.vocab);
    const std::int32_t start[3] = {0, 0, 0};
    model.step(start, 1, reordered, step_logits.data(), ws);
    for (std::size_t v = 0; v < c.vocab; ++v) {
        REQUIRE(step_logits[v] == Approx(logits[(2 * steps) * c.vocab + v]).epsilon(1e-5).margin(1e-6));
        REQUIRE(step_logits[2 * c.vocab + v] == Approx(logits[v]).epsilon(1e-5).margin(1e-6));
    }

    // A mask of the wrong shape, or hiding a whole row, is refused by encode, start and training.
    const std::vector<std::uint8_t> short_keep(keep.begin(), keep.end() - 1);
    std::vector<std::uint8_t> empty_row(keep);
    std::fill(empty_row.begin() + 10, empty_row.begin() + 20, 0);
    using Catch::Matchers::Contains;
    CHECK_THROWS_WITH(model.encode(memory.data(), batch, t, layers::key_mask({}, short_keep), ws),
                      Contains("key mask size") && Contains("t5_model::encode"));
    CHECK_THROWS_WITH(model.start(memory.data(), batch, t, layers::key_mask({}, empty_row), steps),
                      Contains("hides every key") && Contains("row 1"));
    CHECK_THROWS_WITH(model.loss_and_grad(ids.data(), batch, t, layers::key_mask({}, empty_row), dec.data(), steps, tgt.data(),
                                          &batch_grads),
                      Contains("hides every key"));
}
