// Checkpoints as a whole: the parameters a config expects (names, shapes), a report of how a
// checkpoint matches them (missing, wrong shape or dtype, unexpected), and conversion: build the
// model from any source (a checkpoint in any naming, seeded random weights) and write it in our
// naming (config in the metadata) or HF's (config.json beside it).
#pragma once

#include <algorithm>
#include <cstring>
#include <map>
#include <filesystem>
#include <set>
#include <string>
#include <vector>

#include "pali3/layers/module.hpp"
#include "pali3/models/dispatch.hpp"
#include "pali3/pipeline/weight_dtype.hpp"
#include "pali3/weights/checkpoint.hpp"
#include "pali3/weights/memory_source.hpp"
#include "pali3/weights/name_maps.hpp"
#include "pali3/weights/safetensors.hpp"

namespace pali3::pipeline {

// (name, shape, storage) of every parameter the config's model has; no weights are touched.
// `Models` (here and below) as for pali3_pipeline.
template <class Models = models::runtime_models>
std::vector<layers::param_info> expected_parameters(const models::any_config& c, const Models& make_model = {}) {
    return make_model(c, "bf16", [&]<class M>(std::type_identity<M>, const auto& cfg) {
        M model(cfg);
        return layers::parameters(model);
    });
}

struct checkpoint_report {
    std::vector<std::string> missing;     // "name (shape)"
    std::vector<std::string> wrong;       // the loader's message for a wrong shape or dtype
    std::vector<std::string> unexpected;  // file names no parameter maps to
    std::vector<std::string> tied;        // unused file tensors equal to a used one: "name = used name"
    bool ok() const { return missing.empty() && wrong.empty(); }
};

// Whether `name` is the scale tensor of an int8 weight listed in `list` (weights/source.hpp).
inline bool is_int8_scale(const std::string& name, const std::vector<weights::tensor_info>& list) {
    const std::string_view suffix = weights::int8_scale_suffix;
    if (name.size() <= suffix.size() || name.compare(name.size() - suffix.size(), suffix.size(), suffix) != 0) return false;
    const std::string base = name.substr(0, name.size() - suffix.size());
    return std::any_of(list.begin(), list.end(), [&](const weights::tensor_info& t) { return t.name == base && t.dtype == "I8"; });
}

template <class Models = models::runtime_models>
checkpoint_report check_checkpoint(const models::any_config& c, const weights::checkpoint& ckpt, const Models& make_model = {}) {
    checkpoint_report r;
    const weights::mapped_source mapped(ckpt, weights::rules_for(weights::detect_naming(ckpt.names()), models::kind_name(c.kind)));
    std::set<std::string> used;
    for (const auto& p : expected_parameters(c, make_model)) {
        const auto theirs = mapped.translate(p.name);
        if (!theirs) {
            r.missing.push_back(p.name + " " + shape_string(p.shape));
            continue;
        }
        used.insert(theirs->substr(0, theirs->back() == ']' ? theirs->rfind('[') : theirs->size()));
        try {
            (void)mapped.get(p.name, p.shape);
        } catch (const error& e) {
            r.wrong.push_back(e.what());
        }
    }
    // A tensor no parameter maps to may be a tied copy another name already provides (HF T5's
    // lm_head.weight or encoder/decoder.embed_tokens.weight next to shared.weight): same dtype,
    // shape and bytes as a used tensor. Only those of equal dtype and shape are compared.
    const auto list = ckpt.list();
    for (const auto& t : list) {
        if (used.count(t.name) || is_int8_scale(t.name, list)) continue;
        std::string copy_of;
        for (const auto& u : list) {
            if (!used.count(u.name) || u.dtype != t.dtype || u.shape != t.shape || u.bytes != t.bytes) continue;
            const auto a = ckpt.get_raw(t.name), b = ckpt.get_raw(u.name);
            if (a.data && b.data && a.type == b.type && a.shape == b.shape &&
                std::memcmp(a.data, b.data, a.size() * weights::dtype_size(a.type)) == 0) {
                copy_of = u.name;
                break;
            }
        }
        if (copy_of.empty()) r.unexpected.push_back(t.name);
        else r.tied.push_back(t.name + " = " + copy_of);
    }
    return r;
}

// Builds the model the config describes from `src` (names ours, after any mapping) in the form
// `dtype` names (f32, bf16, or int8: every linear layer's matrix as int8 values and scales with
// `int8_group`, the rest bf16; weight_dtype.hpp) and returns its tensors in our names.
template <class Source, class Models = models::runtime_models>
weights::memory_source load_and_save(const models::any_config& c, std::string_view dtype, const Source& src,
                                     const Models& make_model = {}, std::size_t int8_group = 0) {
    check_dtype(dtype, int8_group);
    weights::memory_source out;
    make_model(c, storage_of(dtype), [&]<class M>(std::type_identity<M>, const auto& cfg) {
        M model(cfg);
        timings t;
        load_weights(model, weights::cursor(src), dtype, int8_group, t, "load");
        layers::save(model, out);
    });
    return out;
}

// HF's names for a model kind (the reverse of rules_for's HF maps).
inline std::vector<weights::map_rule> hf_export_rules(models::model_kind k) {
    switch (k) {
        case models::model_kind::vit: return weights::name_maps::hf_siglip_vision();
        case models::model_kind::t5: return weights::name_maps::hf_t5();
        case models::model_kind::pali3: return weights::name_maps::hf_pali3();
        case models::model_kind::siglip_text: return weights::name_maps::hf_siglip_text();
        case models::model_kind::siglip: return weights::name_maps::hf_siglip();
    }
    return {};
}

// Writes our tensors as `out`: naming "pali3" (config in the metadata) or "hf" (HF names,
// config.json beside the file for the kinds HF has a config for).
// An int8 checkpoint (tensors from load_and_save with dtype int8) is written in our naming only,
// with its group size in the metadata ("int8_group").
inline void write_checkpoint(const std::string& out, const weights::memory_source& ours, const models::any_config& c,
                             std::string_view naming, std::size_t int8_group = 0) {
    bool int8 = false;
    for (const auto& name : ours.names()) int8 = int8 || ours.find(name)->type == weights::dtype::i8;
    if (naming == "pali3") {
        std::map<std::string, std::string> meta{{std::string(models::config_metadata_key), models::config_to_string(c)}};
        if (int8) meta.emplace("int8_group", std::to_string(int8_group));
        weights::write_safetensors(out, ours, meta);
    } else if (int8) {
        throw value_error(core::describe("int8 checkpoint naming", "--naming", "pali3 (int8 weights are written in our naming)", naming));
    } else if (naming == "hf") {
        weights::write_safetensors(out, weights::export_names(ours, hf_export_rules(c.kind)), {{"format", "pt"}});
        if (c.kind == models::model_kind::vit || c.kind == models::model_kind::t5 || c.kind == models::model_kind::siglip) {
            const auto dir = std::filesystem::path(out).parent_path();
            weights::write_file((dir / "config.json").string(), json::dump(models::config_to_hf(c)));
        }
    } else {
        throw value_error(core::describe("output naming", "--naming", "pali3 or hf", naming));
    }
}

}  // namespace pali3::pipeline
