#include <vector>

#include <catch2/catch.hpp>

#include "pali3/models/vit.hpp"
#include "pali3/weights/random_source.hpp"
#include "../common.hpp"

using namespace pali3;
using namespace pali3::models;

TEST_CASE("ViT parameter counts equal the closed-form numbers", "[models][vit]") {
    // docs/models.md: G-opt/14 and G/14 at 224 px without head.
    vision_tower<bf16> g_opt(presets::vit_g_opt14_224::value);
    CHECK(layers::parameter_count(g_opt) == 1'663'302'144u);
    vision_tower<bf16> g(presets::vit_g14_224::value);
    CHECK(layers::parameter_count(g) == 1'842'772'352u);
    // At 812 px the tower keeps its 224 px table (16x16) and resamples it at run time...
    vit_config hi = presets::vit_g_opt14_812::value;
    hi.posemb_grid = 16;
    vision_tower<bf16> g812(hi);
    CHECK(layers::parameter_count(g812) == 1'663'302'144u);
    CHECK(hi.tokens() == 3364u);
    CHECK(presets::vit_g_opt14_1064::value.tokens() == 5776u);
    // ... while a checkpoint trained at 812 px carries a 58x58 table.
    vision_tower<bf16> g812_native(presets::vit_g_opt14_812::value);
    CHECK(layers::parameter_count(g812_native) == 1'663'302'144u + (3364u - 256u) * 1536u);
    CHECK(vit_variant("So400m/14").width == 1152);
    CHECK_THROWS_WITH(vit_variant("Q/14"), Catch::Contains("unknown ViT size"));
    CHECK_THROWS_WITH(vit_variant("B/16", 230), Catch::Contains("image size is not a multiple of the patch size"));
    CHECK_THROWS_AS(vision_tower<>(with(vit_sizes::B, 16, 230)), config_error);
}

TEST_CASE("a tiny vision tower runs, resamples its table and pools", "[models][vit]") {
    vit_config c{48, 2, 96, 4, 8, 32, 0, true};  // 4x4 grid at 32 px
    const weights::random_source src(3);
    vision_tower<> tower(c, weights::cursor(src, "img"));
    const std::size_t batch = 2;
    const auto images = test::random_vector(batch * 3 * 32 * 32, 4, 0.5f);
    std::vector<float> tokens(batch * c.tokens() * 48), pooled(batch * 48);
    core::workspace ws(tower.workspace_floats(batch));
    std::vector<std::string> names;
    layers::trace tr([&](const std::string& n, std::span<const float>, const shape_t&) { names.push_back(n); }, "img");
    tower.forward(images.data(), batch, layers::image_layout::nchw, tokens.data(), ws, core::sequential{}, tr);
    tower.pool(tokens.data(), batch, pooled.data(), ws);
    CHECK(names.front() == "img.embedding");
    CHECK(names.back() == "img.encoder.norm_out");
    // Batch of two equals two batches of one.
    std::vector<float> one(c.tokens() * 48);
    tower.forward(images.data() + 3 * 32 * 32, 1, layers::image_layout::nchw, one.data(), ws);
    for (std::size_t i = 0; i < one.size(); ++i) REQUIRE(one[i] == Approx(tokens[c.tokens() * 48 + i]).epsilon(1e-5).margin(1e-6));
    // The same checkpoint at 48 px: 6x6 grid from the 4x4 table.
    vit_config big = c;
    big.image = 48;
    big.posemb_grid = 4;
    weights::memory_source saved;
    layers::save(tower, saved, "img");
    vision_tower<> tower48(big, weights::cursor(saved, "img"));
    const auto images48 = test::random_vector(3 * 48 * 48, 5, 0.5f);
    std::vector<float> t48(36 * 48);
    core::workspace ws48(tower48.workspace_floats(1));
    tower48.forward(images48.data(), 1, layers::image_layout::nchw, t48.data(), ws48);
    for (float v : t48) REQUIRE(std::isfinite(v));
}
