// How images become pixels for a checkpoint: the user's choices (--resize, --mean, --std,
// --antialias), else the HF `preprocessor_config.json` beside the checkpoint (SigLIP's processor:
// Pillow bicubic to 224 x 224, x / 255, mean = std = 0.5), else big_vision's (tf-style bilinear,
// [0, 255] -> [-1, 1]), as vision::preprocess_options. Every key of a preprocessor config is
// honoured, checked or ignored with its reason (docs/pipeline.md), like config.json's.
#pragma once

#include <array>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "pali3/core/error.hpp"
#include "pali3/core/json.hpp"
#include "pali3/models/config_io.hpp"
#include "pali3/pipeline/config_source.hpp"
#include "pali3/vision/preprocess.hpp"

namespace pali3::pipeline {

// What the user asked for; an unset field follows the checkpoint's preprocessor config.
struct preprocessing_request {
    bool antialias = false;                      // tf_bilinear only: a filter widened when downscaling
    std::optional<vision::resize_method> resize;  // --resize
    std::optional<std::array<float, 3>> mean, std;  // --mean, --std (on [0, 1] pixel values)
};

// The keys of an HF image processor config (SiglipImageProcessor, PaliGemma's, CLIP-style ones).
inline const std::vector<models::hf_key>& hf_preprocessor_keys() {
    using models::key_use;
    static const std::vector<models::hf_key> k{
        {"do_resize", key_use::honoured, "false: images must already be the model's size"},
        {"size", key_use::checked, "{\"height\": H, \"width\": W}, square; the model's resolution is used (a different one is noted)"},
        {"resample", key_use::honoured, "2 (Pillow BILINEAR) or 3 (BICUBIC)"},
        {"do_rescale", key_use::honoured, "false: pixel values stay in [0, 255]"},
        {"rescale_factor", key_use::honoured, "multiplies the [0, 255] values (1/255)"},
        {"do_normalize", key_use::honoured, "false: no mean/std"},
        {"image_mean", key_use::honoured, "per-channel mean (one number or three)"},
        {"image_std", key_use::honoured, "per-channel std (one number or three)"},
        {"do_center_crop", key_use::checked, "must be false: pali3 resizes the whole image"},
        {"do_pad", key_use::checked, "must be false"},
        {"do_convert_rgb", key_use::ignored, "pali3 always decodes images to RGB"},
        {"crop_size", key_use::ignored, "used only with do_center_crop"},
        {"image_processor_type", key_use::ignored, "HF bookkeeping"},
        {"processor_class", key_use::ignored, "HF bookkeeping"},
        {"feature_extractor_type", key_use::ignored, "HF bookkeeping"},
        {"image_seq_length", key_use::ignored, "PaliGemma's image token count: the model's config decides it"}};
    return k;
}

namespace detail {
inline std::array<float, 3> three_numbers(const json::value& v, std::string_view at) {
    if (v.is_number()) {
        const float x = static_cast<float>(v.as_double(at));
        return {x, x, x};
    }
    const auto& items = v.items(at);
    if (items.size() != 3) throw config_error(core::describe("per-channel values", at, "one number or three", items.size()));
    return {static_cast<float>(items[0].as_double(at)), static_cast<float>(items[1].as_double(at)),
            static_cast<float>(items[2].as_double(at))};
}
}  // namespace detail

// vision::preprocess_options from an HF preprocessor config (`where` names the file in
// messages); size is the model's resolution (the config's own size, when different, is listed
// in `unknown` with a remark). Keys no table names go to `unknown` ("file.key").
inline vision::preprocess_options preprocessing_from_hf(const json::value& root, std::size_t size, std::string_view where,
                                                        std::vector<std::string>* unknown = nullptr) {
    const std::string file(where);
    const auto at = [&](std::string_view key) { return file + "." + std::string(key); };
    const auto flag = [&](std::string_view key, bool fallback) {
        const json::value* v = root.find(key);
        return v && !v->is_null() ? v->as_bool(at(key)) : fallback;
    };
    vision::preprocess_options o;
    o.size = size;
    for (const auto& [key, val] : root.members(file)) {
        const models::hf_key* k = nullptr;
        for (const auto& e : hf_preprocessor_keys())
            if (e.key == key) k = &e;
        if (!k) {
            if (!key.starts_with("_") && unknown) unknown->push_back(at(key));
            continue;
        }
        if ((key == "do_center_crop" || key == "do_pad") && !val.is_null() && val.as_bool(at(key)))
            throw config_error(core::describe("unsupported preprocessing", at(key), "false", "true"));
    }
    o.do_resize = flag("do_resize", true);
    if (const json::value* s = root.find("size"); s && !s->is_null()) {
        if (s->find("shortest_edge") || s->find("longest_edge"))
            throw config_error(core::describe("unsupported resize", at("size"), "{\"height\": H, \"width\": W}", json::dump(*s)));
        const std::uint64_t h = s->at("height", at("size")).as_u64(at("size.height"));
        const std::uint64_t w = s->at("width", at("size")).as_u64(at("size.width"));
        if (h != w) throw config_error(core::describe("non-square resize", at("size"), "height == width (the towers are square)",
                                                      std::to_string(h) + " x " + std::to_string(w)));
        if (h != size && unknown)  // the model's resolution wins (e.g. --resolution); say so
            unknown->push_back(at("size") + " (" + std::to_string(h) + " x " + std::to_string(w) + ": the model runs at " +
                               std::to_string(size) + ")");
    }
    const std::uint64_t resample = root.find("resample") && !root.find("resample")->is_null() ? root.at("resample").as_u64(at("resample")) : 3;
    if (resample == 2) o.resize = vision::resize_method::pil_bilinear;
    else if (resample == 3) o.resize = vision::resize_method::pil_bicubic;
    else throw config_error(core::describe("unsupported resample filter", at("resample"), "2 (BILINEAR) or 3 (BICUBIC)", resample));
    o.rescale = 1.f;
    if (flag("do_rescale", true)) {
        const json::value* r = root.find("rescale_factor");
        o.rescale = r && !r->is_null() ? static_cast<float>(r->as_double(at("rescale_factor"))) : 1.f / 255.f;
    }
    o.mean = {0.f, 0.f, 0.f};
    o.std = {1.f, 1.f, 1.f};
    if (flag("do_normalize", true)) {
        const json::value* m = root.find("image_mean");
        const json::value* s = root.find("image_std");
        o.mean = m && !m->is_null() ? detail::three_numbers(*m, at("image_mean")) : std::array<float, 3>{0.5f, 0.5f, 0.5f};
        o.std = s && !s->is_null() ? detail::three_numbers(*s, at("image_std")) : std::array<float, 3>{0.5f, 0.5f, 0.5f};
    }
    vision::check(o, file);
    return o;
}

// The preprocessing of a run: the request's fields, else preprocessor_config.json beside the
// checkpoint (`checkpoint_path`, a file or a directory; "" for none), else big_vision's.
// `source` (if given) says which, for reports.
inline vision::preprocess_options resolve_preprocessing(const preprocessing_request& r, const std::string& checkpoint_path,
                                                        std::size_t size, std::string* source = nullptr) {
    vision::preprocess_options o;
    o.size = size;
    std::string from = "big_vision (tf bilinear, [-1, 1])";
    if (!checkpoint_path.empty()) {
        namespace fs = std::filesystem;
        const fs::path p(checkpoint_path);
        std::error_code ec;
        const fs::path json_path = (fs::is_directory(p, ec) ? p : p.parent_path()) / "preprocessor_config.json";
        if (fs::exists(json_path, ec)) {
            std::vector<std::string> unknown;
            o = preprocessing_from_hf(json::parse(read_text_file(json_path.string()), json_path.string()), size, json_path.string(),
                                      &unknown);
            from = json_path.string();
            note_unused_keys("preprocessor keys not used", unknown, "docs/pipeline.md lists the keys pali3 reads");
        }
    }
    if (r.resize) o.resize = *r.resize;
    if (r.antialias) {
        if (o.resize != vision::resize_method::tf_bilinear)
            throw value_error(core::describe("--antialias", "preprocessing", "the tf bilinear resize (Pillow's filters always antialias)",
                                             vision::resize_name(o.resize)));
        o.antialias = true;
    }
    if (r.mean) o.mean = *r.mean;
    if (r.std) o.std = *r.std;
    if (r.resize || r.mean || r.std || r.antialias) from += " + flags";
    vision::check(o, "preprocessing");
    if (source) *source = from;
    return o;
}

}  // namespace pali3::pipeline
