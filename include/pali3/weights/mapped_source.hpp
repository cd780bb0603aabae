// A source that answers in our names while reading a checkpoint in another naming (HF,
// big_vision...), with the layout change each tensor needs. No conversion step.
//
// A rule is {ours, theirs, layout, part}. Patterns are data: each "{}" matches a non-empty run of
// characters (shortest first) and is substituted, in order, into the other side:
//     {"vision.blocks.{}.attn.q.weight", "vision_model.encoder.layers.{}.self_attn.q_proj.weight"}
// `theirs` may end in "[{}]": the tensor is one slice of an array stacked on its leading axis
// (big_vision "scan" checkpoints stack all blocks). `part = {i, n}` takes the i-th of n equal row
// blocks (HF's fused `in_proj_weight` of nn.MultiheadAttention). Several rules may match one of our
// names: the first whose tensor exists wins, so fallbacks (scan vs per-block, tied embeddings) are
// just later rules; a name no rule matches is missing (a last rule {"{}", "{}"} passes names
// through unchanged). Errors name both our name and the file's. Layouts:
//   same       stored shape == ours
//   reshape    same elements, other shape ((1, N, D) -> (N, D); (heads, head_dim) -> (heads*head_dim))
//   transpose  ours is (out, in) and theirs flattens to (in, out): Flax Dense (in, out), attention
//              query/key/value (D, heads, head_dim) and out (heads, head_dim, D)
//   conv_hwio  Flax conv kernel (kh, kw, in, out) -> ours (out, in, kh, kw)
#pragma once

#include <atomic>
#include <cstring>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "pali3/core/error.hpp"
#include "pali3/weights/memory_source.hpp"
#include "pali3/weights/source.hpp"

namespace pali3::weights {

enum class layout { same, reshape, transpose, conv_hwio };

struct map_rule {
    std::string ours;
    std::string theirs;
    layout how = layout::same;
    std::size_t part = 0, parts = 0;  // parts > 0: row block `part` of `parts`
};

// A source whose tensors can be read without knowing their shape in advance.
template <class S>
concept raw_weight_source = weight_source<S> && requires(const S& s, const std::string& name) {
    { s.get_raw(name) } -> std::same_as<tensor_data>;
};

namespace detail {
// Matches `name` against `pattern` ("{}" = non-empty wildcard); returns the captures.
inline bool match_pattern(std::string_view pattern, std::string_view name,
                          std::vector<std::string_view>& captures) {
    const auto star = pattern.find("{}");
    if (star == std::string_view::npos) return pattern == name;
    if (name.substr(0, star) != pattern.substr(0, star)) return false;
    const std::string_view rest_pattern = pattern.substr(star + 2);
    const std::string_view rest_name = name.substr(star);
    for (std::size_t len = 1; len <= rest_name.size(); ++len) {
        captures.push_back(rest_name.substr(0, len));
        if (match_pattern(rest_pattern, rest_name.substr(len), captures)) return true;
        captures.pop_back();
    }
    return false;
}

// Number of "{}" wildcards in a pattern (both sides of a rule must have the same).
inline std::size_t count_wildcards(std::string_view s) {
    std::size_t n = 0;
    for (auto p = s.find("{}"); p != std::string_view::npos; p = s.find("{}", p + 2)) ++n;
    return n;
}

inline std::string substitute(std::string_view pattern, const std::vector<std::string_view>& captures) {
    std::string out;
    std::size_t next = 0;
    for (std::size_t i = 0; i < pattern.size(); ++i) {
        if (pattern.compare(i, 2, "{}") == 0 && next < captures.size()) {
            out.append(captures[next++]);
            ++i;
        } else {
            out.push_back(pattern[i]);
        }
    }
    return out;
}


inline tensor_data owned_copy(const tensor_data& t, shape_t shape, const std::uint8_t* from, std::size_t bytes) {
    auto buf = std::make_shared<std::vector<float>>((bytes + 3) / 4);
    std::memcpy(buf->data(), from, bytes);
    tensor_data out;
    out.type = t.type;
    out.shape = std::move(shape);
    out.data = buf->data();
    out.owner = std::move(buf);
    return out;
}

// Rows [begin, end) of the leading axis (a view, no copy).
inline tensor_data rows(const tensor_data& t, std::size_t begin, std::size_t end) {
    tensor_data out = t;
    const std::size_t row = t.shape.empty() ? 0 : shape_size(t.shape) / std::max<std::size_t>(t.shape[0], 1);
    out.shape[0] = end - begin;
    out.data = static_cast<const std::uint8_t*>(t.data) + begin * row * dtype_size(t.type);
    return out;
}

// Element-size-generic transpose of an (r, c) matrix.
inline tensor_data transpose2d(const tensor_data& t, std::size_t r, std::size_t c, shape_t out_shape) {
    const std::size_t es = dtype_size(t.type);
    auto buf = std::make_shared<std::vector<float>>((r * c * es + 3) / 4);
    auto* dst = reinterpret_cast<std::uint8_t*>(buf->data());
    const auto* src = static_cast<const std::uint8_t*>(t.data);
    for (std::size_t i = 0; i < r; ++i)
        for (std::size_t j = 0; j < c; ++j) std::memcpy(dst + (j * r + i) * es, src + (i * c + j) * es, es);
    tensor_data out;
    out.type = t.type;
    out.shape = std::move(out_shape);
    out.data = buf->data();
    out.owner = std::move(buf);
    return out;
}

inline std::string layout_name(layout l) {
    switch (l) {
        case layout::same: return "same";
        case layout::reshape: return "reshape";
        case layout::transpose: return "transpose";
        case layout::conv_hwio: return "conv (kh, kw, in, out)";
    }
    return "?";
}

// Non-finite stored values (NaN, +-Inf) by their exponent bits: all ones in f32, bf16 and f16.
// Returns how many, and the first one's index and kind, for the message.
struct nonfinite_report {
    std::size_t count = 0, first = 0;
    bool first_is_nan = false;
};
template <class Bits>
nonfinite_report scan_nonfinite(const Bits* v, std::size_t n, Bits exponent, Bits mantissa) {
    nonfinite_report r;
    for (std::size_t i = 0; i < n; ++i)
        if ((v[i] & exponent) == exponent) {
            if (r.count++ == 0) {
                r.first = i;
                r.first_is_nan = (v[i] & mantissa) != 0;
            }
        }
    return r;
}
inline nonfinite_report scan_nonfinite(const tensor_data& t) {
    const std::size_t n = t.size();
    switch (t.type) {
        case dtype::f32: return scan_nonfinite(static_cast<const std::uint32_t*>(t.data), n, std::uint32_t{0x7f800000}, std::uint32_t{0x007fffff});
        case dtype::bf16: return scan_nonfinite(static_cast<const std::uint16_t*>(t.data), n, std::uint16_t{0x7f80}, std::uint16_t{0x007f});
        case dtype::f16: return scan_nonfinite(static_cast<const std::uint16_t*>(t.data), n, std::uint16_t{0x7c00}, std::uint16_t{0x03ff});
        case dtype::i8: return {};  // integers are finite (their scales are checked when read)
    }
    return {};
}
}  // namespace detail

// Whether checkpoint tensors may hold NaN or Inf. Off by default: every tensor a model takes
// through a mapped_source is scanned once (about 1 s per 10 GB) and a non-finite value is a
// format_error naming the tensor. Process-wide, for the command line's --allow-nonfinite.
inline std::atomic<bool> allow_nonfinite_weights{false};

// Throws when `t` holds NaN or Inf (unless allowed), naming `where` and the first bad element.
inline void require_finite(const tensor_data& t, std::string_view where) {
    if (allow_nonfinite_weights.load(std::memory_order_relaxed)) return;
    const auto r = detail::scan_nonfinite(t);
    if (r.count == 0) return;
    throw format_error(core::describe("non-finite weight", where, "finite values (--allow-nonfinite to load it anyway)",
                                      std::to_string(r.count) + " NaN/Inf of " + std::to_string(t.size()) + ", the first (" +
                                          (r.first_is_nan ? "NaN" : "Inf") + ") at element " + std::to_string(r.first)));
}

template <raw_weight_source S>
class mapped_source {
public:
    mapped_source(const S& inner, std::vector<map_rule> rules) : inner_(&inner), rules_(std::move(rules)) {
        for (const auto& r : rules_) {
            if (detail::count_wildcards(r.ours) != detail::count_wildcards(r.theirs))
                throw config_error(core::describe("name map rule with unbalanced wildcards", r.ours + " -> " + r.theirs,
                                                  std::to_string(detail::count_wildcards(r.ours)) + " '{}' on each side",
                                                  detail::count_wildcards(r.theirs)));
            if (r.parts && r.part >= r.parts)
                throw config_error(core::describe("name map rule part out of range", r.ours, "< " + std::to_string(r.parts), r.part));
        }
    }

    // The rule and the file name our `name` is read from (first rule whose tensor exists).
    std::optional<std::pair<map_rule, std::string>> locate(const std::string& name) const {
        if (const auto hit = resolve(name)) return std::make_pair(*hit->first, hit->second);
        return std::nullopt;
    }

    // The file name for our `name` (first rule whose tensor exists), or nullopt.
    std::optional<std::string> translate(const std::string& name) const {
        if (const auto hit = resolve(name)) return hit->second;
        return std::nullopt;
    }

    bool contains(const std::string& name) const { return resolve(name).has_value(); }

    tensor_data get(const std::string& name, const shape_t& expected) const {
        const auto hit = resolve(name);
        if (!hit) {
            std::string tried;
            for (const auto& c : candidates(name)) tried += (tried.empty() ? "" : ", ") + c.second;
            throw format_error(core::describe("missing tensor", name, "a tensor of shape " + shape_string(expected),
                                              tried.empty() ? std::string("no name-map rule for it") : "none of: " + tried));
        }
        const map_rule& rule = *hit->first;
        const std::string& theirs = hit->second;
        std::string base = theirs;
        std::optional<std::size_t> layer;
        split_index(theirs, base, layer);
        tensor_data t = inner_->get_raw(base);
        const std::string where = name + " <- " + theirs;
        const auto bad = [&](std::string_view what, const shape_t& found) -> void {
            throw shape_error(core::describe(what, where, shape_string(expected) + " (" + detail::layout_name(rule.how) + ")",
                                             shape_string(found)));
        };
        if (layer) {
            if (t.shape.empty() || *layer >= t.shape[0]) bad("stacked tensor has no such layer", t.shape);
            t = detail::rows(t, *layer, *layer + 1);
            t.shape.erase(t.shape.begin());
        }
        if (rule.parts) {
            if (t.shape.empty() || t.shape[0] % rule.parts != 0) bad("fused tensor does not split evenly", t.shape);
            const std::size_t step = t.shape[0] / rule.parts;
            t = detail::rows(t, rule.part * step, (rule.part + 1) * step);
        }
        require_finite(t, where);
        switch (rule.how) {
            case layout::same:
                if (t.shape != expected) bad("weight has the wrong shape", t.shape);
                return t;
            case layout::reshape:
                if (shape_size(t.shape) != shape_size(expected)) bad("weight cannot be reshaped", t.shape);
                t.shape = expected;
                return t;
            case layout::transpose: {
                if (expected.size() != 2) bad("transpose needs a matrix", t.shape);
                // theirs must flatten to (expected[1], expected[0]) at some axis boundary
                bool ok = false;
                std::size_t lead = 1;
                for (std::size_t j = 0; j <= t.shape.size() && !ok; ++j) {
                    std::size_t tail = 1;
                    for (std::size_t k = j; k < t.shape.size(); ++k) tail *= t.shape[k];
                    ok = lead == expected[1] && tail == expected[0];
                    if (j < t.shape.size()) lead *= t.shape[j];
                }
                if (!ok) bad("weight does not transpose to our shape", t.shape);
                return detail::transpose2d(t, expected[1], expected[0], expected);
            }
            case layout::conv_hwio: {
                if (t.shape.size() != 4 || expected.size() != 4 || t.shape[0] != expected[2] || t.shape[1] != expected[3] ||
                    t.shape[2] != expected[1] || t.shape[3] != expected[0])
                    bad("conv kernel does not match", t.shape);
                // (kh*kw*in, out) -> (out, kh*kw*in) ... then reorder (kh, kw, in) -> (in, kh, kw)
                const std::size_t kh = t.shape[0], kw = t.shape[1], ci = t.shape[2], co = t.shape[3];
                const std::size_t es = dtype_size(t.type);
                auto buf = std::make_shared<std::vector<float>>((kh * kw * ci * co * es + 3) / 4);
                auto* dst = reinterpret_cast<std::uint8_t*>(buf->data());
                const auto* src = static_cast<const std::uint8_t*>(t.data);
                for (std::size_t y = 0; y < kh; ++y)
                    for (std::size_t x = 0; x < kw; ++x)
                        for (std::size_t c = 0; c < ci; ++c)
                            for (std::size_t o = 0; o < co; ++o)
                                std::memcpy(dst + (((o * ci + c) * kh + y) * kw + x) * es, src + (((y * kw + x) * ci + c) * co + o) * es, es);
                tensor_data out;
                out.type = t.type;
                out.shape = expected;
                out.data = buf->data();
                out.owner = std::move(buf);
                return out;
            }
        }
        return t;
    }

    // The int8 weight our `name` is read from, as stored, when the file holds it as int8 and its
    // rule keeps the layout (no transpose, slice or split); otherwise nullopt and get() reads it
    // dequantised.
    std::optional<int8_weight> get_int8(const std::string& name, const shape_t& expected) const {
        if constexpr (int8_source<S>) {
            const auto hit = resolve(name);
            if (!hit || hit->first->how != layout::same || hit->first->parts) return std::nullopt;
            std::string base = hit->second;
            std::optional<std::size_t> layer;
            split_index(hit->second, base, layer);
            if (layer) return std::nullopt;
            return inner_->get_int8(base, expected);
        } else {
            (void)name;
            (void)expected;
            return std::nullopt;
        }
    }

    const S& inner() const { return *inner_; }
    const std::vector<map_rule>& rules() const { return rules_; }

private:
public:
    // "a/b[3]" -> base "a/b", layer 3 (a slice of a stacked array); otherwise base = theirs.
    static void split_index(const std::string& theirs, std::string& base, std::optional<std::size_t>& layer) {
        if (theirs.size() < 3 || theirs.back() != ']') return;
        const auto open = theirs.rfind('[');
        if (open == std::string::npos) return;
        std::size_t v = 0;
        for (std::size_t i = open + 1; i + 1 < theirs.size(); ++i) {
            if (theirs[i] < '0' || theirs[i] > '9') return;
            v = v * 10 + static_cast<std::size_t>(theirs[i] - '0');
            if (v > (std::size_t{1} << 40)) return;
        }
        base = theirs.substr(0, open);
        layer = v;
    }

private:
    std::vector<std::pair<const map_rule*, std::string>> candidates(const std::string& name) const {
        std::vector<std::pair<const map_rule*, std::string>> out;
        for (const auto& r : rules_) {
            std::vector<std::string_view> caps;
            if (detail::match_pattern(r.ours, name, caps)) out.emplace_back(&r, detail::substitute(r.theirs, caps));
        }
        return out;
    }

    std::optional<std::pair<const map_rule*, std::string>> resolve(const std::string& name) const {
        for (auto& c : candidates(name)) {
            std::string base = c.second;
            std::optional<std::size_t> layer;
            split_index(c.second, base, layer);
            if (inner_->contains(base)) return c;
        }
        return std::nullopt;
    }

    const S* inner_;
    std::vector<map_rule> rules_;
};

// The reverse of get() for values of the loaded tensors (gradients, updated weights): each of
// `ours` (f32, our names and shapes) goes back to the file's tensor it was read from, in that
// tensor's layout and full shape: transposed back, a conv kernel back to (kh, kw, in, out), a
// stacked layer into its slice, a fused part into its rows. Several of ours landing on the same
// element are summed (a tied tensor read under two of our names gets one summed gradient); parts
// of a file tensor that none of ours came from are zero. Returns f32 tensors under the file's names.
template <raw_weight_source S>
memory_source export_like_source(const mapped_source<S>& src, const memory_source& ours) {
    struct target {
        shape_t shape;
        std::vector<float> values;
    };
    std::map<std::string, target> out;
    for (const auto& name : ours.names()) {
        const tensor_data& t = *ours.find(name);
        if (t.type != dtype::f32)
            throw value_error(core::describe("exporting a non-f32 tensor", name, "f32", dtype_name(t.type)));
        const auto hit = src.locate(name);
        if (!hit) throw format_error(core::describe("tensor not read from this checkpoint", name, "a mapped tensor", "none"));
        const auto& [rule, theirs] = *hit;
        std::string base = theirs;
        std::optional<std::size_t> layer;
        mapped_source<S>::split_index(theirs, base, layer);
        auto it = out.find(base);
        if (it == out.end()) {
            target tg;
            tg.shape = src.inner().get_raw(base).shape;
            tg.values.assign(shape_size(tg.shape), 0.f);
            it = out.emplace(base, std::move(tg)).first;
        }
        target& tg = it->second;
        // The contiguous block of the file tensor this one came from.
        std::size_t offset = 0;
        shape_t block = tg.shape;
        const auto where = name + " -> " + theirs;
        if (layer) {
            if (block.empty() || *layer >= block[0])
                throw shape_error(core::describe("stacked tensor has no such layer", where, "< leading axis", *layer));
            offset += *layer * (shape_size(block) / block[0]);
            block.erase(block.begin());
        }
        if (rule.parts) {
            if (block.empty() || block[0] % rule.parts != 0)
                throw shape_error(core::describe("fused tensor does not split evenly", where, rule.parts, shape_string(block)));
            const std::size_t rows = block[0] / rule.parts, row = shape_size(block) / block[0];
            offset += rule.part * rows * row;
            block[0] = rows;
        }
        if (shape_size(block) != t.size())
            throw shape_error(core::describe("exported tensor size", where, shape_size(block), t.size()));
        const float* v = static_cast<const float*>(t.data);
        float* dst = tg.values.data() + offset;
        switch (rule.how) {
            case layout::same:
            case layout::reshape:
                for (std::size_t i = 0; i < t.size(); ++i) dst[i] += v[i];
                break;
            case layout::transpose: {  // ours (out, in) -> theirs (in, out)
                const std::size_t o = t.shape.at(0), in = t.shape.at(1);
                for (std::size_t i = 0; i < o; ++i)
                    for (std::size_t j = 0; j < in; ++j) dst[j * o + i] += v[i * in + j];
                break;
            }
            case layout::conv_hwio: {  // ours (out, in, kh, kw) -> theirs (kh, kw, in, out)
                const std::size_t co = t.shape.at(0), ci = t.shape.at(1), kh = t.shape.at(2), kw = t.shape.at(3);
                for (std::size_t o = 0; o < co; ++o)
                    for (std::size_t c = 0; c < ci; ++c)
                        for (std::size_t y = 0; y < kh; ++y)
                            for (std::size_t x = 0; x < kw; ++x)
                                dst[((y * kw + x) * ci + c) * co + o] += v[((o * ci + c) * kh + y) * kw + x];
                break;
            }
        }
    }
    memory_source result;
    for (auto& [name, tg] : out) result.add(name, std::move(tg.values), tg.shape);
    return result;
}

// Writes our tensors under another naming (the reverse of a mapped_source) for maps whose layouts
// are `same` or `reshape` (HF): fused tensors (`part`/`parts`) are concatenated in part order.
// Layouts that need a transpose (big_vision) are refused: export those from the original tool.
inline memory_source export_names(const memory_source& ours, const std::vector<map_rule>& rules) {
    struct fused { std::vector<std::uint8_t> bytes; shape_t shape; dtype type = dtype::f32; std::size_t filled = 0, parts = 0; };
    std::map<std::string, fused> pending;
    memory_source out;
    for (const auto& name : ours.names()) {
        const tensor_data& t = *ours.find(name);
        const map_rule* rule = nullptr;
        std::string theirs;
        for (const auto& r : rules) {
            std::vector<std::string_view> caps;
            if (!detail::match_pattern(r.ours, name, caps)) continue;
            theirs = detail::substitute(r.theirs, caps);
            if (theirs.back() == ']') continue;  // stacked layouts are read-only
            rule = &r;
            break;
        }
        if (!rule) throw format_error(core::describe("no name-map rule to export tensor", name, "a rule", "none"));
        if (rule->how != layout::same && rule->how != layout::reshape)
            throw format_error(core::describe("cannot export a tensor whose layout changes", name + " -> " + theirs,
                                              "same or reshape layout", detail::layout_name(rule->how)));
        if (!rule->parts) {
            out.add_data(theirs, t);
            continue;
        }
        auto& f = pending[theirs];
        const std::size_t bytes = t.size() * dtype_size(t.type);
        if (f.parts == 0) {
            f.parts = rule->parts;
            f.type = t.type;
            f.shape = t.shape;
            f.shape[0] *= rule->parts;
            f.bytes.resize(bytes * rule->parts);
        }
        std::memcpy(f.bytes.data() + rule->part * bytes, t.data, bytes);
        if (++f.filled == f.parts) {
            auto buf = std::make_shared<std::vector<std::uint8_t>>(std::move(f.bytes));
            tensor_data d;
            d.type = f.type;
            d.shape = f.shape;
            d.data = buf->data();
            d.owner = std::move(buf);
            out.add_data(theirs, std::move(d));
        }
    }
    for (const auto& [name, f] : pending)
        if (f.filled != f.parts)
            throw format_error(core::describe("fused tensor incomplete on export", name, std::to_string(f.parts) + " parts", f.filled));
    return out;
}


}  // namespace pali3::weights
