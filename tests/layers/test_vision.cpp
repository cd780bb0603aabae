#include <cmath>
#include <vector>

#include <catch2/catch.hpp>

#include "pali3/layers/vision.hpp"
#include "pali3/weights/random_source.hpp"
#include "../common.hpp"

using namespace pali3;
using namespace pali3::layers;

namespace {
const weights::random_source seeded_vision(7);
}

TEMPLATE_TEST_CASE("patch embedding equals a strided convolution", "[layers][vision]", float, bf16) {
    const patch_config c{3, 5, 21};
    patch_embedding<TestType> pe(c, weights::cursor(seeded_vision, "embed"));
    weights::memory_source saved;
    save(pe, saved);
    const auto wt = saved.get("weight", {21, 3, 5, 5});
    const auto bt = saved.get("bias", {21});
    auto wval = [&](std::size_t i) {
        if constexpr (std::is_same_v<TestType, float>) return static_cast<double>(static_cast<const float*>(wt.data)[i]);
        else return static_cast<double>(to_float(static_cast<const bf16*>(wt.data)[i]));
    };
    const std::size_t batch = 2, h = 15, w = 20;  // not square: a 3 x 4 grid
    const auto nchw = test::random_vector(batch * 3 * h * w, 3);
    std::vector<float> nhwc(nchw.size());
    for (std::size_t b = 0; b < batch; ++b)
        for (std::size_t ch = 0; ch < 3; ++ch)
            for (std::size_t y = 0; y < h; ++y)
                for (std::size_t x = 0; x < w; ++x) nhwc[((b * h + y) * w + x) * 3 + ch] = nchw[((b * 3 + ch) * h + y) * w + x];
    const auto [gh, gw] = pe.grid(h, w);
    REQUIRE((gh == 3 && gw == 4));
    std::vector<double> expect(batch * gh * gw * 21);
    for (std::size_t b = 0; b < batch; ++b)
        for (std::size_t py = 0; py < gh; ++py)
            for (std::size_t px = 0; px < gw; ++px)
                for (std::size_t o = 0; o < 21; ++o) {
                    double s = static_cast<const float*>(bt.data)[o];
                    for (std::size_t ch = 0; ch < 3; ++ch)
                        for (std::size_t y = 0; y < 5; ++y)
                            for (std::size_t x = 0; x < 5; ++x)
                                s += wval(((o * 3 + ch) * 5 + y) * 5 + x) * nchw[((b * 3 + ch) * h + py * 5 + y) * w + px * 5 + x];
                    expect[((b * gh + py) * gw + px) * 21 + o] = s;
                }
    core::workspace ws(decltype(pe)::workspace_floats(c, batch, h, w));
    std::vector<float> a(expect.size()), b(expect.size());
    pe.forward(nchw.data(), batch, h, w, image_layout::nchw, a.data(), ws);
    pe.forward(nhwc.data(), batch, h, w, image_layout::nhwc, b.data(), ws);
    CHECK(test::nmse(a, expect) < test::bound_for<TestType>(1e-12));
    CHECK(a == b);
    CHECK_THROWS_WITH(pe.grid(16, 20), "image size is not a multiple of the patch size (at patch_embedding): expected sides divisible by 5, found 16 x 20");
}

TEST_CASE("position embeddings resample with aligned corners", "[layers][vision]") {
    // 2x2 -> 3x3: corners kept, edges are means of two, the centre the mean of four.
    const std::vector<float> g{0.f, 10.f, 20.f, 40.f};  // width 1
    const auto r = resample_grid(g.data(), 2, 2, 3, 3, 1);
    const std::vector<float> expect{0, 5, 10, 10, 17.5f, 25, 20, 30, 40};
    for (std::size_t i = 0; i < 9; ++i) CHECK(r[i] == Approx(expect[i]));
    // 1-D, width 2: 3 -> 5 halves the steps.
    const std::vector<float> row{0, 1, 10, 11, 20, 21};
    const auto r2 = resample_grid(row.data(), 1, 3, 1, 5, 2);
    const std::vector<float> e2{0, 1, 5, 6, 10, 11, 15, 16, 20, 21};
    for (std::size_t i = 0; i < e2.size(); ++i) CHECK(r2[i] == Approx(e2[i]));
    // 16x16 -> 16x16 is the identity; up and back down keeps the corners exactly.
    learned_position_embedding pos({16, 16, 8}, weights::cursor(seeded_vision, "pos"));
    const auto same = pos.for_grid(16, 16);
    const auto up = pos.for_grid(58, 58);  // 812 px at patch 14
    CHECK(up.size() == 58 * 58 * 8);
    for (std::size_t i = 0; i < 8; ++i) {
        CHECK(up[i] == Approx(same[i]));
        CHECK(up[(58 * 58 - 1) * 8 + i] == Approx(same[(16 * 16 - 1) * 8 + i]));
    }
    std::vector<float> tokens(2 * 58 * 58 * 8, 1.f);
    pos.add_to(tokens.data(), 2, 58, 58);
    CHECK(tokens[58 * 58 * 8 + 3] == Approx(1.f + up[3]));
}

TEST_CASE("sincos 2-D position embedding", "[layers][vision]") {
    const auto pe = sincos_2d(3, 4, 16);
    // Position (y=0, x=0): sin 0, cos 1 everywhere.
    for (std::size_t d = 0; d < 4; ++d) {
        CHECK(pe[d] == 0.f);
        CHECK(pe[4 + d] == 1.f);
    }
    // Position (y=2, x=1), frequency d=0 (omega 1) and d=3 (omega 1/10000).
    const float* p = pe.data() + (2 * 4 + 1) * 16;
    CHECK(p[0] == Approx(std::sin(1.0)));
    CHECK(p[4 + 3] == Approx(std::cos(1e-4)));
    CHECK(p[8] == Approx(std::sin(2.0)));
    CHECK(p[12 + 1] == Approx(std::cos(2.0 / std::pow(10000.0, 1.0 / 3))));
    CHECK_THROWS_AS(sincos_2d(2, 2, 10), config_error);
}

TEST_CASE("MAP head pools each image independently", "[layers][vision]") {
    const map_head_config c{32, 4, 48};
    map_head<> head(c, weights::cursor(seeded_vision, "head"));
    const std::size_t batch = 3, t = 17;
    const auto tokens = test::random_vector(batch * t * 32, 5);
    core::workspace ws(map_head<>::workspace_floats(c, batch, t));
    std::vector<float> out(batch * 32), single(32);
    head.forward(tokens.data(), batch, t, out.data(), ws);
    head.forward(tokens.data() + 2 * t * 32, 1, t, single.data(), ws);
    for (std::size_t i = 0; i < 32; ++i) CHECK(out[2 * 32 + i] == Approx(single[i]).epsilon(1e-6));
    // By hand: attention of the probe, then x + mlp(ln(x)).
    attention<> at({32, 4, 0, true}, weights::cursor(seeded_vision, "head.attn"));
    layer_norm ln({32, 1e-6f}, weights::cursor(seeded_vision, "head.norm"));
    mlp<> ml({32, 48, true}, weights::cursor(seeded_vision, "head.mlp"));
    weights::memory_source saved;
    save(head, saved);
    const auto probe = saved.get("probe", {1, 1, 32});
    std::vector<float> x(32), h(32);
    at.forward_cross(static_cast<const float*>(probe.data), 1, 1, tokens.data(), t, x.data(), ws);
    ln.forward(x.data(), 32, 1, h.data(), 32);
    ml.forward(h.data(), 1, x.data(), ws, core::sequential{}, true);
    for (std::size_t i = 0; i < 32; ++i) CHECK(out[i] == Approx(x[i]).epsilon(1e-6));
    CHECK(parameter_count(head) == 32 + 4 * (32 * 32 + 32) + 64 + (32 * 48 + 48) + (48 * 32 + 32));
}
