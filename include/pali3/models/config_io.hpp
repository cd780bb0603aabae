// Configs as JSON: our own form (stored in a checkpoint's `__metadata__` under "pali3.config", so
// a file written by pali3 rebuilds its model at run time without recompiling), and HF config.json
// files (SiglipVisionConfig / SiglipConfig, T5Config / MT5Config / UL2) read as they are.
// Every value is range-checked by the model's own `check()` after reading.
#pragma once

#include <cmath>
#include <limits>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

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

// The one table of kind names (our JSON "model" key, the command line, name maps).
inline constexpr std::pair<model_kind, std::string_view> model_kinds[] = {
    {model_kind::vit, "vit"}, {model_kind::t5, "t5"}, {model_kind::pali3, "pali3"},
    {model_kind::siglip_text, "siglip_text"}, {model_kind::siglip, "siglip"}};

inline std::string kind_name(model_kind k) {
    for (const auto& [kind, name] : model_kinds)
        if (kind == k) return std::string(name);
    return "?";
}
inline model_kind kind_from_name(std::string_view name, std::string_view where) {
    for (const auto& [kind, n] : model_kinds)
        if (n == name) return kind;
    throw config_error(core::describe("unknown model kind", where, "vit, t5, pali3, siglip or siglip_text", name));
}

struct any_config {
    model_kind kind = model_kind::pali3;
    vit_config vision;
    t5_config text;
    bool gated_ffn = true;  // T5 v1.1 / UL2 (gated GELU); false: v1.0 (ReLU)
    pali3_config pali;
    text_tower_config siglip_text;
};

// ---- each config's fields, listed once --------------------------------------------------------
// Our JSON key, the HF config.json key ("" when HF has none), the member, whether our JSON must
// have it, and HF's default when config.json omits it (NaN: HF requires it). Parsing, printing
// and validation (range, type, missing keys) of both forms follow from these tables.
template <class C>
struct field {
    std::string_view ours, hf;
    std::variant<std::size_t C::*, bool C::*, float C::*> member;
    bool required = true;
    double hf_default = std::numeric_limits<double>::quiet_NaN();
};

inline constexpr double hf_required = std::numeric_limits<double>::quiet_NaN();

inline const std::vector<field<vit_config>>& fields(const vit_config*) {
    static const std::vector<field<vit_config>> f{
        {"width", "hidden_size", &vit_config::width, true, 768},
        {"depth", "num_hidden_layers", &vit_config::depth, true, 12},
        {"mlp", "intermediate_size", &vit_config::mlp, true, 3072},
        {"heads", "num_attention_heads", &vit_config::heads, true, 12},
        {"patch", "patch_size", &vit_config::patch, true, 16},
        {"image", "image_size", &vit_config::image, true, 224},
        {"posemb_grid", "", &vit_config::posemb_grid, false},
        {"map_head", "vision_use_head", &vit_config::map_head, false, 1},
        {"channels", "num_channels", &vit_config::channels, false, 3}};
    return f;
}
inline const std::vector<field<t5_config>>& fields(const t5_config*) {
    static const std::vector<field<t5_config>> f{
        {"vocab", "vocab_size", &t5_config::vocab},
        {"d_model", "d_model", &t5_config::d_model},
        {"d_ff", "d_ff", &t5_config::d_ff},
        {"heads", "num_heads", &t5_config::heads},
        {"d_kv", "d_kv", &t5_config::d_kv, true, 64},
        {"encoder_layers", "num_layers", &t5_config::encoder_layers},
        {"decoder_layers", "", &t5_config::decoder_layers},  // HF: num_decoder_layers, default num_layers
        {"num_buckets", "relative_attention_num_buckets", &t5_config::num_buckets, false, 32},
        {"max_distance", "relative_attention_max_distance", &t5_config::max_distance, false, 128},
        {"tied_embeddings", "", &t5_config::tied_embeddings, false},  // HF: default follows the FFN
        {"eps", "layer_norm_epsilon", &t5_config::eps, false, 1e-6}};
    return f;
}
inline const std::vector<field<text_tower_config>>& fields(const text_tower_config*) {
    static const std::vector<field<text_tower_config>> f{
        {"vocab", "vocab_size", &text_tower_config::vocab, true, 32000},
        {"width", "hidden_size", &text_tower_config::width, true, 768},
        {"depth", "num_hidden_layers", &text_tower_config::depth, true, 12},
        {"mlp", "intermediate_size", &text_tower_config::mlp, true, 3072},
        {"heads", "num_attention_heads", &text_tower_config::heads, true, 12},
        {"max_len", "max_position_embeddings", &text_tower_config::max_len, true, 64},
        {"embed_dim", "projection_size", &text_tower_config::embed_dim, false, 0}};
    return f;
}

namespace detail {
inline std::size_t get(const json::value& o, std::string_view key, std::string_view where) {
    const std::uint64_t v = o.at(key, where).as_u64(std::string(where) + "." + std::string(key));
    if (v > (std::uint64_t{1} << 32))
        throw config_error(core::describe("config value out of range", std::string(where) + "." + std::string(key), "<= 2^32", v));
    return static_cast<std::size_t>(v);
}
inline std::size_t get_or(const json::value& o, std::string_view key, std::size_t fallback, std::string_view where) {
    return o.find(key) && !o.find(key)->is_null() ? get(o, key, where) : fallback;
}

// Reads one field's value from `o[key]` into c.
template <class C>
void read(const json::value& o, std::string_view key, const field<C>& f, C& c, std::string_view where) {
    const std::string at = std::string(where) + "." + std::string(key);
    std::visit(
        [&](auto member) {
            using T = std::remove_cvref_t<decltype(c.*member)>;
            if constexpr (std::is_same_v<T, bool>) c.*member = o.at(key, where).as_bool(at);
            else if constexpr (std::is_same_v<T, float>) {
                const double v = o.at(key, where).as_double(at);
                if (!(v > 0 && v < 1))
                    throw config_error(core::describe("config value out of range", at, "a number in (0, 1)", v));
                c.*member = static_cast<float>(v);
            } else c.*member = get(o, key, where);
        },
        f.member);
}
template <class C>
void set_default(const field<C>& f, C& c) {
    std::visit(
        [&](auto member) {
            using T = std::remove_cvref_t<decltype(c.*member)>;
            c.*member = static_cast<T>(f.hf_default);
        },
        f.member);
}
template <class C>
json::value write(const field<C>& f, const C& c) {
    return std::visit(
        [&](auto member) {
            using T = std::remove_cvref_t<decltype(c.*member)>;
            if constexpr (std::is_same_v<T, bool>) return json::value::make_bool(c.*member);
            else if constexpr (std::is_same_v<T, float>) return json::number(static_cast<double>(c.*member));
            else return json::number(std::uint64_t{c.*member});
        },
        f.member);
}
}  // namespace detail

// Our JSON form: every field under its own key; optional ones keep the config's default.
template <class C>
json::value fields_to_json(const C& c) {
    json::value v = json::value::make_object();
    for (const auto& f : fields(static_cast<const C*>(nullptr))) v.set(std::string(f.ours), detail::write(f, c));
    return v;
}
template <class C>
C fields_from_json(const json::value& v, std::string_view where) {
    C c{};
    for (const auto& f : fields(static_cast<const C*>(nullptr)))
        if (f.required || (v.find(f.ours) && !v.find(f.ours)->is_null())) detail::read(v, f.ours, f, c, where);
    return c;
}
// HF's form: the fields HF names, HF's defaults for the absent ones.
template <class C>
C fields_from_hf(const json::value& v, std::string_view where) {
    C c{};
    for (const auto& f : fields(static_cast<const C*>(nullptr))) {
        if (f.hf.empty()) continue;
        if (v.find(f.hf) && !v.find(f.hf)->is_null()) detail::read(v, f.hf, f, c, where);
        else if (std::isnan(f.hf_default))
            throw format_error(core::describe("missing key", where, "\"" + std::string(f.hf) + "\"", "none"));
        else detail::set_default(f, c);
    }
    return c;
}
template <class C>
void fields_to_hf(const C& c, json::value& v) {
    for (const auto& f : fields(static_cast<const C*>(nullptr)))
        if (!f.hf.empty()) v.set(std::string(f.hf), detail::write(f, c));
}

inline json::value to_json(const vit_config& c) {
    json::value v = fields_to_json(c);
    v.set("posemb_grid", json::number(std::uint64_t{c.table_grid()}));  // explicit, so a reader needs no rule
    return v;
}

inline vit_config vit_from_json(const json::value& v, std::string_view where = "vision") {
    vit_config c = fields_from_json<vit_config>(v, where);
    if (c.posemb_grid == c.grid()) c.posemb_grid = 0;
    check(c);
    return c;
}

inline json::value to_json(const t5_config& c, bool gated) {
    json::value v = fields_to_json(c);
    json::value out = json::value::make_object();
    for (const auto& f : fields(static_cast<const t5_config*>(nullptr))) {  // "ffn" before "eps", as files have it
        if (f.ours == "eps") out.set("ffn", json::string(gated ? "gated_gelu" : "relu"));
        out.set(std::string(f.ours), *v.find(f.ours));
    }
    return out;
}

inline t5_config t5_from_json(const json::value& v, bool& gated, std::string_view where = "text") {
    t5_config c = fields_from_json<t5_config>(v, where);
    const std::string ffn = v.find("ffn") ? v.at("ffn").as_string(std::string(where) + ".ffn") : "gated_gelu";
    if (ffn != "gated_gelu" && ffn != "relu")
        throw config_error(core::describe("unknown T5 feed-forward", std::string(where) + ".ffn", "gated_gelu or relu", ffn));
    gated = ffn == "gated_gelu";
    check(c);
    return c;
}

inline json::value to_json(const text_tower_config& c) {
    json::value v = fields_to_json(c);
    v.set("embed_dim", json::number(std::uint64_t{c.out_dim()}));
    return v;
}

inline text_tower_config text_tower_from_json(const json::value& v, std::string_view where = "siglip_text") {
    return fields_from_json<text_tower_config>(v, where);
}

inline json::value to_json(const any_config& c) {
    json::value v = json::value::make_object();
    v.set("model", json::string(kind_name(c.kind)));
    const bool vision = c.kind == model_kind::vit || c.kind == model_kind::siglip;
    if (vision) v.set("vision", to_json(c.vision));
    if (c.kind == model_kind::pali3) v.set("vision", to_json(c.pali.vision));
    if (c.kind == model_kind::t5) v.set("text", to_json(c.text, c.gated_ffn));
    if (c.kind == model_kind::pali3) v.set("text", to_json(c.pali.text, c.gated_ffn));
    if (c.kind == model_kind::siglip_text || c.kind == model_kind::siglip) v.set("siglip_text", to_json(c.siglip_text));
    return v;
}

inline any_config config_from_json(const json::value& v) {
    any_config c;
    c.kind = kind_from_name(v.at("model", "pali3.config").as_string("pali3.config.model"), "pali3.config.model");
    const auto part = [&](std::string_view key) -> const json::value& { return v.at(key, "pali3.config"); };
    if (c.kind == model_kind::vit || c.kind == model_kind::siglip) c.vision = vit_from_json(part("vision"));
    if (c.kind == model_kind::t5) c.text = t5_from_json(part("text"), c.gated_ffn);
    if (c.kind == model_kind::siglip_text || c.kind == model_kind::siglip) c.siglip_text = text_tower_from_json(part("siglip_text"));
    if (c.kind == model_kind::siglip) check(siglip_config{c.vision, c.siglip_text});
    if (c.kind == model_kind::pali3) {
        c.pali = pali3_of(vit_from_json(part("vision")), t5_from_json(part("text"), c.gated_ffn));
        if (!c.gated_ffn) throw config_error(core::describe("PaLI-3 text model", "pali3.config.text.ffn", "gated_gelu", "relu"));
        check(c.pali);
    }
    return c;
}

inline std::string config_to_string(const any_config& c) { return json::dump(to_json(c)); }
inline any_config config_from_string(std::string_view text) { return config_from_json(json::parse(text, "pali3.config")); }

// HF config.json: SiglipVisionConfig (or SiglipConfig's "vision_config" + "text_config"),
// T5Config / MT5Config / UL2.
inline any_config config_from_hf(const json::value& root, std::size_t image_override = 0) {
    any_config c;
    const json::value* vis = root.find("vision_config");
    const std::string type = root.find("model_type") && root.at("model_type").is_string() ? root.at("model_type").as_string() : "";
    if (vis || type == "siglip_vision_model") {
        c.kind = model_kind::vit;
        c.vision = fields_from_hf<vit_config>(vis ? *vis : root, "vision_config");
        if (image_override) {
            c.vision.posemb_grid = c.vision.grid();
            c.vision.image = image_override;
        }
        check(c.vision);
        if (const json::value* t = root.find("text_config"); t && vis) {  // SiglipModel: both towers
            c.kind = model_kind::siglip;
            c.siglip_text = fields_from_hf<text_tower_config>(*t, "text_config");
            c.vision.map_head = true;
            check(siglip_config{c.vision, c.siglip_text});
        }
        return c;
    }
    if (root.find("d_model") && root.find("num_layers")) {
        c.kind = model_kind::t5;
        c.text = fields_from_hf<t5_config>(root, "config.json");
        c.text.decoder_layers = detail::get_or(root, "num_decoder_layers", c.text.encoder_layers, "config.json");
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

// HF config.json for a vision tower (SiglipVisionConfig), a T5 model (T5Config) or a SigLIP pair.
inline json::value config_to_hf(const any_config& c) {
    json::value v = json::value::make_object();
    if (c.kind == model_kind::vit) {
        v.set("model_type", json::string("siglip_vision_model"));
        fields_to_hf(c.vision, v);
        v.set("layer_norm_eps", json::number(1e-6));
        v.set("hidden_act", json::string("gelu_pytorch_tanh"));
        return v;
    }
    if (c.kind == model_kind::t5) {
        v.set("model_type", json::string("t5"));
        fields_to_hf(c.text, v);
        v.set("num_decoder_layers", json::number(std::uint64_t{c.text.decoder_layers}));
        v.set("feed_forward_proj", json::string(c.gated_ffn ? "gated-gelu" : "relu"));
        v.set("tie_word_embeddings", json::value::make_bool(c.text.tied_embeddings));
        return v;
    }
    if (c.kind == model_kind::siglip) {
        any_config vis = c;
        vis.kind = model_kind::vit;
        json::value tc = json::value::make_object();
        fields_to_hf(c.siglip_text, tc);
        tc.set("projection_size", json::number(std::uint64_t{c.siglip_text.out_dim()}));
        v.set("model_type", json::string("siglip"));
        v.set("vision_config", config_to_hf(vis));
        v.set("text_config", std::move(tc));
        return v;
    }
    throw config_error(core::describe("no HF config.json form for this model", "config_to_hf", "vit, t5 or siglip", kind_name(c.kind)));
}

}  // namespace pali3::models
