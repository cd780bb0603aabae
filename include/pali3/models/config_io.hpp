// Configs as JSON: our own form (stored in a checkpoint's `__metadata__` under "pali3.config", so
// a file written by pali3 rebuilds its model at run time without recompiling), and HF config.json
// files (SiglipVisionConfig / SiglipConfig, T5Config / MT5Config / UL2) read as they are.
// Every value is range-checked by the model's own `check()` after reading.
#pragma once

#include <charconv>
#include <cmath>
#include <limits>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "pali3/core/error.hpp"
#include "pali3/core/name_table.hpp"
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

inline std::string kind_name(model_kind k) { return std::string(core::name_in(model_kinds, k).value_or("?")); }
inline model_kind kind_from_name(std::string_view name, std::string_view where) {
    if (const auto k = core::value_in(model_kinds, name)) return *k;
    throw config_error(core::describe("unknown model kind", where, core::names_list(model_kinds), name));
}

struct any_config {
    model_kind kind = model_kind::pali3;
    vit_config vision;
    t5_config text;
    bool gated_ffn = true;  // T5 v1.1 / UL2 (gated feed-forward); false: v1.0 (one matrix in)
    pali3_config pali;
    text_tower_config siglip_text;
    // HF config.json keys pali3 has no entry for (hf_keys below), as "file: path.key"; they were
    // not used. Empty for our own form and for every config.json HF writes for these models.
    std::vector<std::string> unknown_keys;
};

// ---- activation names in HF's configs (transformers' ACT2FN) --------------------------------
// "gelu" is the exact (erf) GELU; "gelu_new", "gelu_pytorch_tanh" and "gelu_fast" are the same
// tanh approximation written three ways; "swish" is silu. T5's "gated-gelu" means gelu_new.
inline constexpr std::pair<std::string_view, kernels::activation_id> hf_activations[] = {
    {"relu", kernels::activation_id::relu},           {"gelu", kernels::activation_id::gelu_erf},
    {"gelu_new", kernels::activation_id::gelu_tanh},  {"gelu_pytorch_tanh", kernels::activation_id::gelu_tanh},
    {"gelu_fast", kernels::activation_id::gelu_tanh}, {"silu", kernels::activation_id::silu},
    {"swish", kernels::activation_id::silu}};

inline kernels::activation_id activation_from_hf(std::string_view name, std::string_view where) {
    for (const auto& [n, id] : hf_activations)
        if (n == name) return id;
    throw config_error(core::describe("unsupported activation", where,
                                      "relu, gelu, gelu_new, gelu_pytorch_tanh, gelu_fast, silu or swish", name));
}
// The name HF's own configs use for an activation.
inline std::string_view hf_activation_name(kernels::activation_id id) {
    switch (id) {
        case kernels::activation_id::relu: return "relu";
        case kernels::activation_id::gelu_erf: return "gelu";
        case kernels::activation_id::silu: return "silu";
        default: return "gelu_pytorch_tanh";
    }
}

// ---- each config's fields, listed once --------------------------------------------------------
// Our JSON key, the HF config.json key ("" when HF has none), the member, whether our JSON must
// have it, and HF's default when config.json omits it (NaN: HF requires it). Parsing, printing
// and validation (range, type, missing keys) of both forms follow from these tables.
// An activation field's HF default is the config struct's own (vit/text tower: tanh GELU).
template <class C>
struct field {
    std::string_view ours, hf;
    std::variant<std::size_t C::*, bool C::*, float C::*, kernels::activation_id C::*> member;
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
        {"channels", "num_channels", &vit_config::channels, false, 3},
        {"eps", "layer_norm_eps", &vit_config::eps, false, 1e-6},
        {"activation", "hidden_act", &vit_config::activation, false, 0}};
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
        {"embed_dim", "projection_size", &text_tower_config::embed_dim, false, 0},
        {"eps", "layer_norm_eps", &text_tower_config::eps, false, 1e-6},
        {"activation", "hidden_act", &text_tower_config::activation, false, 0}};
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

// Reads one field's value from `o[key]` into c (an activation by our name, or HF's when `hf`).
template <class C>
void read(const json::value& o, std::string_view key, const field<C>& f, C& c, std::string_view where, bool hf = false) {
    const std::string at = std::string(where) + "." + std::string(key);
    std::visit(
        [&](auto member) {
            using T = std::remove_cvref_t<decltype(c.*member)>;
            if constexpr (std::is_same_v<T, bool>) c.*member = o.at(key, where).as_bool(at);
            else if constexpr (std::is_same_v<T, kernels::activation_id>) {
                const std::string name = o.at(key, where).as_string(at);
                c.*member = hf ? activation_from_hf(name, at) : kernels::activation_from_name(name, at);
            }
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
            if constexpr (std::is_same_v<T, kernels::activation_id>) c.*member = C{}.*member;
            else c.*member = static_cast<T>(f.hf_default);
        },
        f.member);
}
template <class C>
json::value write(const field<C>& f, const C& c, bool hf = false) {
    return std::visit(
        [&](auto member) {
            using T = std::remove_cvref_t<decltype(c.*member)>;
            if constexpr (std::is_same_v<T, bool>) return json::value::make_bool(c.*member);
            else if constexpr (std::is_same_v<T, kernels::activation_id>)
                return json::string(std::string(hf ? hf_activation_name(c.*member) : kernels::name_of(c.*member)));
            else if constexpr (std::is_same_v<T, float>) {  // the float's shortest form: 1e-06, not 9.99999997e-07
                char buf[32];
                const auto r = std::to_chars(buf, buf + sizeof buf, c.*member);
                return json::value::make_number(std::string(buf, r.ptr));
            }
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
        if (v.find(f.hf) && !v.find(f.hf)->is_null()) detail::read(v, f.hf, f, c, where, true);
        else if (std::isnan(f.hf_default))
            throw format_error(core::describe("missing key", where, "\"" + std::string(f.hf) + "\"", "none"));
        else detail::set_default(f, c);
    }
    return c;
}
template <class C>
void fields_to_hf(const C& c, json::value& v) {
    for (const auto& f : fields(static_cast<const C*>(nullptr)))
        if (!f.hf.empty()) v.set(std::string(f.hf), detail::write(f, c, true));
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

// The T5 feed-forward in our JSON ("ffn"): "gated_gelu" (T5 v1.1: gated tanh GELU, the name
// files have always had), "relu" (v1.0), else "gated_<activation>" or "<activation>".
inline std::string ffn_name(bool gated, kernels::activation_id a) {
    const auto id = a == kernels::activation_id::of_type ? (gated ? kernels::activation_id::gelu_tanh : kernels::activation_id::relu) : a;
    if (gated && id == kernels::activation_id::gelu_tanh) return "gated_gelu";
    return (gated ? "gated_" : "") + std::string(kernels::name_of(id));
}
inline void ffn_from_name(std::string_view name, bool& gated, kernels::activation_id& a, std::string_view where) {
    gated = name.starts_with("gated_");
    const std::string_view act = gated ? name.substr(6) : name;
    a = gated && act == "gelu" ? kernels::activation_id::gelu_tanh : kernels::activation_from_name(act, where);
}

inline json::value to_json(const t5_config& c, bool gated) {
    json::value v = fields_to_json(c);
    json::value out = json::value::make_object();
    for (const auto& f : fields(static_cast<const t5_config*>(nullptr))) {  // "ffn" before "eps", as files have it
        if (f.ours == "eps") out.set("ffn", json::string(ffn_name(gated, c.activation)));
        out.set(std::string(f.ours), *v.find(f.ours));
    }
    return out;
}

inline t5_config t5_from_json(const json::value& v, bool& gated, std::string_view where = "text") {
    t5_config c = fields_from_json<t5_config>(v, where);
    const std::string at = std::string(where) + ".ffn";
    const std::string ffn = v.find("ffn") ? v.at("ffn").as_string(at) : "gated_gelu";
    ffn_from_name(ffn, gated, c.activation, at);
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

// `where` names the source in messages (a file, or "pali3.config" for checkpoint metadata).
inline any_config config_from_json(const json::value& v, std::string_view where = config_metadata_key) {
    any_config c;
    const std::string w(where);
    c.kind = kind_from_name(v.at("model", w).as_string(w + ".model"), w + ".model");
    const auto part = [&](std::string_view key) -> const json::value& { return v.at(key, w); };
    if (c.kind == model_kind::vit || c.kind == model_kind::siglip) c.vision = vit_from_json(part("vision"), w + ".vision");
    if (c.kind == model_kind::t5) c.text = t5_from_json(part("text"), c.gated_ffn, w + ".text");
    if (c.kind == model_kind::siglip_text || c.kind == model_kind::siglip)
        c.siglip_text = text_tower_from_json(part("siglip_text"), w + ".siglip_text");
    if (c.kind == model_kind::siglip) check(siglip_config{c.vision, c.siglip_text});
    if (c.kind == model_kind::pali3) {
        c.pali = pali3_of(vit_from_json(part("vision"), w + ".vision"), t5_from_json(part("text"), c.gated_ffn, w + ".text"));
        if (!c.gated_ffn)
            throw config_error(core::describe("PaLI-3 text model", w + ".text.ffn", "a gated feed-forward (gated_gelu, gated_silu, ...)",
                                              ffn_name(false, c.pali.text.activation)));
        check(c.pali);
    }
    return c;
}

inline std::string config_to_string(const any_config& c) { return json::dump(to_json(c)); }
inline any_config config_from_string(std::string_view text, std::string_view where = config_metadata_key) {
    return config_from_json(json::parse(text, std::string(where)), where);
}

// ---- every key of HF's config.json, accounted for ------------------------------------------
// honoured: read and followed; checked: must hold the one value pali3 runs (else a config_error
// naming the file and key); ignored: has no effect on the network's output (the reason is the
// note; docs/models.md prints this table). A key in none of these lists lands in
// any_config::unknown_keys, which the command line reports.
enum class key_use { honoured, checked, ignored };
struct hf_key {
    std::string_view key;
    key_use use;
    std::string_view note;
};

// Keys every PretrainedConfig may carry (transformers writes many of them into every file).
inline const std::vector<hf_key>& hf_common_keys() {
    static const std::vector<hf_key> k = [] {
        std::vector<hf_key> v;
        const auto bookkeeping = "HF bookkeeping (classes, versions, dtype of the saved tensors: pali3 reads each tensor's own)";
        for (const char* key : {"architectures", "transformers_version", "torch_dtype", "model_type", "finetuning_task", "id2label",
                                "label2id", "problem_type", "tokenizer_class", "prefix", "return_dict", "output_hidden_states",
                                "output_attentions", "torchscript", "use_bfloat16", "tf_legacy_loss", "chunk_size_feed_forward",
                                "cross_attention_hidden_size", "add_cross_attention", "tie_encoder_decoder", "gradient_checkpointing",
                                "use_return_dict", "output_past", "initializer_range", "initializer_factor", "dtype"})
            v.push_back({key, key_use::ignored, bookkeeping});
        const auto generation = "a default of HF's generate(); pali3's decoding takes its own flags (--beam, --max-new-tokens, --length-penalty)";
        for (const char* key : {"max_length", "min_length", "do_sample", "early_stopping", "num_beams", "num_beam_groups",
                                "diversity_penalty", "temperature", "top_k", "top_p", "typical_p", "repetition_penalty",
                                "length_penalty", "no_repeat_ngram_size", "encoder_no_repeat_ngram_size", "bad_words_ids",
                                "num_return_sequences", "output_scores", "return_dict_in_generate", "forced_bos_token_id",
                                "forced_eos_token_id", "remove_invalid_values", "exponential_decay_length_penalty",
                                "suppress_tokens", "begin_suppress_tokens", "task_specific_params", "sep_token_id"})
            v.push_back({key, key_use::ignored, generation});
        v.push_back({"pruned_heads", key_use::checked, "must be empty: pruned heads change the tensors' shapes"});
        return v;
    }();
    return k;
}

inline const std::vector<hf_key>& hf_vision_keys() {
    static const std::vector<hf_key> k{
        {"hidden_size", key_use::honoured, "width"},
        {"intermediate_size", key_use::honoured, "MLP hidden width"},
        {"num_hidden_layers", key_use::honoured, "depth"},
        {"num_attention_heads", key_use::honoured, "heads"},
        {"num_channels", key_use::honoured, "input channels"},
        {"image_size", key_use::honoured, "resolution (--resolution resamples the position table)"},
        {"patch_size", key_use::honoured, "patch side"},
        {"hidden_act", key_use::honoured, "MLP activation (relu, gelu, gelu_new, gelu_pytorch_tanh, gelu_fast, silu, swish)"},
        {"layer_norm_eps", key_use::honoured, "every LayerNorm's epsilon"},
        {"vision_use_head", key_use::honoured, "MAP head present"},
        {"attention_dropout", key_use::ignored, "dropout acts only in training; pali3 trains without dropout"},
        {"pad_token_id", key_use::ignored, "no tokens in the vision tower"},
        {"bos_token_id", key_use::ignored, "no tokens in the vision tower"},
        {"eos_token_id", key_use::ignored, "no tokens in the vision tower"},
        {"tie_word_embeddings", key_use::ignored, "no word embeddings in the vision tower"},
        {"is_encoder_decoder", key_use::ignored, "an encoder only"},
        {"is_decoder", key_use::checked, "must be false"}};
    return k;
}

inline const std::vector<hf_key>& hf_siglip_text_keys() {
    static const std::vector<hf_key> k{
        {"vocab_size", key_use::honoured, "vocabulary"},
        {"hidden_size", key_use::honoured, "width"},
        {"intermediate_size", key_use::honoured, "MLP hidden width"},
        {"num_hidden_layers", key_use::honoured, "depth"},
        {"num_attention_heads", key_use::honoured, "heads"},
        {"max_position_embeddings", key_use::honoured, "text length (position table)"},
        {"projection_size", key_use::honoured, "head output width"},
        {"hidden_act", key_use::honoured, "MLP activation"},
        {"layer_norm_eps", key_use::honoured, "every LayerNorm's epsilon"},
        {"attention_dropout", key_use::ignored, "dropout acts only in training; pali3 trains without dropout"},
        {"pad_token_id", key_use::ignored, "the tokenizer's; the tower pools the last position whatever its id"},
        {"bos_token_id", key_use::ignored, "the tokenizer's"},
        {"eos_token_id", key_use::ignored, "the tokenizer's; the tower pools the last position whatever its id"},
        {"tie_word_embeddings", key_use::ignored, "no output embedding in the text tower"},
        {"is_encoder_decoder", key_use::ignored, "an encoder only"},
        {"is_decoder", key_use::checked, "must be false"}};
    return k;
}

inline const std::vector<hf_key>& hf_siglip_keys() {
    static const std::vector<hf_key> k{
        {"vision_config", key_use::honoured, "the image tower (table above)"},
        {"text_config", key_use::honoured, "the text tower (table above)"},
        {"logit_scale_init_value", key_use::ignored, "initialisation only; the checkpoint holds logit_scale"},
        {"logit_bias_init_value", key_use::ignored, "initialisation only; the checkpoint holds logit_bias"},
        {"tie_word_embeddings", key_use::ignored, "no output embedding in SigLIP"},
        {"is_encoder_decoder", key_use::ignored, "two encoders"}};
    return k;
}

inline const std::vector<hf_key>& hf_t5_keys() {
    static const std::vector<hf_key> k{
        {"vocab_size", key_use::honoured, "vocabulary"},
        {"d_model", key_use::honoured, "width"},
        {"d_kv", key_use::honoured, "per-head width"},
        {"d_ff", key_use::honoured, "feed-forward hidden width"},
        {"num_layers", key_use::honoured, "encoder depth"},
        {"num_decoder_layers", key_use::honoured, "decoder depth (default num_layers)"},
        {"num_heads", key_use::honoured, "heads"},
        {"relative_attention_num_buckets", key_use::honoured, "position buckets"},
        {"relative_attention_max_distance", key_use::honoured, "bucket range"},
        {"layer_norm_epsilon", key_use::honoured, "every RMSNorm's epsilon"},
        {"feed_forward_proj", key_use::honoured, "\"gated-<act>\" or \"<act>\" (relu, gelu, gelu_new, gelu_pytorch_tanh, gelu_fast, silu, swish); \"gated-gelu\" is gelu_new"},
        {"dense_act_fn", key_use::checked, "must agree with feed_forward_proj (newer transformers write both)"},
        {"is_gated_act", key_use::checked, "must agree with feed_forward_proj"},
        {"tie_word_embeddings", key_use::honoured, "lm_head = shared embedding, logits scaled by d_model^-0.5 (default: true unless gated)"},
        {"is_encoder_decoder", key_use::checked, "must be true"},
        {"is_decoder", key_use::checked, "must be false"},
        {"decoder_start_token_id", key_use::checked, "must be 0 (decoding starts from the pad id, as every T5)"},
        {"pad_token_id", key_use::checked, "must be 0"},
        {"eos_token_id", key_use::checked, "must be 1 (or a list holding 1)"},
        {"bos_token_id", key_use::ignored, "T5 has no start-of-text token"},
        {"use_cache", key_use::ignored, "pali3 always decodes with a KV cache (same output)"},
        {"dropout_rate", key_use::ignored, "dropout acts only in training; pali3 trains without dropout"},
        {"classifier_dropout", key_use::ignored, "dropout acts only in training"},
        {"n_positions", key_use::ignored, "legacy, unused by T5 (relative positions have no maximum)"}};
    return k;
}

namespace detail {
inline const hf_key* find_key(const std::vector<hf_key>& table, std::string_view key) {
    for (const auto& k : table)
        if (k.key == key) return &k;
    return nullptr;
}
// Checks the checked keys of `o` (a config object) with `check_one`, and lists keys that are in
// none of the tables (underscore-prefixed ones are HF's private bookkeeping) into `unknown`.
template <class F>
void account_keys(const json::value& o, const std::vector<hf_key>& table, std::string_view where,
                  std::vector<std::string>& unknown, F&& check_one) {
    for (const auto& [key, val] : o.members(where)) {
        const hf_key* k = find_key(table, key);
        if (!k) k = find_key(hf_common_keys(), key);
        if (!k) {
            if (!key.starts_with("_")) unknown.push_back(std::string(where) + "." + key);
            continue;
        }
        if (k->use != key_use::checked || val.is_null()) continue;
        const std::string at = std::string(where) + "." + key;
        if (key == "pruned_heads") {
            if (!(val.is_object() && val.members(at).empty()))
                throw config_error(core::describe("pruned attention heads", at, "none ({})", "some"));
        } else if (key == "is_decoder") {
            if (val.as_bool(at)) throw config_error(core::describe("unsupported config value", at, "false", "true"));
        } else {
            check_one(key, val, at);
        }
    }
}
inline void require_u64(const json::value& v, std::string_view at, std::uint64_t want) {
    const std::uint64_t got = v.as_u64(at);
    if (got != want) throw config_error(core::describe("unsupported config value", at, want, got));
}
}  // namespace detail

// HF config.json: SiglipVisionConfig (or SiglipConfig's "vision_config" + "text_config"),
// T5Config / MT5Config / UL2. `where` names the file in messages.
inline any_config config_from_hf(const json::value& root, std::size_t image_override = 0, std::string_view where = "config.json") {
    any_config c;
    const std::string file(where);
    const json::value* vis = root.find("vision_config");
    const std::string type = root.find("model_type") && root.at("model_type").is_string() ? root.at("model_type").as_string() : "";
    const auto no_checks = [](std::string_view, const json::value&, std::string_view) {};
    if (vis || type == "siglip_vision_model") {
        c.kind = model_kind::vit;
        const std::string vwhere = vis ? file + ": vision_config" : file;
        c.vision = fields_from_hf<vit_config>(vis ? *vis : root, vwhere);
        detail::account_keys(vis ? *vis : root, hf_vision_keys(), vwhere, c.unknown_keys, no_checks);
        if (image_override) {
            c.vision.posemb_grid = c.vision.grid();
            c.vision.image = image_override;
        }
        check(c.vision);
        if (const json::value* t = root.find("text_config"); t && vis) {  // SiglipModel: both towers
            c.kind = model_kind::siglip;
            c.siglip_text = fields_from_hf<text_tower_config>(*t, file + ": text_config");
            detail::account_keys(*t, hf_siglip_text_keys(), file + ": text_config", c.unknown_keys, no_checks);
            c.vision.map_head = true;
            check(siglip_config{c.vision, c.siglip_text});
        }
        if (vis) detail::account_keys(root, hf_siglip_keys(), file, c.unknown_keys, no_checks);
        return c;
    }
    if (root.find("d_model") && root.find("num_layers")) {
        c.kind = model_kind::t5;
        c.text = fields_from_hf<t5_config>(root, file);
        c.text.decoder_layers = detail::get_or(root, "num_decoder_layers", c.text.encoder_layers, file);
        // HF: "gated-<act>" or "<act>", split at '-'; "gated-gelu" alone means gelu_new (tanh).
        const std::string at = file + ".feed_forward_proj";
        const std::string ffn = root.find("feed_forward_proj") ? root.at("feed_forward_proj").as_string(at) : "relu";
        const auto dash = ffn.find('-');
        const std::string act = dash == std::string::npos ? ffn : ffn.substr(dash + 1);
        if (dash != std::string::npos && (ffn.substr(0, dash) != "gated" || act.find('-') != std::string::npos))
            throw config_error(core::describe("bad T5 feed_forward_proj", at, "\"gated-<activation>\" or \"<activation>\"", ffn));
        c.gated_ffn = dash != std::string::npos;
        c.text.activation = ffn == "gated-gelu" ? kernels::activation_id::gelu_tanh : activation_from_hf(act, at);
        c.text.tied_embeddings = root.find("tie_word_embeddings") ? root.at("tie_word_embeddings").as_bool(file + ".tie_word_embeddings")
                                                                   : !c.gated_ffn;
        detail::account_keys(root, hf_t5_keys(), file, c.unknown_keys, [&](std::string_view key, const json::value& v, std::string_view k_at) {
            if (key == "dense_act_fn") {
                const std::string& name = v.as_string(k_at);
                if (activation_from_hf(name, k_at) != c.text.activation)
                    throw config_error(core::describe("dense_act_fn disagrees with feed_forward_proj", k_at,
                                                      hf_activation_name(c.text.activation), name));
            } else if (key == "is_gated_act") {
                if (v.as_bool(k_at) != c.gated_ffn)
                    throw config_error(core::describe("is_gated_act disagrees with feed_forward_proj", k_at, c.gated_ffn ? "true" : "false",
                                                      c.gated_ffn ? "false" : "true"));
            } else if (key == "is_encoder_decoder") {
                if (!v.as_bool(k_at)) throw config_error(core::describe("unsupported config value", k_at, "true", "false"));
            } else if (key == "decoder_start_token_id" || key == "pad_token_id") {
                detail::require_u64(v, k_at, 0);
            } else if (key == "eos_token_id") {
                bool has_one = false;
                if (v.is_array())
                    for (const auto& e : v.items(k_at)) has_one = has_one || (e.is_number() && e.as_u64(k_at) == 1);
                else has_one = v.as_u64(k_at) == 1;
                if (!has_one) throw config_error(core::describe("unsupported config value", k_at, "1 (T5's </s>)", json::dump(v)));
            }
        });
        check(c.text);
        return c;
    }
    throw config_error(core::describe("unrecognised HF config.json", file,
                                      "a SigLIP (vision_config / siglip_vision_model) or T5 (d_model, num_layers) config",
                                      type.empty() ? std::string("neither") : "model_type " + type));
}

// HF config.json for a vision tower (SiglipVisionConfig), a T5 model (T5Config) or a SigLIP pair.
inline json::value config_to_hf(const any_config& c) {
    json::value v = json::value::make_object();
    if (c.kind == model_kind::vit) {
        v.set("model_type", json::string("siglip_vision_model"));
        fields_to_hf(c.vision, v);
        return v;
    }
    if (c.kind == model_kind::t5) {
        v.set("model_type", json::string("t5"));
        fields_to_hf(c.text, v);
        v.set("num_decoder_layers", json::number(std::uint64_t{c.text.decoder_layers}));
        const auto act = c.text.activation == kernels::activation_id::of_type
                             ? (c.gated_ffn ? kernels::activation_id::gelu_tanh : kernels::activation_id::relu)
                             : c.text.activation;
        v.set("feed_forward_proj", json::string(c.gated_ffn && act == kernels::activation_id::gelu_tanh
                                                    ? std::string("gated-gelu")
                                                    : (c.gated_ffn ? "gated-" : "") + std::string(hf_activation_name(act))));
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
