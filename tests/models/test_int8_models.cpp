// int8 weights in layers and models (layers::linear::quantize_int8, layers::quantize_int8): a
// quantised linear layer against the double reference of its dequantised matrix on both kernel
// paths (up to 4 rows: integer products; more: the f32 GEMM on dequantised slabs), what it refuses,
// and what int8 costs a whole PaLI-3 (logits against f32: cosine, top-1 agreement).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <vector>

#include <catch2/catch.hpp>

#include "pali3/layers/linear.hpp"
#include "pali3/models/pali3.hpp"
#include "pali3/train/parameters.hpp"
#include "pali3/weights/memory_source.hpp"
#include "pali3/weights/random_source.hpp"
#include "../common.hpp"

using namespace pali3;

namespace {
double cosine(const std::vector<float>& a, const std::vector<float>& b) {
    double ab = 0, aa = 0, bb = 0;
    for (std::size_t i = 0; i < a.size(); ++i) {
        ab += double(a[i]) * b[i];
        aa += double(a[i]) * a[i];
        bb += double(b[i]) * b[i];
    }
    return ab / std::sqrt(aa * bb);
}
}  // namespace

TEST_CASE("linear::quantize_int8: both kernel paths against the double reference of the int8 matrix", "[layers][int8]") {
    const std::size_t in = 203, out = 77;
    weights::memory_source src;
    src.add("weight", test::random_vector(out * in, 31), {out, in});
    src.add("bias", test::random_vector(out, 32), {out});
    for (const std::size_t group : {std::size_t{0}, std::size_t{32}}) {
        layers::linear<bf16> lin({in, out, true}, weights::cursor(src));
        // The bf16 matrix as f32, before it is released.
        std::vector<float> wb(out * in);
        kernels::convert(lin.weight().data, wb.data(), out * in);
        const std::size_t bytes = lin.quantize_int8(group);
        CHECK(bytes == out * in + out * kernels::int8_groups(in, group) * sizeof(float));
        const kernels::int8_matrix* q = lin.int8_weight();
        REQUIRE(q != nullptr);
        CHECK(lin.weight().data == nullptr);  // the bf16 matrix is released
        // Each stored value is within half a step of the bf16 weight it came from.
        for (std::size_t j = 0; j < out; ++j)
            for (std::size_t i = 0; i < in; ++i)
                REQUIRE(std::fabs(wb[j * in + i] - double(q->scale(j, i)) * q->q[j * in + i]) <= 0.5 * q->scale(j, i) * (1 + 1e-4));  // + the f32 rounding of w / scale
        core::thread_pool pool(2);
        for (const std::size_t rows : {std::size_t{1}, std::size_t{3}, std::size_t{37}}) {
            const auto x = test::random_vector(rows * in, 33 + static_cast<std::uint32_t>(rows));
            std::vector<float> y(rows * out);
            lin.forward(x.data(), in, rows, y.data(), out, pool);
            std::vector<double> want(rows * out);
            for (std::size_t r = 0; r < rows; ++r)
                for (std::size_t j = 0; j < out; ++j) {
                    double s = lin.bias()[j];
                    for (std::size_t i = 0; i < in; ++i) s += double(x[r * in + i]) * q->scale(j, i) * q->q[j * in + i];
                    want[r * out + j] = s;
                }
            // Up to 4 rows multiply A as int16 (~1e-5 of the row's largest value per value); more
            // rows are f32 products of the dequantised matrix.
            INFO("group " << group << ", rows " << rows);
            CHECK(test::nmse(y, want) < (rows <= kernels::gemv_max_rows ? 1e-9 : 1e-11));
        }
        // Training through it is refused; quantising again with another group too.
        std::vector<float> dy(out, 1.f), x(in, 1.f), dx(in);
        train::parameters params;
        CHECK_THROWS_WITH(lin.backward(x.data(), in, 1, dy.data(), out, dx.data(), in, params),
                          Catch::Contains("int8-quantised linear layer"));
        CHECK_THROWS_WITH(lin.quantize_int8(group ? 0 : 32), Catch::Contains("another group"));
        CHECK(lin.quantize_int8(group) == bytes);  // the same group: nothing to do
        CHECK(lin.prepack() == 0);
        // Loading again brings the bf16 matrix back in use.
        layers::load(lin, weights::cursor(src));
        CHECK(lin.int8_weight() == nullptr);
    }
    layers::linear<float> lin({in, out, true}, weights::cursor(src));
    CHECK_THROWS_WITH(lin.quantize_int8(48), Catch::Contains("multiple of 32"));
}

TEST_CASE("PaLI-3 tiny with int8 linear layers: logits against f32, what the quantiser skips", "[models][int8]") {
    const weights::random_source src(41);
    using model_t = models::fixed_pali3<models::presets::pali3_tiny>;
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
        const double cos = cosine(f32, q);
        std::printf("  PaLI-3 tiny, int8 %s: %zu linear layers, %zu bytes; logits cosine %.6f, NMSE %.2e, top-1 %zu / %zu\n",
                    group ? "per 32" : "per row", s.layers, s.bytes, cos, test::nmse(q, std::vector<double>(f32.begin(), f32.end())),
                    agree, top.size());
        CHECK(cos > 0.999);
        CHECK(agree >= top.size() - 1);
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
