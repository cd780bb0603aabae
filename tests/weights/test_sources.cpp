#include <cmath>
#include <cstring>
#include <limits>

#include <catch2/catch.hpp>

#include "pali3/weights/memory_source.hpp"
#include "pali3/weights/random_source.hpp"
#include "pali3/weights/mapped_source.hpp"
#include "pali3/weights/part_source.hpp"
#include "../common.hpp"

using namespace pali3;
using namespace pali3::weights;

TEST_CASE("memory source: get, shape checks, missing names, duplicates", "[weights]") {
    memory_source src;
    src.add<float>("enc.0.w", test::random_vector(6, 1), {2, 3});
    CHECK(src.contains("enc.0.w"));
    CHECK_FALSE(src.contains("enc.1.w"));
    const cursor cur(src, "enc");
    CHECK(cur.pp(0).full_name("w") == "enc.0.w");
    auto p = cur.pp(0).get<float>("w", {2, 3});
    CHECK(p.size() == 6);
    CHECK_THROWS_WITH(cur.pp(0).get<float>("w", {3, 2}),
                      "weight has the wrong shape (at enc.0.w): expected (3, 2), found (2, 3)");
    CHECK_THROWS_WITH(cur.pp(1).get<float>("w", {2, 3}),
                      "missing tensor (at enc.1.w): expected a tensor of shape (2, 3), found no such name");
    CHECK_THROWS_AS(src.add<float>("enc.0.w", test::random_vector(6, 1), {2, 3}), value_error);
    CHECK_THROWS_AS(src.add<float>("x", test::random_vector(5, 1), {2, 3}), shape_error);
}

TEST_CASE("params borrow matching storage and convert the rest", "[weights]") {
    memory_source src;
    const auto v = test::random_vector(10, 3);
    src.add<float>("a", v, {10});
    src.add<bf16>("b", test::to_storage<bf16>(v), {10});
    const cursor cur(src);
    const auto a32 = cur.get<float>("a", {10});
    const auto a32_again = cur.get<float>("a", {10});
    CHECK(a32.data == a32_again.data);  // zero copy
    const auto ab = cur.get<bf16>("a", {10});
    const auto bf = cur.get<float>("b", {10});
    for (std::size_t i = 0; i < 10; ++i) {
        CHECK(ab.data[i] == to_bf16(v[i]));
        CHECK(bf.data[i] == to_float(to_bf16(v[i])));
    }
}

TEST_CASE("random source is deterministic per name and scaled like the usual init", "[weights]") {
    const random_source a(42), b(42), c(43);
    const auto t1 = a.get("blocks.0.mlp.fc1.weight", {256, 512});
    const auto t2 = b.get("blocks.0.mlp.fc1.weight", {256, 512});
    const auto t3 = c.get("blocks.0.mlp.fc1.weight", {256, 512});
    const auto t4 = a.get("blocks.1.mlp.fc1.weight", {256, 512});
    const float* p1 = static_cast<const float*>(t1.data);
    const float* p2 = static_cast<const float*>(t2.data);
    const float* p3 = static_cast<const float*>(t3.data);
    const float* p4 = static_cast<const float*>(t4.data);
    double sum = 0, sq = 0;
    bool same_seed_equal = true, other_seed_differs = false, other_name_differs = false;
    for (std::size_t i = 0; i < t1.size(); ++i) {
        same_seed_equal &= p1[i] == p2[i];
        other_seed_differs |= p1[i] != p3[i];
        other_name_differs |= p1[i] != p4[i];
        sum += p1[i];
        sq += double(p1[i]) * p1[i];
        REQUIRE(p1[i] != 0.f);
    }
    CHECK(same_seed_equal);
    CHECK(other_seed_differs);
    CHECK(other_name_differs);
    const double n = static_cast<double>(t1.size());
    CHECK(std::abs(sum / n) < 0.01);
    CHECK(sq / n == Approx(1.0 / 512).epsilon(0.05));  // variance 1 / fan_in
    const auto gain = a.get("ln.weight", {64});
    const auto bias = a.get("ln.bias", {64});
    double gmean = 0, bmean = 0;
    for (std::size_t i = 0; i < 64; ++i) {
        gmean += static_cast<const float*>(gain.data)[i] / 64;
        bmean += std::abs(static_cast<const float*>(bias.data)[i]) / 64;
    }
    CHECK(gmean == Approx(1.0).margin(0.02));
    CHECK(bmean < 0.05);
}

TEST_CASE("mapped source maps our names to another naming", "[weights]") {
    memory_source hf;
    hf.add<float>("vision_model.encoder.layers.3.self_attn.q_proj.weight", test::random_vector(4, 1), {2, 2});
    hf.add<float>("vision_model.post_layernorm.weight", test::random_vector(2, 2), {2});
    const mapped_source ours(hf, {{"vision.blocks.{}.attn.q.weight", "vision_model.encoder.layers.{}.self_attn.q_proj.weight"},
                                  {"vision.norm.{}", "vision_model.post_layernorm.{}"}});
    CHECK(ours.translate("vision.blocks.3.attn.q.weight").value() == "vision_model.encoder.layers.3.self_attn.q_proj.weight");
    CHECK(ours.contains("vision.blocks.3.attn.q.weight"));
    CHECK_FALSE(ours.contains("vision.blocks.4.attn.q.weight"));
    CHECK(ours.contains("vision.norm.weight"));
    CHECK_FALSE(ours.translate("text.unknown").has_value());
    CHECK_THROWS_WITH(cursor(ours, "vision.blocks.4.attn.q").get<float>("weight", {2, 2}),
                      Catch::Contains("vision_model.encoder.layers.4.self_attn.q_proj.weight") &&
                          Catch::Contains("vision.blocks.4.attn.q.weight"));
    CHECK_THROWS_AS(cursor(ours, "vision.blocks.3.attn.q").get<float>("weight", {2, 3}), shape_error);
    CHECK_THROWS_AS(mapped_source(hf, {{"a.{}.b", "c.d"}}), config_error);
    // A last {} rule passes every other name through unchanged.
    const mapped_source pass(hf, {{"x.{}", "vision_model.{}"}, {"{}", "{}"}});
    CHECK(pass.translate("x.post_layernorm.weight").value() == "vision_model.post_layernorm.weight");
    CHECK(pass.contains("vision_model.post_layernorm.weight"));
}

TEST_CASE("non-finite weights are refused by tensor name unless allowed", "[weights][robustness]") {
    memory_source src;
    auto w = test::random_vector(37, 5);
    w[29] = std::numeric_limits<float>::quiet_NaN();
    w[31] = -std::numeric_limits<float>::infinity();
    src.add<float>("enc.layers.2.w", w, {37});
    std::vector<bf16> h(11, to_bf16(0.5f));
    h[7] = to_bf16(std::numeric_limits<float>::infinity());
    src.add<bf16>("head.w", h, {11});
    std::vector<f16> g(9, to_f16(0.25f));
    g[0] = f16::from_bits(0x7e00);  // an f16 NaN
    src.add<f16>("x.w", g, {9});
    src.add<float>("ok.w", test::random_vector(5, 6), {5});
    const mapped_source m(src, {{"{}", "{}"}});
    CHECK_THROWS_WITH(cursor(m, "enc.layers.2").get<float>("w", {37}),
                      "non-finite weight (at enc.layers.2.w <- enc.layers.2.w): expected finite values (--allow-nonfinite to load it "
                      "anyway), found 2 NaN/Inf of 37, the first (NaN) at element 29");
    CHECK_THROWS_WITH(cursor(m).get<float>("head.w", {11}), Catch::Contains("found 1 NaN/Inf of 11, the first (Inf) at element 7"));
    CHECK_THROWS_WITH(cursor(m).get<float>("x.w", {9}), Catch::Contains("the first (NaN) at element 0"));
    CHECK(cursor(m).get<float>("ok.w", {5}).size() == 5u);
    allow_nonfinite_weights = true;
    CHECK(std::isnan(cursor(m, "enc.layers.2").get<float>("w", {37}).values()[29]));
    allow_nonfinite_weights = false;
}

TEST_CASE("random init straight into bf16 / f16 matrices rounds the f32 values, vectors stay f32", "[weights]") {
    for (auto d : {random_source::distribution::normal, random_source::distribution::uniform}) {
        const random_source f(3, d), b(3, d, dtype::bf16), h(3, d, dtype::f16);
        const auto tf = f.get("blocks.0.mlp.fc1.weight", {37, 19});
        const auto tb = b.get("blocks.0.mlp.fc1.weight", {37, 19});
        const auto th = h.get("blocks.0.mlp.fc1.weight", {37, 19});
        REQUIRE(tb.type == dtype::bf16);
        REQUIRE(th.type == dtype::f16);
        REQUIRE(tb.shape == tf.shape);
        for (std::size_t i = 0; i < tf.size(); ++i) {
            const float v = static_cast<const float*>(tf.data)[i];
            REQUIRE(static_cast<const bf16*>(tb.data)[i].bits == to_bf16(v).bits);
            REQUIRE(static_cast<const f16*>(th.data)[i].bits == to_f16(v).bits);
        }
        const auto vb = b.get("blocks.0.norm1.weight", {19});
        REQUIRE(vb.type == dtype::f32);
        const auto vf = f.get("blocks.0.norm1.weight", {19});
        REQUIRE(std::memcmp(vb.data, vf.data, 19 * sizeof(float)) == 0);
        // A bf16 parameter takes the bf16 tensor as it is (no copy); an f32 one widens it.
        auto pb = to_param<bf16>(b.get("w", {8, 8}));
        auto pf = to_param<float>(b.get("w", {8, 8}));
        REQUIRE(pb.shape == shape_t{8, 8});
        for (std::size_t i = 0; i < 64; ++i) REQUIRE(pf.data[i] == to_float(pb.data[i]));
    }
}

TEST_CASE("uniform random init has the same scale", "[weights]") {
    const random_source u(1, random_source::distribution::uniform);
    const auto t = u.get("w", {64, 1024});
    const float* p = static_cast<const float*>(t.data);
    double sq = 0, mx = 0;
    for (std::size_t i = 0; i < t.size(); ++i) {
        sq += double(p[i]) * p[i];
        mx = std::max(mx, double(std::abs(p[i])));
    }
    CHECK(sq / double(t.size()) == Approx(1.0 / 1024).epsilon(0.05));
    CHECK(mx <= std::sqrt(3.0 / 1024) + 1e-6);
}

TEST_CASE("part source: one prefix from a pretrained part under its own prefix, the rest elsewhere", "[weights]") {
    memory_source tower;  // a SigLIP pair's vision tensors
    const auto w = test::random_vector(6, 3);
    tower.add<float>("vision.embedding.weight", w, {2, 3});
    tower.add<float>("text.embedding.weight", test::random_vector(4, 4), {2, 2});
    const random_source random(7);
    const part_source both("img.", tower, "vision.", "siglip.safetensors", random);
    CHECK(both.contains("img.embedding.weight"));
    CHECK_FALSE(both.contains("img.head.weight"));
    CHECK(both.contains("txt.anything"));  // random weights have every name
    const auto t = both.get("img.embedding.weight", {2, 3});
    const float* v = static_cast<const float*>(t.data);
    CHECK(std::vector<float>(v, v + 6) == w);
    const auto r = both.get("txt.embedding.weight", {2, 3});
    const auto expect = random.get("txt.embedding.weight", {2, 3});
    CHECK(std::memcmp(r.data, expect.data, 6 * sizeof(float)) == 0);
    CHECK(both.taken() == 1);
    CHECK_THROWS_WITH(both.get("img.head.weight", {3}),
                      "pretrained part without this tensor (at siglip.safetensors): expected vision.head.weight of shape "
                      "(3), found no such tensor");
    CHECK_THROWS_AS(both.get("img.embedding.weight", {3, 2}), shape_error);
}
