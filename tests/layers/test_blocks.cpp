// Blocks and stacks: the composition equals its parts run by hand, fit rules at run time, a
// compile-time preset that fits, named activations, and a T5 stack sharing its position bias.
#include <map>
#include <vector>

#include <catch2/catch.hpp>

#include "pali3/layers/block.hpp"
#include "pali3/weights/random_source.hpp"
#include "../common.hpp"

using namespace pali3;
using namespace pali3::layers;

namespace {
const weights::random_source seeded_blocks(99);

struct vit_tiny_block {
    static constexpr block_config value{{40, 1e-6f}, {40, 4, 0, true}, {40, 72, true}};
};
}  // namespace

TEST_CASE("a block equals its parts run by hand", "[layers][block]") {
    const block_config c = vit_tiny_block::value;
    const std::size_t batch = 2, t = 11, w = 40, rows = batch * t;
    fixed_block<vit_tiny_block, layer_norm, attention<>, mlp<>> block(weights::cursor(seeded_blocks, "b"));
    // The same parameters, loaded into separate parts.
    layer_norm n1(c.norm, weights::cursor(seeded_blocks, "b.norm1")), n2(c.norm, weights::cursor(seeded_blocks, "b.norm2"));
    attention<> at(c.attn, weights::cursor(seeded_blocks, "b.attn"));
    mlp<> ml(c.mlp, weights::cursor(seeded_blocks, "b.mlp"));

    auto x = test::random_vector(rows * w, 5);
    auto manual = x;
    const std::vector<std::size_t> lens{11, 6};
    core::workspace ws(decltype(block)::workspace_floats(c, batch, t));
    block.forward(x.data(), batch, t, ws, core::sequential{}, {.keys = lens});

    std::vector<float> h(rows * w);
    n1.forward(manual.data(), w, rows, h.data(), w);
    at.forward(h.data(), batch, t, manual.data(), ws, core::sequential{}, {}, lens, nullptr, true);
    n2.forward(manual.data(), w, rows, h.data(), w);
    ml.forward(h.data(), rows, manual.data(), ws, core::sequential{}, true);
    CHECK(x == manual);
    CHECK(parameter_count(block) == 2 * 2 * w + 4 * (w * w + w) + (w * 72 + 72) + (72 * w + w));
}

TEST_CASE("run-time fit rules name both parts and sizes", "[layers][block]") {
    block_config c = vit_tiny_block::value;
    CHECK_NOTHROW(check(c));
    c.mlp.width = 48;
    CHECK_THROWS_WITH(vit_block<>(c), "block parts do not fit (at block): expected mlp width != attention width, found 48 vs 40");
    c = vit_tiny_block::value;
    c.attn.heads = 3;
    CHECK_THROWS_WITH(check(c), Catch::Contains("attention heads do not divide attention width") && Catch::Contains("3 vs 40"));
    c = vit_tiny_block::value;
    c.norm.width = 41;
    CHECK_THROWS_AS(check(c), config_error);
    stack_config s{vit_tiny_block::value, 2, true, position_bias_config{5}};
    CHECK_THROWS_WITH(stack<vit_block<>>(s), Catch::Contains("relative bias heads != attention heads"));
}

TEST_CASE("stacks report named activations and share the T5 position bias", "[layers][block]") {
    const block_config c{{48, 1e-6f}, {48, 4, 16, false}, {48, 80, false}};
    stack_config sc{c, 3, true, position_bias_config{4, 32, 128, true}};
    stack<t5_encoder_block<bf16>> enc(sc, weights::cursor(seeded_blocks, "encoder"));
    const auto names = parameters(enc, "encoder");
    CHECK(names.front().name == "encoder.rel_bias.weight");
    CHECK(names.back().name == "encoder.norm.weight");
    std::size_t rel_tables = 0;
    for (const auto& p : names) rel_tables += p.name.find("rel_bias") != std::string::npos;
    CHECK(rel_tables == 1);  // one table for the whole stack

    const std::size_t batch = 2, t = 9;
    auto x = test::random_vector(batch * t * 48, 8);
    std::map<std::string, shape_t> seen;
    trace tr([&](const std::string& name, std::span<const float> data, const shape_t& shape) {
        REQUIRE(data.size() == shape_size(shape));
        seen[name] = shape;
    }, "encoder");
    core::workspace ws(enc.workspace_floats(batch, t));
    enc.forward(x.data(), batch, t, ws, core::sequential{}, {}, tr);
    CHECK(seen.count("encoder.blocks.0.attn_out"));
    CHECK(seen.count("encoder.blocks.2.mlp_out"));
    CHECK(seen.count("encoder.blocks.1.mlp.hidden"));
    CHECK(seen.count("encoder.blocks.1.attn.context"));
    CHECK(seen.at("encoder.norm_out") == shape_t{batch * t, 48});

    // Without a trace the result is the same.
    auto y = test::random_vector(batch * t * 48, 8);
    enc.forward(y.data(), batch, t, ws);
    CHECK(x == y);
    // Threads do not change the answer.
    auto z = test::random_vector(batch * t * 48, 8);
    core::thread_pool pool(2);
    enc.forward(z.data(), batch, t, ws, pool);
    CHECK(x == z);
}
