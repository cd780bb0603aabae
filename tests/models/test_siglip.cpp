#include <cmath>
#include <vector>

#include <catch2/catch.hpp>

#include "pali3/models/siglip.hpp"
#include "pali3/models/vit.hpp"
#include "pali3/weights/random_source.hpp"
#include "../common.hpp"

using namespace pali3;
using namespace pali3::models;

TEST_CASE("SigLIP text tower: last-token head, batch equals single", "[models][siglip]") {
    const text_tower_config c{120, 32, 2, 64, 4, 7, 24};
    const weights::random_source src(8);
    text_tower<> tower(c, weights::cursor(src, "txt"));
    const std::vector<std::int32_t> ids{5, 9, 1, 0, 0, 0, 0, 17, 33, 64, 99, 119, 2, 1};  // 2 x 7
    std::vector<float> out(2 * 24), one(24);
    core::workspace ws(tower.workspace_floats(2));
    tower.forward(ids.data(), 2, out.data(), ws);
    tower.forward(ids.data() + 7, 1, one.data(), ws);
    for (std::size_t i = 0; i < 24; ++i) CHECK(out[24 + i] == Approx(one[i]).epsilon(1e-5));
    // The head sees only the last position: changing it changes the output, as it must.
    auto ids2 = ids;
    ids2[6] = 42;
    std::vector<float> out2(2 * 24);
    tower.forward(ids2.data(), 2, out2.data(), ws);
    CHECK(out2[0] != out[0]);
    CHECK(layers::parameter_count(tower) == 120 * 32 + 7 * 32 + 2 * (2 * 64 + 4 * (32 * 32 + 32) + 32 * 64 + 64 + 64 * 32 + 32) + 64 + 32 * 24 + 24);
}

TEST_CASE("contrastive scores: normalised, scaled, biased sigmoid", "[models][siglip]") {
    const std::vector<float> img{3, 4, 0, 0, 0, 2};  // 2 x 3
    const std::vector<float> txt{6, 8, 0, 0, 1, 0};  // 2 x 3
    const float log_t = std::log(10.f), b = -10.f;
    const auto logits = contrastive_scores(img.data(), 2, txt.data(), 2, 3, log_t, b, false);
    CHECK(logits[0] == Approx(0.0).margin(1e-5));    // identical directions: t * 1 + b
    CHECK(logits[1] == Approx(10 * 0.8 - 10));       // cos = 4/5
    CHECK(logits[2] == Approx(-10.0).margin(1e-5));  // orthogonal
    const auto p = contrastive_scores(img.data(), 2, txt.data(), 2, 3, log_t, b);
    CHECK(p[0] == Approx(0.5));
    CHECK(p[1] == Approx(1 / (1 + std::exp(2.0))));
}

TEST_CASE("zero-shot classification end to end on tiny towers", "[models][siglip]") {
    // Each text "class" is scored against each image; the shapes and the argmax are what a user gets.
    vit_config vc{24, 1, 48, 4, 8, 16, 0, true};
    const weights::random_source src(9);
    vision_tower<> img(vc, weights::cursor(src, "img"));
    text_tower<> txt({50, 24, 1, 48, 4, 5, 24}, weights::cursor(src, "txt"));
    const auto images = test::random_vector(2 * 3 * 16 * 16, 3, 0.5f);
    std::vector<float> tokens(2 * vc.tokens() * 24), ie(2 * 24), te(3 * 24);
    core::workspace ws(std::max(img.workspace_floats(2), txt.workspace_floats(3)));
    img.forward(images.data(), 2, layers::image_layout::nchw, tokens.data(), ws);
    img.pool(tokens.data(), 2, ie.data(), ws);
    const std::vector<std::int32_t> classes{1, 2, 3, 1, 1, 7, 8, 9, 1, 1, 10, 20, 30, 40, 1};
    txt.forward(classes.data(), 3, te.data(), ws);
    const auto p = contrastive_scores(ie.data(), 2, te.data(), 3, 24, std::log(10.f), -10.f);
    REQUIRE(p.size() == 6);
    for (float v : p) REQUIRE((v > 0.f && v < 1.f));
}
