#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "pali3/models/footprint.hpp"
#include "pali3/models/pali3.hpp"
#include "pali3/train/parameters.hpp"
#include "pali3/weights/random_source.hpp"
#include "pali3/weights/safetensors.hpp"
#include "../common.hpp"

using namespace pali3;
using namespace pali3::models;


TEST_CASE("PaLI-3 5B parameter counts per part", "[models][pali3]") {
    fixed_pali3<presets::pali3_5b, bf16> model;  // unloaded: counting needs no weights
    CHECK(layers::parameter_count(const_cast<vision_tower<bf16>&>(model.vision())) == 1'663'302'144u);
    CHECK(layers::parameter_count(const_cast<t5_v11<bf16>&>(model.text())) == 3'742'619'648u);
    CHECK(layers::parameter_count(model) == 1'663'302'144ull + 3'147'776ull + 3'742'619'648ull);  // 5.409B
    CHECK(presets::pali3_5b_1064::value.vision.tokens() == 5776u);
    // The config-only lower bound checked against checkpoints before loading (models/footprint.hpp):
    // never above the true count, and within 0.1 % of it (norms, biases, tables are left out).
    any_config a;
    a.kind = model_kind::pali3;
    a.pali = presets::pali3_5b::value;
    const std::size_t exact = layers::parameter_count(model), bound = min_weights(a);
    CHECK(bound <= exact);
    CHECK(static_cast<double>(bound) > 0.999 * static_cast<double>(exact));
    pali3_config bad = presets::pali3_tiny::value;
    bad.projector.out = 40;
    CHECK_THROWS_WITH(pali3_model<>(bad), "PaLI-3 parts do not fit (at pali3_config): expected projector output != text d_model, found 40 vs 32");
}

TEST_CASE("PaLI-3 tiny: batched prompts of different lengths equal single runs", "[models][pali3]") {
    const weights::random_source src(11);
    fixed_pali3<presets::pali3_tiny> model{weights::cursor(src)};
    const auto& c = model.config();
    const std::size_t d = c.text.d_model, vocab = c.text.vocab, n = c.vision.tokens(), steps = 4;
    const auto images = test::random_vector(2 * 3 * 32 * 32, 2, 0.5f);
    const std::vector<std::vector<std::int32_t>> prompts{{5, 99, 7, 250, 3, 1}, {42, 8, 1}};
    core::workspace ws(model.workspace_floats(2, 6, steps));

    auto run = [&](const float* imgs, std::span<const std::vector<std::int32_t>> ps) {
        std::size_t t_max = 0;
        for (const auto& p : ps) t_max = std::max(t_max, p.size());
        std::vector<float> memory(ps.size() * (n + t_max) * d);
        const auto lens = model.encode(imgs, ps, memory.data(), ws);
        auto state = model.start(memory.data(), ps.size(), lens, steps);
        std::vector<float> logits(ps.size() * vocab), all;
        std::vector<std::int32_t> ids(ps.size(), 0);  // decoder start token
        for (std::size_t s = 0; s < steps; ++s) {
            model.step(ids.data(), state, logits.data(), ws);
            all.insert(all.end(), logits.begin(), logits.end());
            for (std::size_t b = 0; b < ps.size(); ++b)  // greedy
                ids[b] = static_cast<std::int32_t>(std::max_element(logits.begin() + b * vocab, logits.begin() + (b + 1) * vocab) -
                                                   (logits.begin() + b * vocab));
        }
        return all;  // (steps, batch, vocab)
    };
    const auto both = run(images.data(), prompts);
    const auto first = run(images.data(), std::span(prompts).subspan(0, 1));
    const auto second = run(images.data() + 3 * 32 * 32, std::span(prompts).subspan(1, 1));
    for (std::size_t s = 0; s < steps; ++s)
        for (std::size_t v = 0; v < vocab; ++v) {
            REQUIRE(both[(s * 2 + 0) * vocab + v] == Approx(first[s * vocab + v]).epsilon(1e-4).margin(1e-5));
            REQUIRE(both[(s * 2 + 1) * vocab + v] == Approx(second[s * vocab + v]).epsilon(1e-4).margin(1e-5));
        }
    // Same weights, same inputs: same answer (determinism).
    CHECK(run(images.data(), prompts) == both);
    // Unknown token ids in the prompt are errors naming the position.
    const std::vector<std::vector<std::int32_t>> bad{{1, 300}};
    std::vector<float> memory((n + 2) * d);
    CHECK_THROWS_WITH(model.encode(images.data(), bad, memory.data(), ws), Catch::Contains("token id out of range"));
}

TEST_CASE("PaLI-3 tiny: HF-style prompt masks (padding inside the rows, holes) reach encoder, decoder and training",
          "[models][pali3][mask]") {
    const weights::random_source src(12);
    fixed_pali3<presets::pali3_tiny> model{weights::cursor(src)};
    const auto& c = model.config();
    const std::size_t d = c.text.d_model, vocab = c.text.vocab, n = c.vision.tokens(), steps = 3, t = 6;
    const auto images = test::random_vector(2 * 3 * 32 * 32, 3, 0.5f);
    core::workspace ws(model.workspace_floats(2, t, steps));
    // Row 0: 3 real ids then 3 padding ids hidden by the mask (= the 3-id prompt by lengths);
    // row 1: a hole at position 2.
    const std::vector<std::vector<std::int32_t>> padded{{5, 99, 7, 0, 0, 0}, {42, 8, 77, 1, 9, 4}};
    const std::vector<std::vector<std::uint8_t>> masks{{1, 1, 1, 0, 0, 0}, {1, 1, 0, 1, 1, 1}};
    const std::vector<std::vector<std::int32_t>> by_length{{5, 99, 7}, {42, 8, 77, 1, 9, 4}};
    const std::vector<std::int32_t> dec{0, 11, 12, 0, 13, 14}, tgt{11, 12, 1, 13, 14, 1};

    auto logits_of = [&](const auto& prompts, std::span<const std::vector<std::uint8_t>> m) {
        std::vector<float> memory(2 * (n + t) * d), logits(2 * vocab), all;
        const auto prefix = model.encode(images.data(), prompts, m, memory.data(), ws);
        auto state = model.start(memory.data(), 2, prefix, steps);
        for (std::size_t s = 0; s < steps; ++s) {
            const std::int32_t ids[2] = {dec[s], dec[steps + s]};
            model.step(ids, state, logits.data(), ws);
            all.insert(all.end(), logits.begin(), logits.end());
        }
        return all;  // (steps, 2, vocab)
    };
    const auto masked = logits_of(padded, masks);
    const auto lengths = logits_of(by_length, {});
    const auto unmasked = logits_of(padded, {});
    for (std::size_t s = 0; s < steps; ++s) {
        INFO("step " << s);
        const auto row = [&](const std::vector<float>& x, std::size_t b) {
            return std::vector<float>(x.begin() + static_cast<std::ptrdiff_t>((s * 2 + b) * vocab),
                                      x.begin() + static_cast<std::ptrdiff_t>((s * 2 + b + 1) * vocab));
        };
        const auto r0 = row(lengths, 0), r1 = row(unmasked, 1);
        // Padding hidden by the mask = padding by length.
        CHECK(test::nmse(row(masked, 0), std::vector<double>(r0.begin(), r0.end())) < 1e-12);
        // A hole changes the answer (the hidden id is seen by nothing).
        CHECK(test::nmse(row(masked, 1), std::vector<double>(r1.begin(), r1.end())) > 1e-6);
    }
    // Training sees the same masks: the loss with the masks equals the loss by lengths for row 0.
    const auto pair0 = [&](const auto& p) { return std::vector<std::vector<std::int32_t>>{p[0]}; };
    const std::vector<std::vector<std::uint8_t>> mask0{masks[0]};
    const auto l_mask = model.loss_and_grad(images.data(), pair0(padded), mask0, dec.data(), steps, tgt.data(),
                                            static_cast<train::parameters*>(nullptr));
    const auto l_len = model.loss_and_grad(images.data(), pair0(by_length), dec.data(), steps, tgt.data(),
                                           static_cast<train::parameters*>(nullptr));
    CHECK(l_mask.first == Approx(l_len.first).epsilon(1e-6));
    CHECK(l_mask.second == l_len.second);
    // Masks of the wrong count, length or value are refused.
    std::vector<float> memory(2 * (n + t) * d);
    using Catch::Matchers::Contains;
    CHECK_THROWS_WITH(model.encode(images.data(), padded, mask0, memory.data(), ws), Contains("one prompt mask per prompt"));
    const std::vector<std::vector<std::uint8_t>> short_mask{{1, 1}, masks[1]}, two{{1, 2, 1, 1, 1, 1}, masks[1]};
    CHECK_THROWS_WITH(model.encode(images.data(), padded, short_mask, memory.data(), ws), Contains("prompt mask length"));
    CHECK_THROWS_WITH(model.encode(images.data(), padded, two, memory.data(), ws), Contains("value 2 at position 1"));
}

// What int8 weights (layers::quantize_int8) cost a whole PaLI-3: logits against f32 (cosine, top-1
// agreement), int8 checkpoints written and read back, what the quantiser skips, training refused.
TEST_CASE("PaLI-3 tiny with int8 linear layers: logits against f32, what the quantiser skips", "[models][int8]") {
    const weights::random_source src(41);
    using model_t = fixed_pali3<presets::pali3_tiny>;
    const model_t reference{weights::cursor(src)};
    const auto& c = reference.config();
    const std::size_t d = c.text.d_model, vocab = c.text.vocab, n = c.vision.tokens(), steps = 5;
    const auto images = test::random_vector(2 * 3 * 32 * 32, 42, 0.5f);
    const std::vector<std::vector<std::int32_t>> prompts{{5, 99, 7, 250, 3, 1}, {42, 8, 1}};
    core::workspace ws(reference.workspace_floats(2, 6, steps));
    // Teacher-forced decoder ids, the same for every model: logits compared step by step.
    const std::vector<std::int32_t> forced{0, 17, 4, 250, 9};
    auto run = [&](const model_t& model) {
        std::vector<float> memory(2 * (n + 6) * d);
        const auto lens = model.encode(images.data(), prompts, memory.data(), ws);
        auto state = model.start(memory.data(), 2, lens, steps);
        std::vector<float> logits(2 * vocab), all;
        for (std::size_t s = 0; s < steps; ++s) {
            const std::vector<std::int32_t> ids(2, forced[s]);
            model.step(ids.data(), state, logits.data(), ws);
            all.insert(all.end(), logits.begin(), logits.end());
        }
        return all;
    };
    const auto f32 = run(reference);
    std::vector<std::size_t> top(f32.size() / vocab);
    for (std::size_t r = 0; r < top.size(); ++r)
        top[r] = std::max_element(f32.begin() + r * vocab, f32.begin() + (r + 1) * vocab) - (f32.begin() + r * vocab);
    const std::size_t linears = [&] {
        model_t m{weights::cursor(src)};
        return layers::quantize_int8(m).layers;
    }();
    for (const std::size_t group : {std::size_t{0}, std::size_t{32}}) {
        model_t model{weights::cursor(src)};
        const auto s = layers::quantize_int8(model, group);
        CHECK(s.layers == linears);
        const auto q = run(model);
        std::size_t agree = 0;
        for (std::size_t r = 0; r < top.size(); ++r)
            agree += static_cast<std::size_t>(std::max_element(q.begin() + r * vocab, q.begin() + (r + 1) * vocab) - (q.begin() + r * vocab)) == top[r];
        const double cos = test::cosine(f32, q);
        std::printf("  PaLI-3 tiny, int8 %s: %zu linear layers, %zu bytes; logits cosine %.6f, NMSE %.2e, top-1 %zu / %zu\n",
                    group ? "per 32" : "per row", s.layers, s.bytes, cos, test::nmse(q, std::vector<double>(f32.begin(), f32.end())),
                    agree, top.size());
        CHECK(cos > 0.999);
        CHECK(agree >= top.size() - 1);
        // Quantised while loading (layers::load_int8): the same layers, bytes and logits, bit for bit.
        model_t streamed;
        const auto ls = layers::load_int8(streamed, weights::cursor(src), group);
        CHECK(ls.layers == s.layers);
        CHECK(ls.bytes == s.bytes);
        CHECK(run(streamed) == q);
        // As an int8 checkpoint (pali3 convert --dtype int8: I8 values + NAME_scale, the group in the
        // metadata): loaded for int8 it keeps its values and group (the 64 asked for is not applied:
        // no second quantisation), so the logits are the same bits; loaded as f32 it is the
        // dequantised model, as close to the f32 logits as the int8 one.
        weights::memory_source saved;
        layers::save(streamed, saved);
        std::map<std::string, weights::tensor_data> all;
        std::size_t f32_bytes = 0, int8_bytes = 0;
        for (const auto& name : saved.names()) {
            all.emplace(name, *saved.find(name));
            int8_bytes += saved.find(name)->size() * weights::dtype_size(saved.find(name)->type);
        }
        for (const auto& p : layers::parameters(streamed)) f32_bytes += shape_size(p.shape) * 4;
        const std::string bytes = weights::to_safetensors(all, {{"int8_group", std::to_string(group)}});
        const auto file = weights::safetensors_source::from_buffer(weights::buffer_from(std::vector<std::uint8_t>(bytes.begin(), bytes.end())));
        model_t reloaded;
        const auto rs = layers::load_int8(reloaded, weights::cursor(file), 64);
        CHECK(rs.layers == s.layers);
        CHECK(rs.bytes == s.bytes);
        CHECK(run(reloaded) == q);
        const model_t dequantised{weights::cursor(file)};
        const auto dq = run(dequantised);
        std::printf("  int8 checkpoint %s: %zu bytes of tensors against %zu in f32 (%.2fx); read as f32: logits cosine %.6f to f32\n",
                    group ? "per 32" : "per row", int8_bytes, f32_bytes, double(int8_bytes) / double(f32_bytes), test::cosine(f32, dq));
        CHECK(test::cosine(f32, dq) > 0.999);
        CHECK(int8_bytes < f32_bytes / 2);
    }
    {
        model_t streamed;
        CHECK(layers::load_int8(streamed, weights::cursor(src), 0, {"text.lm_head"}).layers == linears - 1);
        CHECK(run(streamed).size() == f32.size());  // the kept head is loaded, not skipped
        CHECK_THROWS_WITH(layers::load_int8(streamed, weights::cursor(src), 40), Catch::Contains("multiple of 32"));
    }
    // Layers under a kept prefix stay as they were: the lm head alone, then the image tower too
    // ("img" keeps "img.*", not a layer whose name merely starts with the letters).
    model_t head_kept{weights::cursor(src)};
    CHECK(layers::quantize_int8(head_kept, 0, {"text.lm_head"}).layers == linears - 1);
    model_t tower_kept{weights::cursor(src)};
    const auto t = layers::quantize_int8(tower_kept, 0, {"text.lm_head", "img"});
    CHECK(t.layers < linears - 1);
    CHECK(t.layers > 0);
    model_t prefix_only{weights::cursor(src)};
    CHECK(layers::quantize_int8(prefix_only, 0, {"im"}).layers == linears);
    // Training a quantised model is refused with the reason; its loss alone runs.
    CHECK_THROWS_WITH(train::parameters(head_kept), Catch::Contains("quantize_int8"));
    const std::vector<std::int32_t> dec{0, 17, 4}, tgt{17, 4, 1};
    const auto [loss, counted] = head_kept.loss_and_grad(images.data(), std::span(prompts).subspan(0, 1), dec.data(), 3, tgt.data(),
                                                         static_cast<train::parameters*>(nullptr));
    CHECK(std::isfinite(loss));
    CHECK(counted == 3);
}
