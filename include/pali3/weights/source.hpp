// Weight sources: where a model's tensors come from. A source answers `contains(name)` and
// `get(name, expected_shape)` with a non-owning `tensor_data` (dtype, shape, bytes, and a
// keep-alive handle), so mapped checkpoints can be used without a copy. A `cursor` is the cheap
// prefix builder modules receive (`src.pp("encoder").pp(3)`), and `load<T>` turns a tensor
// into the storage a module wants (zero-copy when the dtype already matches).
// Every failure names the full tensor path, what was expected and what was found.
#pragma once

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "pali3/core/error.hpp"
#include "pali3/core/storage.hpp"
#include "pali3/core/tensor.hpp"

namespace pali3::weights {

enum class dtype { f32, bf16, f16 };

inline std::string_view dtype_name(dtype t) {
    switch (t) {
        case dtype::f32: return "F32";
        case dtype::bf16: return "BF16";
        case dtype::f16: return "F16";
    }
    return "?";
}

inline std::size_t dtype_size(dtype t) { return t == dtype::f32 ? 4 : 2; }

template <weight_storage T>
constexpr dtype dtype_of() {
    if constexpr (std::is_same_v<T, float>) return dtype::f32;
    else if constexpr (std::is_same_v<T, bf16>) return dtype::bf16;
    else return dtype::f16;
}

// A tensor a source hands out: row-major, contiguous. `owner` keeps `data` alive (a mapped
// file, a vector); it may be null when the source outlives every use.
struct tensor_data {
    dtype type = dtype::f32;
    shape_t shape;
    const void* data = nullptr;
    std::shared_ptr<const void> owner;

    std::size_t size() const { return shape_size(shape); }

    // Stored f32 / bf16 / f16 bytes: viewed in place when aligned for their type (`keep` owns
    // them), else copied once into an aligned buffer. For checkpoint readers.
    void set_stored(dtype stored, const std::uint8_t* bytes, std::size_t count, std::shared_ptr<const void> keep) {
        type = stored;
        if (reinterpret_cast<std::uintptr_t>(bytes) % (stored == dtype::f32 ? 4 : 2) == 0) {
            data = bytes;
            owner = std::move(keep);
        } else {
            auto aligned = std::make_shared<std::vector<float>>((count + 3) / 4);
            if (count) std::memcpy(aligned->data(), bytes, count);  // an empty tensor has no buffer
            data = aligned->data();
            owner = std::move(aligned);
        }
    }
    // n little-endian f64 values (any alignment), converted to an owned f32 copy.
    void set_from_f64(const std::uint8_t* bytes, std::size_t n) {
        auto out = std::make_shared<std::vector<float>>(n);
        for (std::size_t i = 0; i < n; ++i) {
            double v;
            std::memcpy(&v, bytes + 8 * i, 8);
            (*out)[i] = static_cast<float>(v);
        }
        type = dtype::f32;
        data = out->data();
        owner = std::move(out);
    }
};

// What a checkpoint reader reports about one stored tensor (for inspection and diffs):
// the file's dtype name (F32, BF16, I64...), shape and byte size.
struct tensor_info {
    std::string name;
    std::string dtype;
    shape_t shape;
    std::size_t bytes = 0;
};

// The concept every backend models (in-memory, random, mapped, safetensors, npz).
template <class S>
concept weight_source = requires(const S& s, const std::string& name, const shape_t& shape) {
    { s.contains(name) } -> std::convertible_to<bool>;
    { s.get(name, shape) } -> std::same_as<tensor_data>;
};

// Throws unless `t` has the expected shape: the one shape check of every backend.
inline void check_shape(const tensor_data& t, const std::string& name, const shape_t& expected) {
    if (t.shape != expected)
        throw shape_error(core::describe("weight has the wrong shape", name, shape_string(expected),
                                         shape_string(t.shape)));
}

// Joined names: "encoder" + "3" + "attn" -> "encoder.3.attn".
inline std::string join_name(std::string_view prefix, std::string_view name) {
    if (prefix.empty()) return std::string(name);
    if (name.empty()) return std::string(prefix);
    std::string out;
    out.reserve(prefix.size() + 1 + name.size());
    out.append(prefix).append(".").append(name);
    return out;
}

// Storage a module owns or borrows: a view of T values plus whatever keeps them alive.
template <weight_storage T>
struct param {
    std::shared_ptr<const void> owner;
    const T* data = nullptr;
    shape_t shape;

    std::size_t size() const { return shape_size(shape); }
    std::span<const T> values() const { return {data, size()}; }
};

// Converts (or borrows) `t` as storage T.
template <weight_storage T>
param<T> to_param(tensor_data t) {
    param<T> p;
    p.shape = std::move(t.shape);
    const std::size_t n = shape_size(p.shape);
    if (t.type == dtype_of<T>()) {
        p.data = static_cast<const T*>(t.data);
        p.owner = std::move(t.owner);
        return p;
    }
    auto buf = std::make_shared<std::vector<T>>(n);
    for (std::size_t i = 0; i < n; ++i) {
        float v = 0.f;
        switch (t.type) {
            case dtype::f32: v = static_cast<const float*>(t.data)[i]; break;
            case dtype::bf16: v = to_float(static_cast<const bf16*>(t.data)[i]); break;
            case dtype::f16: v = to_float(static_cast<const f16*>(t.data)[i]); break;
        }
        if constexpr (std::is_same_v<T, float>) (*buf)[i] = v;
        else if constexpr (std::is_same_v<T, bf16>) (*buf)[i] = to_bf16(v);
        else (*buf)[i] = to_f16(v);
    }
    p.data = buf->data();
    p.owner = std::move(buf);
    return p;
}

// A source plus a name prefix. Modules are built from a cursor and ask for their tensors by
// their own short names; errors carry the full path.
template <weight_source S>
class cursor {
public:
    explicit cursor(const S& source, std::string prefix = {}) : source_(&source), prefix_(std::move(prefix)) {}

    cursor pp(std::string_view name) const { return cursor(*source_, join_name(prefix_, name)); }
    cursor pp(std::size_t index) const { return pp(std::to_string(index)); }

    const std::string& prefix() const { return prefix_; }
    std::string full_name(std::string_view name) const { return join_name(prefix_, name); }
    bool contains(std::string_view name) const { return source_->contains(full_name(name)); }

    template <weight_storage T>
    param<T> get(std::string_view name, const shape_t& expected) const {
        const std::string full = full_name(name);
        tensor_data t = source_->get(full, expected);
        check_shape(t, full, expected);
        return to_param<T>(std::move(t));
    }

    const S& source() const { return *source_; }

private:
    const S* source_;
    std::string prefix_;
};

}  // namespace pali3::weights
