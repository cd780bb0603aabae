// Size arithmetic that cannot wrap (core::checked_mul / checked_add and the sites that use them:
// the workspace, the KV cache), and what a config implies before anything is allocated
// (models/footprint.hpp): the weight lower bound checked against checkpoints, the run's memory.
#include <cstdint>
#include <limits>

#include <catch2/catch.hpp>

#include "pali3/core/workspace.hpp"
#include "pali3/layers/attention.hpp"
#include "pali3/models/footprint.hpp"
#include "pali3/models/pali3.hpp"

using namespace pali3;
using Catch::Contains;

namespace {
constexpr std::size_t max_size = std::numeric_limits<std::size_t>::max();
}  // namespace

TEST_CASE("checked size arithmetic: exact below 2^64, a named error at and above", "[core][sizes]") {
    CHECK(core::checked_mul("x", 3, 5, 7) == 105u);
    CHECK(core::checked_mul("x", std::size_t{1} << 32, (std::size_t{1} << 32) - 1) == (std::size_t{1} << 32) * ((std::size_t{1} << 32) - 1));
    CHECK(core::checked_add("x", max_size - 10, 4, 6) == max_size);
    CHECK(core::checked_mul("x", 0, max_size, max_size) == 0u);  // a wrapped partial product still counts as a wrap
    CHECK_THROWS_WITH(core::checked_mul("KV cache", 288230376151711745ull, 64, 8),
                      "size overflow (at KV cache): expected a product below 2^64, found 288230376151711745 x 64 x 8");
    CHECK_THROWS_AS(core::checked_mul("x", std::size_t{1} << 32, std::size_t{1} << 32), value_error);
    CHECK_THROWS_WITH(core::checked_add("offset", max_size, 1), Contains("18446744073709551615 + 1"));
}

TEST_CASE("workspace and KV cache sizes near 2^64 are refused, not wrapped", "[core][sizes]") {
    core::workspace ws;
    CHECK_THROWS_WITH(ws.reserve(max_size / 2), Contains("size overflow (at workspace bytes)"));
    CHECK_THROWS_AS(ws.reserve(max_size / 4 + 1), value_error);  // x 4 bytes wraps to a small number
    ws.reserve(1000);
    auto a = ws.alloc(100);
    CHECK(a.size() == 100u);
    CHECK_THROWS_WITH(ws.alloc(max_size - 50), Contains("workspace too small"));  // start + n would wrap
    CHECK_THROWS_WITH(ws.alloc(901), Contains("workspace too small"));
    CHECK(ws.alloc(888).size() == 888u);  // what is left after the 16-float rounding of the first

    CHECK_THROWS_WITH(layers::kv_cache(288230376151711745ull, 64, 8), Contains("size overflow (at KV cache"));
    CHECK_THROWS_AS(layers::kv_cache(std::size_t{1} << 40, std::size_t{1} << 20, std::size_t{1} << 10), value_error);
    layers::kv_cache ok(3, 5, 7);
    CHECK(ok.capacity() == 5u);
    // A cap of 2^28 positions x 1024 wide is a size (2^39 floats) but is not allocated up front:
    // memory comes with the positions (64 at first), doubling, and the cap still holds.
    layers::kv_cache big(2, std::size_t{1} << 28, 1024);
    CHECK(big.held() == layers::kv_cache::initial_positions);
    big.keys(1)[5] = 3.5f;
    big.advance(10);
    big.make_room(100, "test");
    CHECK(big.held() == 128u);
    CHECK(big.keys(1)[5] == 3.5f);  // kept across the move
    big.make_room(1000, "test");
    CHECK(big.held() == 1010u);
    CHECK(big.keys(1)[5] == 3.5f);
    CHECK_THROWS_WITH(big.make_room((std::size_t{1} << 28) - 9, "test"), Contains("KV cache full"));
    CHECK_THROWS_WITH(big.make_room(max_size, "test"), Contains("KV cache full"));  // length + extra would wrap
}

TEST_CASE("footprint: weight lower bounds per kind, saturating, and the fit to a checkpoint", "[models][sizes]") {
    using namespace models;
    // ViT-B/16: 12 x (4 x 768^2 + 2 x 768 x 3072) + 16^2 x 3 x 768 (the bound leaves out norms,
    // biases, the position table and the head).
    any_config vit;
    vit.kind = model_kind::vit;
    vit.vision = with(vit_sizes::B, 16, 224);
    CHECK(min_weights(vit) == 12u * (4u * 768 * 768 + 2u * 768 * 3072) + 16u * 16 * 3 * 768);
    any_config t5;
    t5.kind = model_kind::t5;
    t5.text = t5_sizes::small();  // T5 v1.1 small: gated FFN, 6 heads of 64
    CHECK(min_weights(t5) == 8u * (4u * 512 * 384 + 3u * 512 * 1024) + 8u * (8u * 512 * 384 + 3u * 512 * 1024) + 2u * 32128 * 512);
    t5.gated_ffn = false;
    t5.text.tied_embeddings = true;  // v1.0: one table
    CHECK(min_weights(t5) == 8u * (4u * 512 * 384 + 2u * 512 * 1024) + 8u * (8u * 512 * 384 + 2u * 512 * 1024) + 32128u * 512);

    any_config deep;
    deep.kind = model_kind::pali3;
    deep.pali = presets::pali3_tiny::value;
    const std::size_t tiny = min_weights(deep);
    CHECK(tiny > 0u);
    CHECK_NOTHROW(require_weights_fit(deep, tiny, "test", "tiny.safetensors"));
    CHECK_NOTHROW(require_weights_fit(deep, 0, "test", "tiny.safetensors"));  // a near miss: the loader names the tensor
    deep.pali.vision.depth = 10'000'000;
    const std::size_t need = min_weights(deep);
    CHECK(need > 10'000'000u * 48 * 48);
    CHECK_NOTHROW(require_weights_fit(deep, (need - (1u << 24) + 3) / 4, "config.json", "tiny.safetensors"));
    CHECK_THROWS_WITH(require_weights_fit(deep, tiny, "config.json", "tiny.safetensors"),
                      Contains("config does not fit the checkpoint (at tiny.safetensors, config from config.json): expected about "
                               "the checkpoint's " + std::to_string(tiny) + " weights"));
    deep.pali.text.vocab = max_size / 2;  // saturates instead of wrapping to something small
    CHECK(min_weights(deep) == max_size);
    CHECK_THROWS_WITH(require_weights_fit(deep, 1u << 30, "m", "f"), Contains("needing at least 2^64 weights"));
}

TEST_CASE("footprint: run memory estimate and its limit", "[models][sizes]") {
    using namespace models;
    any_config c;
    c.kind = model_kind::pali3;
    c.pali = presets::pali3_5b::value;
    run_request r;
    r.weight_bytes = 2;
    const auto m = estimate_memory(c, r);
    CHECK(m.weights > std::size_t{9'000'000'000});  // 5.4 B weights in bf16: ~10.8 GB
    CHECK(m.weights < std::size_t{11'000'000'000});
    CHECK(m.kv_cache > 0u);
    CHECK_NOTHROW(require_memory(m, std::size_t{16} << 30, "5b"));
    CHECK_THROWS_WITH(require_memory(m, std::size_t{8} << 30, "5b"),
                      Contains("the run would need more memory than allowed (at 5b): expected at most 8.59 GB"));
    r.prepack = true;
    CHECK(estimate_memory(c, r).weights == 2 * m.weights);
    // int8: the linear layers' matrices at 1 byte (4.9 GB measured for the 5B preset's 722 layers),
    // the embedding table and patch embedding in bf16 (~1.05 GB); scales per 32 add 4 / 32 byte per
    // weight. Prepacked, per-row int8 matrices get the integer GEMM's panels (+1 byte per weight, an
    // upper bound: only where a VNNI engine packs them), per-group ones no packed copy.
    r.int8 = true;
    r.prepack = false;
    const auto q = estimate_memory(c, r);
    CHECK(q.weights > std::size_t{5'500'000'000});
    CHECK(q.weights < std::size_t{6'500'000'000});
    const std::size_t matrices = linear_weights(c), rest = min_weights(c) - matrices;
    CHECK(q.weights == matrices + 2 * rest);
    r.prepack = true;
    CHECK(estimate_memory(c, r).weights == 2 * matrices + 2 * rest);
    r.int8_group = 32;
    CHECK(estimate_memory(c, r).weights == matrices + matrices * 4 / 32 + 2 * rest);
    r.int8 = false;
    r.int8_group = 0;
    r.prepack = false;
    r.new_tokens = 288230376151711745ull;  // 2^58 + 1: saturates, refused under any limit
    const auto huge = estimate_memory(c, r);
    CHECK(huge.total() == max_size);
    CHECK_THROWS_WITH(require_memory(huge, max_size - 1, "caption"), Contains("more than 18 EB"));
    r.new_tokens = 32;
    r.training = true;
    CHECK(estimate_memory(c, r).weights > 4 * m.weights);  // + gradients and two moments in f32
    CHECK(machine_memory_bytes() > 0u);
}

TEST_CASE("configs: the image grid is bounded (a 8192 px config is refused, not run for hours)", "[models][sizes]") {
    models::vit_config v = models::with(models::vit_sizes::Ti, 8, 8192);
    CHECK_THROWS_WITH(models::check(v), "image too large for the tower (at vit_config): expected at most a 256 x 256 grid of patches, found 8192 px / patch 8 = 1024 x 1024");
    v = models::with(models::vit_sizes::Ti, 14, 1064);
    CHECK_NOTHROW(models::check(v));
}

TEST_CASE("json: a number beyond double is an error naming it, not std::out_of_range (fuzz_config)", "[core][sizes]") {
    const auto v = json::parse(R"({"eps": 1e999, "ok": 2.5e-3, "neg": -1e400})");
    CHECK(v.find("ok")->as_double("ok") == 2.5e-3);
    CHECK_THROWS_WITH(v.find("eps")->as_double("layer_norm_epsilon"),
                      "number out of range (at layer_norm_epsilon): expected a finite double, found 1e999");
    CHECK_THROWS_AS(v.find("neg")->as_double("x"), format_error);
    auto hf = json::parse(R"({"model_type": "t5", "d_model": 64, "d_ff": 128, "num_heads": 4, "d_kv": 16, "num_layers": 2,
                              "vocab_size": 100, "feed_forward_proj": "gated-gelu", "layer_norm_epsilon": 1e999})");
    CHECK_THROWS_AS(models::config_from_hf(hf), pali3::error);
}
