// Configs as JSON: our own form (stored in a checkpoint's `__metadata__` under "pali3.config", so
// a file written by pali3 rebuilds its model at run time without recompiling), and HF config.json
// files (SiglipVisionConfig / SiglipConfig, T5Config / MT5Config / UL2) read as they are.
// Every value is range-checked by the model's own `check()` after reading.
#pragma once

#include <string>
#include <string_view>

#include "pali3/core/error.hpp"
#include "pali3/core/json.hpp"
#include "pali3/models/pali3.hpp"
#include "pali3/models/siglip.hpp"
#include "pali3/models/t5.hpp"
#include "pali3/models/vit.hpp"

namespace pali3::models {

inline constexpr std::string_view config_metadata_key = "pali3.config";

// Which model a config describes, and the T5 feed-forward flavour (a type in C++, a string here).
enum class model_kind { vit, t5, pali3, siglip_text, siglip };

struct any_config {
    model_kind kind = model_kind::pali3;
    vit_config vision;
    t5_config text;
    bool gated_ffn = true;  // T5 v1.1 / UL2 (gated GELU); false: v1.0 (ReLU)
    pali3_config pali;
    text_tower_config siglip_text;
};

namespace config_detail {
inline std::size_t get(const json::value& o, std::string_view key, std::string_view where) {
    const std::uint64_t v = o.at(key, where).as_u64(std::string(where) + "." + std::string(key));
    if (v > (std::uint64_t{1} << 32))
        throw config_error(core::describe("config value out of range", std::string(where) + "." + std::string(key), "<= 2^32", v));
    return static_cast<std::size_t>(v);
}
inline std::size_t get_or(const json::value& o, std::string_view key, std::size_t fallback, std::string_view where) {
    return o.find(key) && !o.find(key)->is_null() ? get(o, key, where) : fallback;
}
}  // namespace config_detail

inline json::value to_json(const vit_config& c) {
    json::value v = json::value::make_object();
    v.set("width", json::number(std::uint64_t{c.width}));
    v.set("depth", json::number(std::uint64_t{c.depth}));
    v.set("mlp", json::number(std::uint64_t{c.mlp}));
    v.set("heads", json::number(std::uint64_t{c.heads}));
    v.set("patch", json::number(std::uint64_t{c.patch}));
    v.set("image", json::number(std::uint64_t{c.image}));
    v.set("posemb_grid", json::number(std::uint64_t{c.table_grid()}));
    v.set("map_head", json::value::make_bool(c.map_head));
    v.set("channels", json::number(std::uint64_t{c.channels}));
    return v;
}

inline vit_config vit_from_json(const json::value& v, std::string_view where = "vision") {
    using namespace config_detail;
    vit_config c;
    c.width = get(v, "width", where);
    c.depth = get(v, "depth", where);
    c.mlp = get(v, "mlp", where);
    c.heads = get(v, "heads", where);
    c.patch = get(v, "patch", where);
    c.image = get(v, "image", where);
    c.posemb_grid = get_or(v, "posemb_grid", 0, where);
    c.map_head = v.find("map_head") ? v.at("map_head").as_bool(std::string(where) + ".map_head") : false;
    c.channels = get_or(v, "channels", 3, where);
    if (c.posemb_grid == c.grid()) c.posemb_grid = 0;
    check(c);
    return c;
}

inline json::value to_json(const t5_config& c, bool gated) {
    json::value v = json::value::make_object();
    v.set("vocab", json::number(std::uint64_t{c.vocab}));
    v.set("d_model", json::number(std::uint64_t{c.d_model}));
    v.set("d_ff", json::number(std::uint64_t{c.d_ff}));
    v.set("heads", json::number(std::uint64_t{c.heads}));
    v.set("d_kv", json::number(std::uint64_t{c.d_kv}));
    v.set("encoder_layers", json::number(std::uint64_t{c.encoder_layers}));
    v.set("decoder_layers", json::number(std::uint64_t{c.decoder_layers}));
    v.set("num_buckets", json::number(std::uint64_t{c.num_buckets}));
    v.set("max_distance", json::number(std::uint64_t{c.max_distance}));
    v.set("tied_embeddings", json::value::make_bool(c.tied_embeddings));
    v.set("ffn", json::string(gated ? "gated_gelu" : "relu"));
    v.set("eps", json::number(static_cast<double>(c.eps)));
    return v;
}

inline t5_config t5_from_json(const json::value& v, bool& gated, std::string_view where = "text") {
    using namespace config_detail;
    t5_config c;
    c.vocab = get(v, "vocab", where);
    c.d_model = get(v, "d_model", where);
    c.d_ff = get(v, "d_ff", where);
    c.heads = get(v, "heads", where);
    c.d_kv = get(v, "d_kv", where);
    c.encoder_layers = get(v, "encoder_layers", where);
    c.decoder_layers = get(v, "decoder_layers", where);
    c.num_buckets = get_or(v, "num_buckets", 32, where);
    c.max_distance = get_or(v, "max_distance", 128, where);
    c.tied_embeddings = v.find("tied_embeddings") ? v.at("tied_embeddings").as_bool() : false;
    if (const auto* e = v.find("eps")) c.eps = static_cast<float>(e->as_double());
    const std::string ffn = v.find("ffn") ? v.at("ffn").as_string(std::string(where) + ".ffn") : "gated_gelu";
    if (ffn != "gated_gelu" && ffn != "relu")
        throw config_error(core::describe("unknown T5 feed-forward", std::string(where) + ".ffn", "gated_gelu or relu", ffn));
    gated = ffn == "gated_gelu";
    check(c);
    return c;
}

inline json::value to_json(const text_tower_config& c) {
    json::value v = json::value::make_object();
    v.set("vocab", json::number(std::uint64_t{c.vocab}));
    v.set("width", json::number(std::uint64_t{c.width}));
    v.set("depth", json::number(std::uint64_t{c.depth}));
    v.set("mlp", json::number(std::uint64_t{c.mlp}));
    v.set("heads", json::number(std::uint64_t{c.heads}));
    v.set("max_len", json::number(std::uint64_t{c.max_len}));
    v.set("embed_dim", json::number(std::uint64_t{c.out_dim()}));
    return v;
}

inline json::value to_json(const any_config& c) {
    json::value v = json::value::make_object();
    switch (c.kind) {
        case model_kind::vit:
            v.set("model", json::string("vit"));
            v.set("vision", to_json(c.vision));
            break;
        case model_kind::t5:
            v.set("model", json::string("t5"));
            v.set("text", to_json(c.text, c.gated_ffn));
            break;
        case model_kind::pali3:
            v.set("model", json::string("pali3"));
            v.set("vision", to_json(c.pali.vision));
            v.set("text", to_json(c.pali.text, true));
            break;
        case model_kind::siglip_text:
            v.set("model", json::string("siglip_text"));
            v.set("siglip_text", to_json(c.siglip_text));
            break;
        case model_kind::siglip:
            v.set("model", json::string("siglip"));
            v.set("vision", to_json(c.vision));
            v.set("siglip_text", to_json(c.siglip_text));
            break;
    }
    return v;
}

inline any_config config_from_json(const json::value& v) {
    any_config c;
    const std::string& model = v.at("model", "pali3.config").as_string("pali3.config.model");
    if (model == "vit") {
        c.kind = model_kind::vit;
        c.vision = vit_from_json(v.at("vision", "pali3.config"));
    } else if (model == "t5") {
        c.kind = model_kind::t5;
        c.text = t5_from_json(v.at("text", "pali3.config"), c.gated_ffn);
    } else if (model == "pali3") {
        c.kind = model_kind::pali3;
        c.pali.vision = vit_from_json(v.at("vision", "pali3.config"));
        c.pali.text = t5_from_json(v.at("text", "pali3.config"), c.gated_ffn);
        if (!c.gated_ffn) throw config_error(core::describe("PaLI-3 text model", "pali3.config.text.ffn", "gated_gelu", "relu"));
        c.pali.projector = {c.pali.vision.width, c.pali.text.d_model};
        check(c.pali);
    } else if (model == "siglip_text" || model == "siglip") {
        using namespace config_detail;
        c.kind = model == "siglip" ? model_kind::siglip : model_kind::siglip_text;
        const auto& t = v.at("siglip_text", "pali3.config");
        c.siglip_text = {get(t, "vocab", "siglip_text"), get(t, "width", "siglip_text"), get(t, "depth", "siglip_text"),
                         get(t, "mlp", "siglip_text"),   get(t, "heads", "siglip_text"), get(t, "max_len", "siglip_text"),
                         get_or(t, "embed_dim", 0, "siglip_text")};
        if (c.kind == model_kind::siglip) {
            c.vision = vit_from_json(v.at("vision", "pali3.config"));
            check(siglip_config{c.vision, c.siglip_text});
        }
    } else {
        throw config_error(core::describe("unknown model kind", "pali3.config.model", "vit, t5, pali3, siglip or siglip_text", model));
    }
    return c;
}

inline std::string config_to_string(const any_config& c) { return json::dump(to_json(c)); }
inline any_config config_from_string(std::string_view text) { return config_from_json(json::parse(text, "pali3.config")); }

// HF config.json: SiglipVisionConfig (or SiglipConfig's "vision_config"), T5Config/MT5Config.
inline any_config config_from_hf(const json::value& root, std::size_t image_override = 0) {
    using namespace config_detail;
    any_config c;
    const json::value* vis = root.find("vision_config");
    const std::string type = root.find("model_type") && root.at("model_type").is_string() ? root.at("model_type").as_string() : "";
    if (vis || type == "siglip_vision_model") {
        const json::value& v = vis ? *vis : root;
        c.kind = model_kind::vit;
        c.vision.width = get_or(v, "hidden_size", 768, "vision_config");
        c.vision.depth = get_or(v, "num_hidden_layers", 12, "vision_config");
        c.vision.mlp = get_or(v, "intermediate_size", 3072, "vision_config");
        c.vision.heads = get_or(v, "num_attention_heads", 12, "vision_config");
        c.vision.patch = get_or(v, "patch_size", 16, "vision_config");
        c.vision.image = get_or(v, "image_size", 224, "vision_config");
        c.vision.channels = get_or(v, "num_channels", 3, "vision_config");
        c.vision.map_head = !v.find("vision_use_head") || v.at("vision_use_head").as_bool();
        if (image_override) {
            c.vision.posemb_grid = c.vision.grid();
            c.vision.image = image_override;
        }
        check(c.vision);
        if (const json::value* t = root.find("text_config"); t && vis) {  // SiglipModel: both towers
            c.kind = model_kind::siglip;
            c.siglip_text.vocab = get_or(*t, "vocab_size", 32000, "text_config");
            c.siglip_text.width = get_or(*t, "hidden_size", 768, "text_config");
            c.siglip_text.depth = get_or(*t, "num_hidden_layers", 12, "text_config");
            c.siglip_text.mlp = get_or(*t, "intermediate_size", 3072, "text_config");
            c.siglip_text.heads = get_or(*t, "num_attention_heads", 12, "text_config");
            c.siglip_text.max_len = get_or(*t, "max_position_embeddings", 64, "text_config");
            c.siglip_text.embed_dim = get_or(*t, "projection_size", 0, "text_config");
            c.vision.map_head = true;
            check(siglip_config{c.vision, c.siglip_text});
        }
        return c;
    }
    if (root.find("d_model") && root.find("num_layers")) {
        c.kind = model_kind::t5;
        c.text.vocab = get(root, "vocab_size", "config.json");
        c.text.d_model = get(root, "d_model", "config.json");
        c.text.d_ff = get(root, "d_ff", "config.json");
        c.text.heads = get(root, "num_heads", "config.json");
        c.text.d_kv = get_or(root, "d_kv", 64, "config.json");
        c.text.encoder_layers = get(root, "num_layers", "config.json");
        c.text.decoder_layers = get_or(root, "num_decoder_layers", c.text.encoder_layers, "config.json");
        c.text.num_buckets = get_or(root, "relative_attention_num_buckets", 32, "config.json");
        c.text.max_distance = get_or(root, "relative_attention_max_distance", 128, "config.json");
        if (const auto* e = root.find("layer_norm_epsilon")) c.text.eps = static_cast<float>(e->as_double());
        const std::string ffn = root.find("feed_forward_proj") ? root.at("feed_forward_proj").as_string() : "relu";
        if (ffn == "gated-gelu") c.gated_ffn = true;
        else if (ffn == "relu") c.gated_ffn = false;
        else
            throw config_error(core::describe("unsupported T5 feed_forward_proj", "config.json", "gated-gelu or relu", ffn));
        c.text.tied_embeddings = root.find("tie_word_embeddings") ? root.at("tie_word_embeddings").as_bool() : !c.gated_ffn;
        check(c.text);
        return c;
    }
    throw config_error(core::describe("unrecognised HF config.json", "config.json",
                                      "a SigLIP (vision_config / siglip_vision_model) or T5 (d_model, num_layers) config",
                                      type.empty() ? std::string("neither") : "model_type " + type));
}

// HF config.json for a vision tower (SiglipVisionConfig) or a T5 model (T5Config).
inline json::value config_to_hf(const any_config& c) {
    json::value v = json::value::make_object();
    const auto n = [](std::size_t x) { return json::number(std::uint64_t{x}); };
    if (c.kind == model_kind::vit) {
        const auto& s = c.vision;
        v.set("model_type", json::string("siglip_vision_model"));
        v.set("hidden_size", n(s.width));
        v.set("num_hidden_layers", n(s.depth));
        v.set("intermediate_size", n(s.mlp));
        v.set("num_attention_heads", n(s.heads));
        v.set("patch_size", n(s.patch));
        v.set("image_size", n(s.image));
        v.set("num_channels", n(s.channels));
        v.set("vision_use_head", json::value::make_bool(s.map_head));
        v.set("layer_norm_eps", json::number(1e-6));
        v.set("hidden_act", json::string("gelu_pytorch_tanh"));
        return v;
    }
    if (c.kind == model_kind::t5) {
        const auto& t = c.text;
        v.set("model_type", json::string("t5"));
        v.set("vocab_size", n(t.vocab));
        v.set("d_model", n(t.d_model));
        v.set("d_ff", n(t.d_ff));
        v.set("num_heads", n(t.heads));
        v.set("d_kv", n(t.d_kv));
        v.set("num_layers", n(t.encoder_layers));
        v.set("num_decoder_layers", n(t.decoder_layers));
        v.set("relative_attention_num_buckets", n(t.num_buckets));
        v.set("relative_attention_max_distance", n(t.max_distance));
        v.set("feed_forward_proj", json::string(c.gated_ffn ? "gated-gelu" : "relu"));
        v.set("tie_word_embeddings", json::value::make_bool(t.tied_embeddings));
        v.set("layer_norm_epsilon", json::number(static_cast<double>(t.eps)));
        return v;
    }
    if (c.kind == model_kind::siglip) {
        any_config vis = c;
        vis.kind = model_kind::vit;
        json::value vc = config_to_hf(vis);
        json::value tc = json::value::make_object();
        const auto& t = c.siglip_text;
        tc.set("vocab_size", n(t.vocab));
        tc.set("hidden_size", n(t.width));
        tc.set("num_hidden_layers", n(t.depth));
        tc.set("intermediate_size", n(t.mlp));
        tc.set("num_attention_heads", n(t.heads));
        tc.set("max_position_embeddings", n(t.max_len));
        tc.set("projection_size", n(t.out_dim()));
        v.set("model_type", json::string("siglip"));
        v.set("vision_config", std::move(vc));
        v.set("text_config", std::move(tc));
        return v;
    }
    throw config_error(core::describe("no HF config.json form for this model", "config_to_hf", "vit, t5 or siglip", "pali3 / siglip_text"));
}

}  // namespace pali3::models
