// Where a model's run-time config comes from: a preset by name ("pali3_5b", "vit:B/16@384",
// "siglip:So400m/14", "t5_small"), a JSON file (ours or an HF config.json), a checkpoint's
// "pali3.config" metadata, or an HF config.json beside the checkpoint; and per-stage timings.
#pragma once

#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <cstddef>
#include <filesystem>
#include <functional>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "pali3/core/error.hpp"
#include "pali3/core/files.hpp"
#include "pali3/core/json.hpp"
#include "pali3/models/config_io.hpp"
#include "pali3/models/footprint.hpp"
#include "pali3/weights/checkpoint.hpp"

namespace pali3::pipeline {

// A non-negative integer written in full ("-16", "12x" and overflow are errors naming `where`).
inline std::size_t parse_size(std::string_view text, std::string_view where) {
    std::size_t v = 0;
    bool ok = !text.empty();
    for (const char c : text) {
        if (c < '0' || c > '9' || v > (~std::size_t{0} - 9) / 10) {
            ok = false;
            break;
        }
        v = v * 10 + static_cast<std::size_t>(c - '0');
    }
    if (!ok) throw value_error(core::describe("not a non-negative integer", where, "digits", "\"" + std::string(text) + "\""));
    return v;
}

inline models::any_config preset_config(std::string_view name) {
    using namespace models;
    any_config c;
    const std::pair<std::string_view, pali3_config> palis[] = {{"pali3_5b", presets::pali3_5b::value},
                                                               {"pali3_5b_812", presets::pali3_5b_812::value},
                                                               {"pali3_5b_1064", presets::pali3_5b_1064::value},
                                                               {"pali3_tiny", presets::pali3_tiny::value}};
    for (const auto& [n, p] : palis)
        if (name == n) {
            c.kind = model_kind::pali3;
            c.pali = p;
            return c;
        }
    if (name.starts_with("vit:")) {  // vit:B/16 or vit:So400m/14@384
        c.kind = model_kind::vit;
        std::string_view v = name.substr(4);
        std::size_t image = 224;
        if (const auto at = v.find('@'); at != std::string_view::npos) {
            image = parse_size(v.substr(at + 1), "preset " + std::string(name) + " resolution");
            v = v.substr(0, at);
        }
        if (const auto slash = v.find('/'); slash != std::string_view::npos)
            (void)parse_size(v.substr(slash + 1), "preset " + std::string(name) + " patch");
        c.vision = vit_variant(v, image);
        c.vision.map_head = true;
        return c;
    }
    if (name.starts_with("siglip:")) {  // siglip:B/16[@RES]: both towers, text as big_vision's "same size"
        const any_config v = preset_config("vit:" + std::string(name.substr(7)));
        c.kind = model_kind::siglip;
        const auto s = siglip_of(v.vision, 32000);
        c.vision = s.vision;
        c.siglip_text = s.text;
        check(s);
        return c;
    }
    const std::pair<std::string_view, t5_config> t5s[] = {{"t5_small", t5_sizes::small()}, {"t5_base", t5_sizes::base()},
                                                           {"t5_large", t5_sizes::large()}, {"t5_xl", t5_sizes::xl()},
                                                           {"mt5_xl", t5_sizes::xl(t5_sizes::mt5_vocab)},
                                                           {"ul2_20b", t5_sizes::ul2_20b()}, {"flan_ul2", t5_sizes::ul2_20b()}};
    for (const auto& [n, t] : t5s)
        if (name == n) {
            c.kind = model_kind::t5;
            c.text = t;
            return c;
        }
    throw config_error(core::describe("unknown preset", name,
                                      "pali3_5b, pali3_5b_812, pali3_5b_1064, pali3_tiny, vit:SIZE/PATCH[@RES], "
                                      "siglip:SIZE/PATCH[@RES], t5_small..t5_xl, mt5_xl, ul2_20b, flan_ul2",
                                      name));
}

inline std::string read_text_file(const std::string& path) {
    core::require_regular_file(path, "cannot read config");
    std::ifstream in(path, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    if (!in) throw format_error(core::describe("cannot read config", path, "a readable JSON file", "unreadable"));
    return ss.str();
}

// Elements in all of a checkpoint's tensors (from the headers; nothing is read or inflated).
inline std::size_t checkpoint_elements(const weights::checkpoint& ckpt) {
    using namespace models::footprint_detail;  // saturating: a hostile header gives 2^64 - 1, not a wrap
    std::size_t total = 0;
    for (const auto& t : ckpt.list()) {
        std::size_t n = 1;
        for (const auto d : t.shape) n = mul(n, d);
        total = add(total, n);
    }
    return total;
}

// Which config to use (empty: the checkpoint's own), and a resolution override.
struct config_request {
    std::string preset, file;
    std::size_t resolution = 0;  // 0: the config's; else the image side, position table resampled
};

struct found_config {
    models::any_config config;
    std::string source;  // where it came from, for reports
};

// Where find_config reports config.json keys it did not use (any_config::unknown_keys): nothing
// by default; the command line prints them as notes on stderr. Set once, before any thread runs.
inline std::function<void(const std::string&)>& config_notes() {
    static std::function<void(const std::string&)> sink;
    return sink;
}

// One note listing keys a file holds that pali3 did not use ("<what>: k1, k2 (<where_listed>)"),
// printable and cut at 20 names: the names come from the file.
inline void note_unused_keys(std::string_view what, const std::vector<std::string>& unknown, std::string_view where_listed) {
    if (unknown.empty() || !config_notes()) return;
    std::string keys;
    for (std::size_t i = 0; i < unknown.size() && i < 20; ++i) keys += (i ? ", " : "") + core::printable(unknown[i], 200);
    if (unknown.size() > 20) keys += " and " + std::to_string(unknown.size() - 20) + " more";
    config_notes()(std::string(what) + ": " + keys + " (" + std::string(where_listed) + ")");
}

// The config: the preset, else the file, else the checkpoint's "pali3.config" metadata, else a
// config.json beside it (HF). nullopt when none is found.
inline std::optional<found_config> find_config(const config_request& r, const weights::checkpoint* ckpt) {
    std::optional<found_config> out;
    if (!r.preset.empty()) {
        out = found_config{preset_config(r.preset), "--preset " + r.preset};
    } else if (!r.file.empty()) {
        const auto j = json::parse(read_text_file(r.file), r.file);
        out = found_config{j.find("model") ? models::config_from_json(j, r.file) : models::config_from_hf(j, 0, r.file), r.file};
    } else if (ckpt) {
        const auto meta = ckpt->metadata();
        if (const auto it = meta.find(std::string(models::config_metadata_key)); it != meta.end()) {
            out = found_config{models::config_from_string(it->second), "checkpoint metadata (pali3.config)"};
        } else {
            namespace fs = std::filesystem;
            const fs::path p(ckpt->path());
            const fs::path json_path = (fs::is_directory(p) ? p : p.parent_path()) / "config.json";
            if (fs::exists(json_path))
                out = found_config{models::config_from_hf(json::parse(read_text_file(json_path.string()), json_path.string()), 0,
                                                          json_path.string()),
                                   json_path.string()};
        }
    }
    if (out && r.resolution) {
        auto& v = out->config.kind == models::model_kind::pali3 ? out->config.pali.vision : out->config.vision;
        if (!v.posemb_grid) v.posemb_grid = v.grid();
        v.image = r.resolution;
        models::check(v);
        if (v.posemb_grid == v.grid()) v.posemb_grid = 0;
    }
    // A config that describes a bigger model than the file holds (depth 10^7 in a 2 MB file) is
    // refused here, before any caller allocates what it implies.
    if (out && ckpt) models::require_weights_fit(out->config, checkpoint_elements(*ckpt), out->source, ckpt->path());
    if (out) note_unused_keys("config keys pali3 does not know, not used", out->config.unknown_keys, "docs/models.md lists the keys it reads");
    return out;
}

// The config or an error saying where it was looked for.
inline found_config require_config(const config_request& r, const weights::checkpoint* ckpt, std::string_view what) {
    auto found = find_config(r, ckpt);
    if (!found)
        throw config_error(core::describe("no config for the model", ckpt ? ckpt->path() : std::string(what),
                                          "pali3.config metadata, config.json beside it, --config or --preset", "none"));
    return std::move(*found);
}

class stopwatch {
public:
    double seconds() const { return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0_).count(); }
    double ms() const { return seconds() * 1e3; }
    void reset() { t0_ = std::chrono::steady_clock::now(); }

private:
    std::chrono::steady_clock::time_point t0_ = std::chrono::steady_clock::now();
};

// Named stages in the order they ran, in milliseconds.
struct timings {
    std::vector<std::pair<std::string, double>> stages;
    void add(std::string name, double ms) { stages.emplace_back(std::move(name), ms); }
    void append(const timings& other) { stages.insert(stages.end(), other.stages.begin(), other.stages.end()); }
};

inline std::string human_bytes(double b) {
    return models::memory_size(b >= 1.8e19 ? models::footprint_detail::saturated : static_cast<std::size_t>(b > 0 ? b : 0));
}

inline double peak_rss_gb() {
    rusage u{};
    getrusage(RUSAGE_SELF, &u);
    return static_cast<double>(u.ru_maxrss) / (1024.0 * 1024.0);
}

}  // namespace pali3::pipeline
