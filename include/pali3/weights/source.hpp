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
#include <cmath>
#include <cstring>
#include <limits>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "pali3/core/error.hpp"
#include "pali3/core/storage.hpp"
#include "pali3/core/tensor.hpp"

namespace pali3::weights {

// i8: the values of an int8 weight, which comes with an f32 scale tensor (int8_weight below);
// never a weight on its own.
enum class dtype { f32, bf16, f16, i8 };

inline std::string_view dtype_name(dtype t) {
    switch (t) {
        case dtype::f32: return "F32";
        case dtype::bf16: return "BF16";
        case dtype::f16: return "F16";
        case dtype::i8: return "I8";
    }
    return "?";
}

inline std::size_t dtype_size(dtype t) { return t == dtype::f32 ? 4 : t == dtype::i8 ? 1 : 2; }

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
        if (reinterpret_cast<std::uintptr_t>(bytes) % dtype_size(stored) == 0) {
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
    if (t.type == dtype::i8)  // sources dequantise int8 weights with their scales; bare values have no meaning
        throw format_error(core::describe("int8 values without their scale read as a weight", "weights::to_param",
                                          "F32, BF16 or F16 (or I8 with a _scale tensor)", "I8"));
    auto buf = std::make_shared<std::vector<T>>(n);
    for (std::size_t i = 0; i < n; ++i) {
        float v = 0.f;
        switch (t.type) {
            case dtype::f32: v = static_cast<const float*>(t.data)[i]; break;
            case dtype::bf16: v = to_float(static_cast<const bf16*>(t.data)[i]); break;
            case dtype::f16: v = to_float(static_cast<const f16*>(t.data)[i]); break;
            case dtype::i8: break;
        }
        if constexpr (std::is_same_v<T, float>) (*buf)[i] = v;
        else if constexpr (std::is_same_v<T, bf16>) (*buf)[i] = to_bf16(v);
        else (*buf)[i] = to_f16(v);
    }
    p.data = buf->data();
    p.owner = std::move(buf);
    return p;
}

// An int8 weight as stored (issue 25's checkpoint form): values `name` (I8, (n, k), the layout of
// a PyTorch Linear weight) and scales `name + "_scale"` (F32, BF16 or F16; (n), (n, 1) for one
// scale per output row, or (n, groups) for a scale per `group` values along k):
// w[j][i] = scale[j][i / group] * q[j][i]. Readers hand it out as is (int8_source below) for
// int8 inference, and dequantised to f32 for everything else.
inline constexpr std::string_view int8_scale_suffix = "_scale";

struct int8_weight {
    shape_t shape;                          // (n, k)
    const std::int8_t* values = nullptr;    // n k, row-major
    std::vector<float> scales;              // n x groups, row-major
    std::size_t group = 0;                  // 0: one scale per row
    std::shared_ptr<const void> owner;      // keeps `values` alive
};

// The group size the scales' shape stands for, for int8 values of shape (n, k). (n) or (n, 1):
// 0 (a scale per row). (n, G): `stated` (the checkpoint's "int8_group" metadata) when given, else
// the smallest multiple of 32 that makes G groups; either way G must equal ceil(k / group).
inline std::size_t int8_group_of(const shape_t& values, const shape_t& scales, std::size_t stated, std::string_view where) {
    const auto bad = [&](const std::string& expected) {
        return format_error(core::describe("int8 scale tensor does not fit its values", where, expected, shape_string(scales)));
    };
    if (values.size() != 2 || values[0] == 0 || values[1] == 0)
        throw format_error(core::describe("int8 weight values", where, "a non-empty (n, k) matrix", shape_string(values)));
    const std::size_t n = values[0], k = values[1];
    const std::string per_row = "(" + std::to_string(n) + "), (" + std::to_string(n) + ", 1) or (" + std::to_string(n) + ", groups)";
    if (scales.empty() || scales.size() > 2 || scales[0] != n) throw bad(per_row);
    const std::size_t g = scales.size() == 2 ? scales[1] : 1;
    if (g == 0) throw bad(per_row);
    if (g == 1) return 0;
    std::size_t group = stated;
    if (group == 0) {
        group = (k + g - 1) / g;
        group = (group + 31) / 32 * 32;
    }
    if (group % 32 != 0 || (k + group - 1) / group != g)
        throw bad("(" + std::to_string(n) + ", ceil(" + std::to_string(k) + " / group)) for a group that is a multiple of 32" +
                  (stated ? " (the metadata says " + std::to_string(stated) + ")" : std::string()));
    return group;
}

// int8 values and their scale tensor (any float dtype) as an int8_weight; `where` names the values.
inline int8_weight make_int8_weight(const tensor_data& values, const tensor_data& scales, std::size_t stated_group,
                                    std::string_view where) {
    if (values.type != dtype::i8)
        throw format_error(core::describe("int8 weight values", where, "I8", dtype_name(values.type)));
    int8_weight w;
    w.group = int8_group_of(values.shape, scales.shape, stated_group, where);
    w.shape = values.shape;
    w.values = static_cast<const std::int8_t*>(values.data);
    w.owner = values.owner;
    w.scales.resize(scales.size());
    for (std::size_t i = 0; i < w.scales.size(); ++i) {
        switch (scales.type) {
            case dtype::f32: w.scales[i] = static_cast<const float*>(scales.data)[i]; break;
            case dtype::bf16: w.scales[i] = to_float(static_cast<const bf16*>(scales.data)[i]); break;
            case dtype::f16: w.scales[i] = to_float(static_cast<const f16*>(scales.data)[i]); break;
            case dtype::i8: throw format_error(core::describe("int8 scale tensor", where, "F32, BF16 or F16", "I8"));
        }
        if (!(std::fabs(w.scales[i]) <= std::numeric_limits<float>::max()))
            throw format_error(core::describe("int8 scale", where, "finite values", "a non-finite scale at element " + std::to_string(i)));
    }
    return w;
}

// The f32 matrix an int8 weight stands for (scale times value), as a tensor a model can take.
inline tensor_data dequantize(const int8_weight& w) {
    const std::size_t n = w.shape[0], k = w.shape[1], g = w.group == 0 ? k : w.group, groups = (k + g - 1) / g;
    auto out = std::make_shared<std::vector<float>>(n * k);
    for (std::size_t j = 0; j < n; ++j)
        for (std::size_t i = 0; i < k; ++i) (*out)[j * k + i] = w.scales[j * groups + i / g] * static_cast<float>(w.values[j * k + i]);
    tensor_data t;
    t.type = dtype::f32;
    t.shape = w.shape;
    t.data = out->data();
    t.owner = std::move(out);
    return t;
}

// A source that can hand out int8 weights as stored (safetensors, checkpoint, mapped_source):
// get_int8(name, shape) is the weight when `name` is stored as int8 with its scale, else nullopt.
template <class S>
concept int8_source = requires(const S& s, const std::string& name, const shape_t& shape) {
    { s.get_int8(name, shape) } -> std::same_as<std::optional<int8_weight>>;
};

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

    // The int8 weight `name` as stored (shape-checked), or nullopt when it is not stored as int8 or
    // the source cannot say (get() then reads it dequantised).
    std::optional<int8_weight> get_int8(std::string_view name, const shape_t& expected) const {
        if constexpr (int8_source<S>) {
            const std::string full = full_name(name);
            auto w = source_->get_int8(full, expected);
            if (w && w->shape != expected)
                throw shape_error(core::describe("weight has the wrong shape", full, shape_string(expected), shape_string(w->shape)));
            return w;
        } else {
            (void)name;
            (void)expected;
            return std::nullopt;
        }
    }

    const S& source() const { return *source_; }

private:
    const S* source_;
    std::string prefix_;
};

}  // namespace pali3::weights
