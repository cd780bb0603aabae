// Any checkpoint file, chosen by what the path is: a `.safetensors` file, a sharded
// `*.index.json`, a directory holding either, or a `.npz`. One weight source type for tools that
// take whatever the user has; it also reports the naming it uses and the name map for it.
#pragma once

#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "pali3/core/error.hpp"
#include "pali3/weights/name_maps.hpp"
#include "pali3/weights/npz.hpp"
#include "pali3/weights/safetensors.hpp"

namespace pali3::weights {

class checkpoint {
public:
    static checkpoint open(const std::string& path) {
        namespace fs = std::filesystem;
        checkpoint c;
        c.path_ = path;
        const std::string ext = fs::path(path).extension().string();
        if (ext == ".npz") c.src_ = npz_source::open(path);
        else if (ext == ".safetensors" || ext == ".json" || fs::is_directory(path)) c.src_ = safetensors_source::open(path);
        else
            throw format_error(core::describe("unknown checkpoint type", path, ".safetensors, .index.json, a directory or .npz",
                                              ext.empty() ? std::string("no extension") : ext));
        return c;
    }

    bool contains(const std::string& name) const {
        return std::visit([&](const auto& s) { return s.contains(name); }, src_);
    }
    tensor_data get(const std::string& name, const shape_t& shape) const {
        return std::visit([&](const auto& s) { return s.get(name, shape); }, src_);
    }
    tensor_data get_raw(const std::string& name) const {
        return std::visit([&](const auto& s) { return s.get_raw(name); }, src_);
    }
    // An int8 weight as stored (safetensors only; .npz holds no int8 weights), else nullopt.
    std::optional<int8_weight> get_int8(const std::string& name, const shape_t& shape) const {
        if (const auto* s = std::get_if<safetensors_source>(&src_)) return s->get_int8(name, shape);
        return std::nullopt;
    }
    std::vector<std::string> names() const {
        return std::visit([](const auto& s) { return s.names(); }, src_);
    }
    std::vector<tensor_info> list() const {
        return std::visit([](const auto& s) { return s.list(); }, src_);
    }
    std::map<std::string, std::string> metadata() const {
        if (const auto* s = std::get_if<safetensors_source>(&src_)) return s->metadata();
        return {};
    }
    const std::string& path() const { return path_; }
    std::string format() const { return std::holds_alternative<npz_source>(src_) ? "npz" : "safetensors"; }

private:
    checkpoint() : src_(safetensors_source::from_buffer(buffer_from(std::vector<std::uint8_t>{2, 0, 0, 0, 0, 0, 0, 0, '{', '}'}))) {}

    std::string path_;
    std::variant<safetensors_source, npz_source> src_;
};

static_assert(raw_weight_source<checkpoint>);

// The rules that read a checkpoint of naming `n` as a model of `kind` ("vit", "t5", "pali3",
// "siglip_text", "siglip"); our own naming maps every name to itself.
inline std::vector<map_rule> rules_for(naming n, std::string_view kind) {
    switch (n) {
        case naming::ours:
        case naming::unknown: return {{"{}", "{}"}};
        case naming::hf_siglip:
            return kind == "siglip_text" ? name_maps::hf_siglip_text() : kind == "siglip" ? name_maps::hf_siglip() : name_maps::hf_siglip_vision();
        case naming::hf_t5: return name_maps::hf_t5();
        case naming::hf_pali3: return name_maps::hf_pali3();
        case naming::big_vision:
            return kind == "pali3"         ? name_maps::big_vision_pali3()
                   : kind == "siglip"      ? name_maps::big_vision_siglip()
                   : kind == "siglip_text" ? name_maps::big_vision_text()
                                           : name_maps::big_vision_vit();
    }
    return {{"{}", "{}"}};
}

}  // namespace pali3::weights
