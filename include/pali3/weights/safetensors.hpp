// safetensors checkpoints: reader (memory-mapped, zero copy, single file or sharded through
// `model.safetensors.index.json`) and writer.
//
// Layout: u64 little-endian header length N, N bytes of JSON
//   {"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, ..., "__metadata__": {..}}
// then the data buffer; offsets are relative to the buffer, row-major, no strides.
// Everything in the header is validated before any tensor is handed out: header bound (100 MB and
// the file size), UTF-8 and JSON syntax, duplicate names, known dtypes, begin <= end <= buffer size,
// end - begin == prod(shape) * dtype size (overflow-checked), no two ranges overlapping.
// Tensors of dtypes the models do not use (I64 position ids, BOOL masks...) are listed but only
// F32/BF16/F16 (zero copy) and F64 (converted to F32) can be loaded as weights.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "pali3/core/error.hpp"
#include "pali3/core/json.hpp"
#include "pali3/core/storage.hpp"
#include "pali3/weights/file.hpp"
#include "pali3/weights/memory_source.hpp"
#include "pali3/weights/source.hpp"

namespace pali3::weights {

namespace detail {

inline constexpr std::uint64_t max_header_bytes = 100'000'000;

// Element size of a safetensors dtype name; 0 when unknown.
inline std::size_t element_size(std::string_view d) {
    if (d == "F64" || d == "I64" || d == "U64") return 8;
    if (d == "F32" || d == "I32" || d == "U32") return 4;
    if (d == "F16" || d == "BF16" || d == "I16" || d == "U16") return 2;
    if (d == "I8" || d == "U8" || d == "BOOL" || d == "F8_E4M3" || d == "F8_E5M2") return 1;
    return 0;
}

struct entry {
    std::string dtype;
    shape_t shape;
    std::uint64_t begin = 0, end = 0;
};

struct file {
    byte_buffer bytes;
    std::size_t data_start = 0;  // 8 + N
    std::map<std::string, entry> entries;
    std::map<std::string, std::string> metadata;
};

inline file parse(byte_buffer bytes) {
    file f;
    const std::string& where = bytes.name;
    if (bytes.size < 8)
        throw format_error(core::describe("truncated safetensors file", where, "at least 8 bytes (header length)",
                                          std::to_string(bytes.size) + " bytes"));
    const std::uint64_t n = load_le(bytes.data, 8);
    if (n > max_header_bytes)
        throw format_error(core::describe("safetensors header too large", where, "<= 100000000 bytes", n));
    if (n > bytes.size - 8)
        throw format_error(core::describe("safetensors header runs past the end of the file", where,
                                          "header of <= " + std::to_string(bytes.size - 8) + " bytes", n));
    f.data_start = 8 + static_cast<std::size_t>(n);
    const std::size_t buffer_size = bytes.size - f.data_start;
    const json::value header = json::parse(bytes.view(8, static_cast<std::size_t>(n)), where + " header");
    if (!header.is_object())
        throw format_error(core::describe("safetensors header is not a JSON object", where, "an object",
                                          json::value::kind_name(header.type())));
    for (const auto& [name, v] : header.members()) {
        if (name == "__metadata__") {
            for (const auto& [k, mv] : v.members(where + " __metadata__"))
                f.metadata[k] = mv.as_string(where + " __metadata__." + k);
            continue;
        }
        const std::string at = where + ": " + name;
        if (name.empty()) throw format_error(core::describe("empty tensor name", where, "a name", "\"\""));
        if (!v.is_object())
            throw format_error(core::describe("tensor entry is not an object", at, "an object", json::value::kind_name(v.type())));
        entry e;
        e.dtype = v.at("dtype", at).as_string(at + " dtype");
        const std::size_t esize = element_size(e.dtype);
        if (esize == 0)
            throw format_error(core::describe("unknown dtype", at, "one of F64 F32 F16 BF16 I64 I32 I16 I8 U8 BOOL ...",
                                              "\"" + e.dtype + "\""));
        for (const auto& d : v.at("shape", at).items(at + " shape")) {
            const std::uint64_t dim = d.as_u64(at + " shape");
            if (dim > (std::uint64_t{1} << 48))
                throw format_error(core::describe("absurd dimension", at, "<= 2^48", dim));
            e.shape.push_back(static_cast<std::size_t>(dim));
        }
        const auto& offs = v.at("data_offsets", at).items(at + " data_offsets");
        if (offs.size() != 2)
            throw format_error(core::describe("data_offsets must have two entries", at, "[begin, end]", offs.size()));
        e.begin = offs[0].as_u64(at + " data_offsets");
        e.end = offs[1].as_u64(at + " data_offsets");
        if (e.begin > e.end)
            throw format_error(core::describe("data_offsets out of order", at, "begin <= end",
                                              std::to_string(e.begin) + " > " + std::to_string(e.end)));
        if (e.end > buffer_size)
            throw format_error(core::describe("tensor data runs past the end of the file", at,
                                              "end <= " + std::to_string(buffer_size), e.end));
        std::size_t nbytes = 0;
        if (!checked_product(e.shape, esize, nbytes) || nbytes != e.end - e.begin)
            throw format_error(core::describe("tensor byte size does not match its shape and dtype", at,
                                              shape_string(e.shape) + " x " + std::to_string(esize) + " bytes",
                                              std::to_string(e.end - e.begin) + " bytes"));
        f.entries.emplace(name, std::move(e));
    }
    // No two tensors may share bytes.
    std::vector<std::pair<const std::string*, const entry*>> order;
    for (const auto& [name, e] : f.entries) order.emplace_back(&name, &e);
    std::sort(order.begin(), order.end(), [](const auto& a, const auto& b) {
        return a.second->begin != b.second->begin ? a.second->begin < b.second->begin : a.second->end < b.second->end;
    });
    std::uint64_t max_end = 0;
    const std::string* max_name = nullptr;
    for (const auto& [name, e] : order) {
        if (e->end == e->begin) continue;  // empty tensors own no bytes
        if (max_name && e->begin < max_end)
            throw format_error(core::describe("tensor data ranges overlap", where + ": " + *name,
                                              "begin >= " + std::to_string(max_end) + " (end of " + *max_name + ")",
                                              e->begin));
        max_end = e->end;
        max_name = name;
    }
    f.bytes = std::move(bytes);
    return f;
}

}  // namespace detail

class safetensors_source {
public:
    // Opens a `.safetensors` file, a `*.index.json` of shards, or a directory holding either
    // `model.safetensors` or `model.safetensors.index.json`.
    static safetensors_source open(const std::string& path) {
        namespace fs = std::filesystem;
        fs::path p(path);
        if (fs::is_directory(p)) {
            if (fs::exists(p / "model.safetensors.index.json")) p /= "model.safetensors.index.json";
            else if (fs::exists(p / "model.safetensors")) p /= "model.safetensors";
            else
                throw format_error(core::describe("no safetensors checkpoint in directory", path,
                                                  "model.safetensors or model.safetensors.index.json", "neither"));
        }
        const std::string s = p.string();
        if (s.size() >= 11 && s.compare(s.size() - 11, 11, ".index.json") == 0) return open_index(s);
        safetensors_source src;
        src.add_shard(map_file(s));
        return src;
    }

    // Reads one file already in memory (tests, fuzzing).
    static safetensors_source from_buffer(byte_buffer bytes) {
        safetensors_source src;
        src.add_shard(std::move(bytes));
        return src;
    }

    bool contains(const std::string& name) const { return index_.count(name) != 0; }

    tensor_data get(const std::string& name, const shape_t& expected) const {
        const auto it = index_.find(name);
        if (it == index_.end())
            throw format_error(core::describe("missing tensor", name, "a tensor of shape " + shape_string(expected),
                                              "no such name in " + describe_files()));
        tensor_data probe;
        probe.shape = it->second.second->shape;
        check_shape(probe, name, expected);
        return get_raw(name);
    }

    // The tensor as stored (F64 converted to F32), whatever its shape.
    tensor_data get_raw(const std::string& name) const {
        const auto it = index_.find(name);
        if (it == index_.end())
            throw format_error(core::describe("missing tensor", name, "a tensor", "no such name in " + describe_files()));
        const auto& f = *shards_[it->second.first];
        const auto& e = *it->second.second;
        tensor_data t;
        t.shape = e.shape;
        const std::uint8_t* p = f.bytes.data + f.data_start + e.begin;
        const std::size_t n = shape_size(e.shape);
        if (e.dtype == "F32" || e.dtype == "BF16" || e.dtype == "F16") {
            t.set_stored(e.dtype == "F32" ? dtype::f32 : e.dtype == "BF16" ? dtype::bf16 : dtype::f16, p, e.end - e.begin,
                         f.bytes.owner);
            return t;
        }
        if (e.dtype == "F64") {
            t.set_from_f64(p, n);
            return t;
        }
        if (e.dtype == "I8") return dequantize(*get_int8(name, e.shape));
        throw format_error(core::describe("tensor dtype cannot be loaded as a weight", name, "F32, BF16, F16, F64 or I8 (with its _scale)",
                                          e.dtype));
    }

    // The int8 weight `name` as stored (source.hpp's int8_weight: I8 values and the F32/BF16/F16
    // tensor `name_scale`), or nullopt when `name` is not stored as I8. Values without a scale
    // tensor, or a scale that does not fit them, are a format_error; the group of (n, groups) scales
    // is the metadata's "int8_group" when the file states one.
    std::optional<int8_weight> get_int8(const std::string& name, const shape_t& expected) const {
        const auto it = index_.find(name);
        if (it == index_.end() || it->second.second->dtype != "I8") return std::nullopt;
        const std::string scale_name = name + std::string(int8_scale_suffix);
        if (!index_.count(scale_name))
            throw format_error(core::describe("int8 weight without its scale tensor", name, "a tensor " + scale_name, "none"));
        const auto& f = *shards_[it->second.first];
        const auto& e = *it->second.second;
        tensor_data values;
        values.type = dtype::i8;
        values.shape = e.shape;
        values.data = f.bytes.data + f.data_start + e.begin;
        values.owner = f.bytes.owner;
        if (values.shape != expected)
            throw shape_error(core::describe("weight has the wrong shape", name, shape_string(expected), shape_string(values.shape)));
        return make_int8_weight(values, get_raw(scale_name), stated_int8_group(), name);
    }

    std::vector<std::string> names() const {
        std::vector<std::string> out;
        for (const auto& [n, _] : index_) out.push_back(n);
        return out;
    }

    std::vector<tensor_info> list() const {
        std::vector<tensor_info> out;
        for (const auto& [n, loc] : index_)
            out.push_back({n, loc.second->dtype, loc.second->shape, static_cast<std::size_t>(loc.second->end - loc.second->begin)});
        return out;
    }

    // `__metadata__` of every shard and the index's "metadata" (string values), merged.
    const std::map<std::string, std::string>& metadata() const { return metadata_; }
    std::size_t shard_count() const { return shards_.size(); }

    // The group size of int8 scales the metadata states ("int8_group"), 0 when none.
    std::size_t stated_int8_group() const {
        const auto it = metadata_.find("int8_group");
        if (it == metadata_.end()) return 0;
        std::size_t g = 0;
        for (const char c : it->second) {
            if (c < '0' || c > '9' || g > (std::size_t{1} << 32))
                throw format_error(core::describe("int8_group metadata", describe_files(), "a decimal number", it->second));
            g = g * 10 + static_cast<std::size_t>(c - '0');
        }
        return g;
    }

private:
    static safetensors_source open_index(const std::string& path) {
        namespace fs = std::filesystem;
        const byte_buffer idx = map_file(path);
        const json::value root = json::parse(idx.view(0, idx.size), path);
        const json::value& map = root.at("weight_map", path);
        safetensors_source src;
        if (const json::value* meta = root.find("metadata"); meta && meta->is_object())
            for (const auto& [k, v] : meta->members())
                if (v.is_string()) src.metadata_[k] = v.as_string();
        std::map<std::string, std::size_t> shard_of_file;
        std::vector<std::pair<std::string, std::string>> wanted;
        for (const auto& [name, file] : map.members(path + " weight_map")) {
            const std::string& rel = file.as_string(path + " weight_map." + name);
            if (rel.empty() || rel.find('/') != std::string::npos || rel.find('\\') != std::string::npos || rel == "." ||
                rel == "..")
                throw format_error(core::describe("shard name must be a file beside the index", path + " weight_map." + name,
                                                  "a plain file name", "\"" + rel + "\""));
            if (!shard_of_file.count(rel)) {
                shard_of_file[rel] = src.shards_.size();
                src.add_shard(map_file((fs::path(path).parent_path() / rel).string()));
            }
            wanted.emplace_back(name, rel);
        }
        for (const auto& [name, rel] : wanted) {
            const auto it = src.index_.find(name);
            if (it == src.index_.end() || it->second.first != shard_of_file[rel])
                throw format_error(core::describe("index names a tensor its shard does not hold", path + ": " + name,
                                                  "a tensor in " + rel, "none there"));
        }
        return src;
    }

    void add_shard(byte_buffer bytes) {
        shards_.push_back(std::make_shared<const detail::file>(detail::parse(std::move(bytes))));
        const std::size_t s = shards_.size() - 1;
        for (const auto& [k, v] : shards_[s]->metadata) metadata_[k] = v;
        for (const auto& [name, e] : shards_[s]->entries) {
            if (index_.count(name))
                throw format_error(core::describe("tensor appears in two shards", name, "one shard",
                                                  shards_[index_.at(name).first]->bytes.name + " and " + shards_[s]->bytes.name));
            index_.emplace(name, std::make_pair(s, &e));
        }
    }

    std::string describe_files() const {
        if (shards_.size() == 1) return shards_[0]->bytes.name;
        return std::to_string(shards_.size()) + " shards";
    }

    std::vector<std::shared_ptr<const detail::file>> shards_;
    std::map<std::string, std::pair<std::size_t, const detail::entry*>> index_;
    std::map<std::string, std::string> metadata_;
};

static_assert(weight_source<safetensors_source>);

// Serialises tensors (in name order) and string metadata as one safetensors file. The header is
// padded with spaces to a multiple of 8 bytes so every tensor starts 8-byte aligned.
inline std::string to_safetensors(const std::map<std::string, tensor_data>& tensors,
                                  const std::map<std::string, std::string>& metadata = {}) {
    json::value header = json::value::make_object();
    if (!metadata.empty()) {
        json::value meta = json::value::make_object();
        for (const auto& [k, v] : metadata) meta.set(k, json::string(v));
        header.set("__metadata__", std::move(meta));
    }
    std::uint64_t offset = 0;
    for (const auto& [name, t] : tensors) {
        json::value e = json::value::make_object();
        e.set("dtype", json::string(std::string(dtype_name(t.type))));
        json::value shape = json::value::make_array();
        for (const auto d : t.shape) shape.push(json::number(static_cast<std::uint64_t>(d)));
        e.set("shape", std::move(shape));
        const std::uint64_t bytes = t.size() * dtype_size(t.type);
        json::value offs = json::value::make_array();
        offs.push(json::number(offset));
        offs.push(json::number(offset + bytes));
        e.set("data_offsets", std::move(offs));
        header.set(name, std::move(e));
        offset += bytes;
    }
    std::string text = json::dump(header);
    while ((8 + text.size()) % 8 != 0) text.push_back(' ');
    std::string out;
    out.reserve(8 + text.size() + offset);
    store_le(out, text.size(), 8);
    out += text;
    for (const auto& [name, t] : tensors)
        out.append(static_cast<const char*>(t.data), t.size() * dtype_size(t.type));
    return out;
}

// Writes every tensor of a memory source (e.g. filled by layers::save) to `path`.
inline void write_safetensors(const std::string& path, const memory_source& src,
                              const std::map<std::string, std::string>& metadata = {}) {
    std::map<std::string, tensor_data> tensors;
    for (const auto& name : src.names()) tensors.emplace(name, *src.find(name));
    write_file(path, to_safetensors(tensors, metadata));
}

// Writes a sharded checkpoint: shards of at most `max_shard_bytes` named
// `model-0000i-of-0000n.safetensors` plus `model.safetensors.index.json` in `dir`.
inline void write_safetensors_sharded(const std::string& dir, const memory_source& src, std::size_t max_shard_bytes,
                                      const std::map<std::string, std::string>& metadata = {}) {
    std::vector<std::map<std::string, tensor_data>> shards(1);
    std::size_t used = 0;
    for (const auto& name : src.names()) {
        const tensor_data& t = *src.find(name);
        const std::size_t b = t.size() * dtype_size(t.type);
        if (used > 0 && used + b > max_shard_bytes) {
            shards.emplace_back();
            used = 0;
        }
        shards.back().emplace(name, t);
        used += b;
    }
    json::value map = json::value::make_object();
    const auto shard_name = [&](std::size_t i) {
        char buf[64];
        std::snprintf(buf, sizeof buf, "model-%05zu-of-%05zu.safetensors", i + 1, shards.size());
        return std::string(buf);
    };
    for (std::size_t i = 0; i < shards.size(); ++i) {
        write_file((std::filesystem::path(dir) / shard_name(i)).string(), to_safetensors(shards[i], metadata));
        for (const auto& [name, _] : shards[i]) map.set(name, json::string(shard_name(i)));
    }
    json::value root = json::value::make_object();
    json::value meta = json::value::make_object();
    for (const auto& [k, v] : metadata) meta.set(k, json::string(v));
    root.set("metadata", std::move(meta));
    root.set("weight_map", std::move(map));
    write_file((std::filesystem::path(dir) / "model.safetensors.index.json").string(), json::dump(root));
}

}  // namespace pali3::weights
