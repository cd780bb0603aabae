// HF config.json, key by key: every key is honoured (the model built from it follows it),
// checked (a value pali3 cannot run is refused, naming the file and the key) or ignored (listed
// with its reason in docs/models.md); keys in no table are reported, not used.
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <type_traits>
#include <vector>

#include <catch2/catch.hpp>

#include "pali3/models/config_io.hpp"
#include "pali3/models/dispatch.hpp"
#include "pali3/vision/preprocess.hpp"
#include "pali3/pipeline/convert.hpp"
#include "pali3/weights/random_source.hpp"
#include "../common.hpp"

using namespace pali3;
using namespace pali3::models;

namespace {
const char* vision_json = R"({"model_type": "siglip_vision_model", "hidden_size": 48, "intermediate_size": 96,
  "num_hidden_layers": 2, "num_attention_heads": 4, "patch_size": 8, "image_size": 32,
  "architectures": ["SiglipVisionModel"], "torch_dtype": "float32", "transformers_version": "4.47.0",
  "_name_or_path": "tiny", "attention_dropout": 0.0, "initializer_range": 0.02})";

const char* t5_json = R"({"model_type": "t5", "vocab_size": 97, "d_model": 32, "d_kv": 8, "d_ff": 56, "num_layers": 2,
  "num_decoder_layers": 3, "num_heads": 4, "feed_forward_proj": "gated-gelu", "dropout_rate": 0.1,
  "layer_norm_epsilon": 1e-6, "is_encoder_decoder": true, "decoder_start_token_id": 0, "pad_token_id": 0,
  "eos_token_id": 1, "use_cache": true, "tie_word_embeddings": false, "n_positions": 512,
  "task_specific_params": {"summarization": {"prefix": "summarize: "}}})";

json::value with(const char* base, const std::string& key, const std::string& value_json) {
    json::value v = json::parse(base, "test");
    v.set(key, json::parse(value_json, "test"));
    return v;
}

// The pooled SigLIP vision output of a config on fixed seeded weights and images.
std::vector<float> pooled_of(const vit_config& c) {
    const weights::random_source src(3);
    vision_tower<> tower(c, weights::cursor(src, "img"));
    const auto images = test::random_vector(3 * 32 * 32, 4, 0.5f);
    std::vector<float> tokens(c.tokens() * c.width), pooled(c.width);
    core::workspace ws(tower.workspace_floats(1));
    tower.forward(images.data(), 1, layers::image_layout::nchw, tokens.data(), ws);
    tower.pool(tokens.data(), 1, pooled.data(), ws);
    return pooled;
}

// T5 logits of the first decoder step, on fixed seeded weights (gated or not per the config).
std::vector<float> logits_of(const any_config& c) {
    return with_model<float>(c, [&]<class M>(std::type_identity<M>, const auto& cfg) -> std::vector<float> {
        if constexpr (std::is_same_v<std::remove_cvref_t<decltype(cfg)>, t5_config>) {
            const weights::random_source src(6);
            M model(cfg, weights::cursor(src));
            const std::vector<std::int32_t> ids{3, 14, 15, 92, 65};
            const std::vector<std::size_t> lens{ids.size()};
            std::vector<float> memory(ids.size() * cfg.d_model);
            model.embed(ids.data(), ids.size(), memory.data());
            core::workspace ws(model.workspace_floats(1, ids.size(), 1));
            model.encode(memory.data(), 1, ids.size(), lens, ws);
            auto state = model.start(memory.data(), 1, ids.size(), lens, 1);
            std::vector<float> logits(cfg.vocab);
            const std::int32_t start = 0;
            model.step(&start, 1, state, logits.data(), ws);
            return logits;
        } else {
            FAIL("not a T5 config");
            return {};
        }
    });
}

}  // namespace

TEST_CASE("SigLIP vision config.json: honoured keys reach the model", "[models][config][hf]") {
    const any_config base = config_from_hf(json::parse(vision_json, "test"));
    CHECK(base.unknown_keys.empty());
    CHECK(base.vision.activation == kernels::activation_id::gelu_tanh);
    CHECK(base.vision.eps == 1e-6f);
    const auto ref = pooled_of(base.vision);
    // hidden_act: each HF name is the activation its semantics say; the output moves unless it
    // names the same function (gelu_new / gelu_fast are gelu_pytorch_tanh written otherwise).
    for (const auto& [name, id] : hf_activations) {
        const any_config c = config_from_hf(with(vision_json, "hidden_act", "\"" + std::string(name) + "\""));
        INFO("hidden_act " << name);
        CHECK(c.vision.activation == id);
        const double d = test::rel_diff(pooled_of(c.vision), ref);
        if (id == kernels::activation_id::gelu_tanh) CHECK(d == 0.0);
        else CHECK(d > 1e-4);
    }
    // layer_norm_eps reaches every LayerNorm (a large eps moves the output).
    const any_config eps = config_from_hf(with(vision_json, "layer_norm_eps", "0.5"));
    CHECK(eps.vision.eps == 0.5f);
    CHECK(test::rel_diff(pooled_of(eps.vision), ref) > 1e-3);
    CHECK_THROWS_WITH(config_from_hf(with(vision_json, "hidden_act", "\"quick_gelu\""), 0, "/m/config.json"),
                      Catch::Contains("unsupported activation (at /m/config.json.hidden_act)") && Catch::Contains("found quick_gelu"));
    CHECK_THROWS_WITH(config_from_hf(with(vision_json, "layer_norm_eps", "2"), 0, "/m/config.json"),
                      Catch::Contains("/m/config.json.layer_norm_eps"));
    // Checked and unknown keys.
    CHECK_THROWS_WITH(config_from_hf(with(vision_json, "is_decoder", "true"), 0, "/m/config.json"),
                      Catch::Contains("(at /m/config.json.is_decoder)"));
    CHECK_THROWS_WITH(config_from_hf(with(vision_json, "pruned_heads", R"({"0": [1]})"), 0, "/m/config.json"),
                      Catch::Contains("pruned attention heads"));
    CHECK_NOTHROW(config_from_hf(with(vision_json, "pruned_heads", "{}")));
    const any_config odd = config_from_hf(with(vision_json, "rope_theta", "10000"), 0, "/m/config.json");
    REQUIRE(odd.unknown_keys.size() == 1);
    CHECK(odd.unknown_keys[0] == "/m/config.json.rope_theta");
}

TEST_CASE("SiglipModel config.json: both towers' keys, errors name the file and part", "[models][config][hf]") {
    const std::string two = std::string(R"({"model_type": "siglip", "initializer_factor": 1.0, "vision_config": )") + vision_json +
                            R"(, "text_config": {"vocab_size": 50, "hidden_size": 48, "intermediate_size": 96, "num_hidden_layers": 2,
      "num_attention_heads": 4, "max_position_embeddings": 16, "hidden_act": "gelu", "layer_norm_eps": 1e-5,
      "pad_token_id": 1, "eos_token_id": 1, "model_type": "siglip_text_model"}})";
    const any_config c = config_from_hf(json::parse(two, "test"), 0, "dir/config.json");
    CHECK(c.kind == model_kind::siglip);
    CHECK(c.unknown_keys.empty());
    CHECK(c.siglip_text.activation == kernels::activation_id::gelu_erf);
    CHECK(c.siglip_text.eps == 1e-5f);
    CHECK(c.siglip_text.block().mlp.activation == kernels::activation_id::gelu_erf);
    CHECK(c.siglip_text.block().norm.eps == 1e-5f);
    // Round trips: HF form and ours keep activation and eps.
    const any_config back = config_from_hf(config_to_hf(c));
    CHECK(back.siglip_text.activation == kernels::activation_id::gelu_erf);
    CHECK(back.siglip_text.eps == 1e-5f);
    const any_config ours = config_from_string(config_to_string(c));
    CHECK(ours.siglip_text.activation == kernels::activation_id::gelu_erf);
    CHECK(ours.vision.activation == kernels::activation_id::gelu_tanh);
    CHECK_THROWS_WITH(config_from_hf(json::parse(std::string(two).replace(two.find("\"gelu\""), 6, "\"mish\""), "t"), 0, "dir/config.json"),
                      Catch::Contains("dir/config.json: text_config.hidden_act"));
}

TEST_CASE("T5 config.json: feed_forward_proj as HF parses it", "[models][config][hf]") {
    struct row {
        const char* ffn;
        bool gated;
        kernels::activation_id act;
    };
    for (const row& r : {row{"gated-gelu", true, kernels::activation_id::gelu_tanh}, row{"gated-silu", true, kernels::activation_id::silu},
                         row{"gated-gelu_new", true, kernels::activation_id::gelu_tanh},
                         row{"gated-relu", true, kernels::activation_id::relu}, row{"relu", false, kernels::activation_id::relu},
                         row{"gelu", false, kernels::activation_id::gelu_erf}, row{"silu", false, kernels::activation_id::silu}}) {
        INFO("feed_forward_proj " << r.ffn);
        const any_config c = config_from_hf(with(t5_json, "feed_forward_proj", "\"" + std::string(r.ffn) + "\""));
        CHECK(c.unknown_keys.empty());
        CHECK(c.gated_ffn == r.gated);
        CHECK(c.text.activation == r.act);
        // Both forms round-trip it.
        const any_config hf = config_from_hf(config_to_hf(c));
        CHECK((hf.gated_ffn == r.gated && hf.text.activation == r.act));
        const any_config ours = config_from_string(config_to_string(c));
        CHECK((ours.gated_ffn == r.gated && ours.text.activation == r.act));
    }
    for (const char* bad : {"silu-gated", "gated-silu-x", "mish", "gated-", "quick_gelu"})
        CHECK_THROWS_WITH(config_from_hf(with(t5_json, "feed_forward_proj", "\"" + std::string(bad) + "\""), 0, "/u/config.json"),
                          Catch::Contains("/u/config.json.feed_forward_proj"));
    // The activation changes the logits: gated-silu is not gated-gelu on the same weights.
    const auto gelu = logits_of(config_from_hf(json::parse(t5_json, "t")));
    const auto silu = logits_of(config_from_hf(with(t5_json, "feed_forward_proj", "\"gated-silu\"")));
    CHECK(test::rel_diff(silu, gelu) > 1e-3);
    const auto gelu_new = logits_of(config_from_hf(with(t5_json, "feed_forward_proj", "\"gated-gelu_new\"")));
    CHECK(test::rel_diff(gelu_new, gelu) == 0.0);
    // layer_norm_epsilon and the relative-attention keys reach the model.
    CHECK(test::rel_diff(logits_of(config_from_hf(with(t5_json, "layer_norm_epsilon", "0.5"))), gelu) > 1e-3);
    CHECK(test::rel_diff(logits_of(config_from_hf(with(t5_json, "relative_attention_num_buckets", "8"))), gelu) > 1e-6);
    // tie_word_embeddings: lm_head = shared and the d_model^-0.5 scale.
    CHECK(config_from_hf(with(t5_json, "tie_word_embeddings", "true")).text.tied_embeddings);
}

TEST_CASE("T5 config.json: checked keys refuse what pali3 cannot run", "[models][config][hf]") {
    const std::pair<const char*, const char*> refused[] = {
        {"is_encoder_decoder", "false"}, {"is_decoder", "true"},  {"decoder_start_token_id", "5"},
        {"pad_token_id", "3"},           {"eos_token_id", "2"},   {"eos_token_id", "[2, 3]"},
        {"dense_act_fn", "\"silu\""},    {"is_gated_act", "false"}, {"pruned_heads", R"({"1": [0]})"}};
    for (const auto& [key, value] : refused) {
        INFO(key << " = " << value);
        CHECK_THROWS_WITH(config_from_hf(with(t5_json, key, value), 0, "/u/flan/config.json"),
                          Catch::Contains("(at /u/flan/config.json." + std::string(key) + ")"));
    }
    // The values pali3 runs pass, including newer transformers' derived keys.
    CHECK_NOTHROW(config_from_hf(with(t5_json, "eos_token_id", "[1]")));
    CHECK_NOTHROW(config_from_hf(with(t5_json, "dense_act_fn", "\"gelu_new\"")));
    CHECK_NOTHROW(config_from_hf(with(t5_json, "is_gated_act", "true")));
    const any_config odd = config_from_hf(with(t5_json, "relative_attention_kind", "\"rope\""), 0, "c.json");
    REQUIRE(odd.unknown_keys.size() == 1);
    CHECK(odd.unknown_keys[0] == "c.json.relative_attention_kind");
}

TEST_CASE("config errors name the file they came from", "[models][config]") {
    const json::value ours = json::parse(R"({"model": "t5", "text": {"vocab": 10}})", "t");
    CHECK_THROWS_WITH(config_from_json(ours, "/tmp/other.json"), Catch::Contains("/tmp/other.json.text"));
    CHECK_THROWS_WITH(config_from_hf(json::parse(R"({"d_model": 8, "num_layers": 1})", "t"), 0, "/x/my.json"),
                      Catch::Contains("/x/my.json"));
    CHECK_THROWS_WITH(config_from_hf(json::parse(R"({"model_type": "llama"})", "t"), 0, "/x/my.json"),
                      Catch::Contains("(at /x/my.json)") && Catch::Contains("model_type llama"));
}

TEST_CASE("inspect: a tensor equal to one the model reads is a tied copy, not unexpected", "[models][config][weights]") {
    namespace fs = std::filesystem;
    any_config c;
    c.kind = model_kind::t5;
    c.gated_ffn = false;
    c.text = t5_config{61, 16, 24, 2, 8, 2, 2};
    c.text.tied_embeddings = true;  // T5 v1.0: no lm_head parameter
    const weights::random_source rnd(21);
    weights::memory_source ours;
    models::t5_v10<float> model(c.text, weights::cursor(rnd));
    layers::save(model, ours);
    std::map<std::string, weights::tensor_data> file;
    for (const auto& n : ours.names()) file.emplace(n, *ours.find(n));
    const auto shared = *ours.find("shared.weight");
    file.emplace("lm_head.weight", shared);                 // HF writes the tied head too
    file.emplace("encoder.embed_tokens.weight", shared);    // and the embedding under its stack's name
    const auto other = test::random_vector(61 * 16, 5);
    weights::tensor_data extra = shared;
    extra.data = other.data();
    file.emplace("decoder.embed_tokens.weight", extra);     // same shape, other values: unexpected
    const fs::path dir = fs::temp_directory_path() / "pali3_test_tied";
    fs::create_directories(dir);
    const std::string path = (dir / "t5.safetensors").string();
    weights::write_file(path, weights::to_safetensors(file));
    const auto ckpt = weights::checkpoint::open(path);
    const auto r = pipeline::check_checkpoint(c, ckpt);
    CHECK(r.ok());
    CHECK(r.missing.empty());
    REQUIRE(r.tied.size() == 2);
    CHECK(r.tied[0] == "encoder.embed_tokens.weight = shared.weight");
    CHECK(r.tied[1] == "lm_head.weight = shared.weight");
    REQUIRE(r.unexpected.size() == 1);
    CHECK(r.unexpected[0] == "decoder.embed_tokens.weight");
    fs::remove_all(dir);
}

TEST_CASE("docs/models.md lists every HF config key pali3 accounts for", "[models][config][docs]") {
    std::ifstream in(std::string(PALI3_SOURCE_DIR) + "/docs/models.md");
    REQUIRE(in);
    std::stringstream ss;
    ss << in.rdbuf();
    const std::string doc = ss.str();
    for (const auto* table : {&hf_vision_keys(), &hf_siglip_text_keys(), &hf_siglip_keys(), &hf_t5_keys(), &hf_common_keys()})
        for (const auto& k : *table) {
            INFO("key " << k.key);
            CHECK(doc.find("`" + std::string(k.key) + "`") != std::string::npos);
        }
}

TEST_CASE("name tables: each name and value appears once, round-trips, and errors list every name", "[models][config]") {
    auto check_table = [](const auto& table, auto from_name) {
        for (const auto& [value, name] : table) {
            CHECK(core::name_in(table, value) == name);  // the first entry of this value is this one
            CHECK(core::value_in(table, name) == value);
            CHECK(from_name(name) == value);
        }
        const std::string all = core::names_list(table);
        try {
            from_name("no-such-name");
            FAIL("accepted an unknown name");
        } catch (const error& e) {
            const std::string what = e.what();
            INFO(what);
            CHECK(what.find(all) != std::string::npos);
            for (const auto& entry : table) CHECK(all.find(entry.second) != std::string::npos);
        }
    };
    check_table(models::model_kinds, [](std::string_view n) { return models::kind_from_name(n, "t"); });
    check_table(kernels::activation_names, [](std::string_view n) { return kernels::activation_from_name(n, "t"); });
    check_table(vision::resize_methods, [](std::string_view n) { return vision::resize_from_name(n, "t"); });
    CHECK(core::names_list(kernels::activation_names) == "relu, gelu_tanh, gelu_erf or silu");
    CHECK(models::kind_name(static_cast<models::model_kind>(99)) == "?");
}
