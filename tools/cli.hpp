// Shared pieces of the `pali3` command line: flags, presets by name, finding a checkpoint's config,
// and opening it with the right name map.
#pragma once

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include <pali3/core/error.hpp>
#include <pali3/core/json.hpp>
#include <pali3/layers/module.hpp>
#include <pali3/models/config_io.hpp>
#include <pali3/weights/checkpoint.hpp>

namespace pali3::cli {

// --key value / --flag arguments after the subcommand; positional arguments kept in order.
class args {
public:
    args(int argc, char** argv, int first, const std::vector<std::string>& booleans = {}) {
        for (int i = first; i < argc; ++i) {
            std::string a = argv[i];
            if (a.rfind("--", 0) == 0) {
                std::string key = a.substr(2), value;
                if (const auto eq = key.find('='); eq != std::string::npos) {
                    value = key.substr(eq + 1);
                    key.resize(eq);
                } else if (std::find(booleans.begin(), booleans.end(), key) != booleans.end()) {
                    value = "1";
                } else {
                    if (i + 1 >= argc)
                        throw value_error(core::describe("flag without a value", "--" + key, "--" + key + " VALUE", "end of arguments"));
                    value = argv[++i];
                }
                flags_[key] = value;
            } else {
                positional_.push_back(std::move(a));
            }
        }
    }

    bool has(const std::string& key) const {
        used_.push_back(key);
        return flags_.count(key) != 0;
    }
    std::string get(const std::string& key, const std::string& fallback = "") const {
        const auto it = flags_.find(key);
        used_.push_back(key);
        return it == flags_.end() ? fallback : it->second;
    }
    std::size_t get_size(const std::string& key, std::size_t fallback) const {
        if (!has(key)) return fallback;
        const std::string v = get(key);
        std::size_t pos = 0;
        unsigned long long n = 0;
        try {
            n = std::stoull(v, &pos);
        } catch (const std::exception&) {
            pos = 0;
        }
        if (pos != v.size() || v.empty() || v[0] == '-')
            throw value_error(core::describe("not a non-negative integer", "--" + key, "digits", "\"" + v + "\""));
        return static_cast<std::size_t>(n);
    }
    double get_double(const std::string& key, double fallback) const {
        if (!has(key)) return fallback;
        const std::string v = get(key);
        try {
            std::size_t pos = 0;
            const double d = std::stod(v, &pos);
            if (pos == v.size()) return d;
        } catch (const std::exception&) {
        }
        throw value_error(core::describe("not a number", "--" + key, "a number", "\"" + v + "\""));
    }
    const std::vector<std::string>& positional() const { return positional_; }

    // Flags given but never read: a typo should not be silently ignored.
    void check_all_used() const {
        for (const auto& [k, v] : flags_)
            if (std::find(used_.begin(), used_.end(), k) == used_.end())
                throw value_error(core::describe("unknown flag for this command", "--" + k, "a documented flag (see --help)", "--" + k));
    }

private:
    std::map<std::string, std::string> flags_;
    std::vector<std::string> positional_;
    mutable std::vector<std::string> used_;
};

class stopwatch {
public:
    double seconds() const { return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0_).count(); }
    double ms() const { return seconds() * 1e3; }
    void reset() { t0_ = std::chrono::steady_clock::now(); }

private:
    std::chrono::steady_clock::time_point t0_ = std::chrono::steady_clock::now();
};

inline models::any_config preset(const std::string& name) {
    using namespace models;
    any_config c;
    const auto pali = [&](const pali3_config& p) {
        c.kind = model_kind::pali3;
        c.pali = p;
        return c;
    };
    if (name == "pali3_5b") return pali(presets::pali3_5b::value);
    if (name == "pali3_5b_812") return pali(presets::pali3_5b_812::value);
    if (name == "pali3_5b_1064") return pali(presets::pali3_5b_1064::value);
    if (name == "pali3_tiny") return pali(presets::pali3_tiny::value);
    if (name.rfind("vit:", 0) == 0) {  // vit:B/16 or vit:So400m/14@384
        c.kind = model_kind::vit;
        std::string v = name.substr(4);
        std::size_t image = 224;
        if (const auto at = v.find('@'); at != std::string::npos) {
            image = std::stoul(v.substr(at + 1));
            v.resize(at);
        }
        c.vision = vit_variant(v, image);
        c.vision.map_head = true;
        return c;
    }
    if (name.rfind("siglip:", 0) == 0) {  // siglip:B/16[@RES]: both towers, text as big_vision's "same size"
        any_config v = preset("vit:" + name.substr(7));
        v.kind = model_kind::siglip;
        const auto& w = v.vision;
        v.siglip_text = {32000, w.width, w.depth, w.mlp, w.heads, 64, 0};
        check(siglip_config{v.vision, v.siglip_text});
        return v;
    }
    const std::pair<const char*, t5_config> t5s[] = {{"t5_small", t5_sizes::small()}, {"t5_base", t5_sizes::base()},
                                                     {"t5_large", t5_sizes::large()}, {"t5_xl", t5_sizes::xl()},
                                                     {"mt5_xl", t5_sizes::xl(t5_sizes::mt5_vocab)}};
    for (const auto& [n, t] : t5s)
        if (name == n) {
            c.kind = model_kind::t5;
            c.text = t;
            return c;
        }
    throw config_error(core::describe("unknown preset", name,
                                      "pali3_5b, pali3_5b_812, pali3_5b_1064, pali3_tiny, vit:SIZE/PATCH[@RES], siglip:SIZE/PATCH[@RES], t5_small..t5_xl, mt5_xl",
                                      name));
}

inline std::string kind_name(models::model_kind k) {
    switch (k) {
        case models::model_kind::vit: return "vit";
        case models::model_kind::t5: return "t5";
        case models::model_kind::pali3: return "pali3";
        case models::model_kind::siglip_text: return "siglip_text";
        case models::model_kind::siglip: return "siglip";
    }
    return "?";
}

// Where the config came from, for the report.
struct found_config {
    models::any_config config;
    std::string source;
};

// The config: --preset, else the checkpoint's "pali3.config" metadata, else a config.json beside
// it (HF). --resolution overrides the image size (the position table is resampled).
inline std::optional<found_config> find_config(const args& a, const weights::checkpoint* ckpt) {
    std::optional<found_config> out;
    if (a.has("preset")) {
        out = found_config{preset(a.get("preset")), "--preset " + a.get("preset")};
    } else if (a.has("config")) {
        std::ifstream in(a.get("config"));
        std::stringstream ss;
        ss << in.rdbuf();
        if (!in) throw format_error(core::describe("cannot read config", a.get("config"), "a JSON file", "unreadable"));
        const auto j = json::parse(ss.str(), a.get("config"));
        out = found_config{j.find("model") ? models::config_from_json(j) : models::config_from_hf(j), a.get("config")};
    } else if (ckpt) {
        const auto meta = ckpt->metadata();
        if (const auto it = meta.find(std::string(models::config_metadata_key)); it != meta.end()) {
            out = found_config{models::config_from_string(it->second), "checkpoint metadata (pali3.config)"};
        } else {
            namespace fs = std::filesystem;
            fs::path p(ckpt->path());
            const fs::path dir = fs::is_directory(p) ? p : p.parent_path();
            if (fs::exists(dir / "config.json")) {
                std::ifstream in(dir / "config.json");
                std::stringstream ss;
                ss << in.rdbuf();
                out = found_config{models::config_from_hf(json::parse(ss.str(), (dir / "config.json").string())),
                                   (dir / "config.json").string()};
            }
        }
    }
    if (out && a.has("resolution")) {
        const std::size_t r = a.get_size("resolution", 0);
        auto& v = out->config.kind == models::model_kind::pali3 ? out->config.pali.vision : out->config.vision;
        if (!v.posemb_grid) v.posemb_grid = v.grid();
        v.image = r;
        models::check(v);
        if (v.posemb_grid == v.grid()) v.posemb_grid = 0;
    }
    return out;
}

inline std::string human_bytes(double b) {
    const char* units[] = {"B", "KB", "MB", "GB", "TB"};
    int u = 0;
    while (b >= 1000 && u < 4) {
        b /= 1000;
        ++u;
    }
    char buf[32];
    std::snprintf(buf, sizeof buf, u ? "%.2f %s" : "%.0f %s", b, units[u]);
    return buf;
}

}  // namespace pali3::cli
