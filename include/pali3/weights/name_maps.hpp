// Reading other people's checkpoints as they are: name maps (data) from our module paths to
// HF transformers (SigLIP, T5/mT5/UL2) and big_vision (.npz, Flax layouts) names, plus the layout
// change each tensor needs. No conversion step: a `mapped_source` wraps the file's source and
// answers in our names.
//
// A rule is {ours, theirs, layout, part}. Patterns use "{}" wildcards (see renaming_source.hpp).
// `theirs` may end in "[{}]": the tensor is one slice of an array stacked on its leading axis
// (big_vision "scan" checkpoints stack all blocks). `part = {i, n}` takes the i-th of n equal row
// blocks (HF's fused `in_proj_weight` of nn.MultiheadAttention). Several rules may match one of our
// names: the first whose tensor exists wins, so fallbacks (scan vs per-block, tied embeddings) are
// just later rules. Layouts:
//   same       stored shape == ours
//   reshape    same elements, other shape ((1, N, D) -> (N, D); (heads, head_dim) -> (heads*head_dim))
//   transpose  ours is (out, in) and theirs flattens to (in, out): Flax Dense (in, out), attention
//              query/key/value (D, heads, head_dim) and out (heads, head_dim, D)
//   conv_hwio  Flax conv kernel (kh, kw, in, out) -> ours (out, in, kh, kw)
#pragma once

#include <cstring>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "pali3/core/error.hpp"
#include "pali3/weights/memory_source.hpp"
#include "pali3/weights/renaming_source.hpp"
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

namespace map_detail {

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

}  // namespace map_detail

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
            throw shape_error(core::describe(what, where, shape_string(expected) + " (" + map_detail::layout_name(rule.how) + ")",
                                             shape_string(found)));
        };
        if (layer) {
            if (t.shape.empty() || *layer >= t.shape[0]) bad("stacked tensor has no such layer", t.shape);
            t = map_detail::rows(t, *layer, *layer + 1);
            t.shape.erase(t.shape.begin());
        }
        if (rule.parts) {
            if (t.shape.empty() || t.shape[0] % rule.parts != 0) bad("fused tensor does not split evenly", t.shape);
            const std::size_t step = t.shape[0] / rule.parts;
            t = map_detail::rows(t, rule.part * step, (rule.part + 1) * step);
        }
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
                return map_detail::transpose2d(t, expected[1], expected[0], expected);
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

    const S& inner() const { return *inner_; }
    const std::vector<map_rule>& rules() const { return rules_; }

private:
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
                                              "same or reshape layout", map_detail::layout_name(rule->how)));
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

// ---- the maps -------------------------------------------------------------------------------

namespace name_maps {

namespace detail_ {
inline void prefixed(std::vector<map_rule>& out, const std::vector<map_rule>& rules, const std::string& ours,
                     const std::string& theirs) {
    for (auto r : rules) {
        r.ours = ours + r.ours;
        r.theirs = theirs + r.theirs;
        out.push_back(std::move(r));
    }
}
}  // namespace detail_

// Pre-norm encoder blocks as HF CLIP/SigLIP names them (`encoder.layers.{i}`).
inline std::vector<map_rule> hf_siglip_encoder() {
    return {
        {"encoder.blocks.{}.norm1.{}", "encoder.layers.{}.layer_norm1.{}"},
        {"encoder.blocks.{}.norm2.{}", "encoder.layers.{}.layer_norm2.{}"},
        {"encoder.blocks.{}.attn.q.{}", "encoder.layers.{}.self_attn.q_proj.{}"},
        {"encoder.blocks.{}.attn.k.{}", "encoder.layers.{}.self_attn.k_proj.{}"},
        {"encoder.blocks.{}.attn.v.{}", "encoder.layers.{}.self_attn.v_proj.{}"},
        {"encoder.blocks.{}.attn.o.{}", "encoder.layers.{}.self_attn.out_proj.{}"},
        {"encoder.blocks.{}.mlp.{}", "encoder.layers.{}.mlp.{}"},
    };
}

// HF SiglipVisionModel (`vision_model.` prefix) -> our vision_tower.
inline std::vector<map_rule> hf_siglip_vision(const std::string& ours = "", const std::string& theirs = "vision_model.") {
    std::vector<map_rule> r = {
        {"embedding.{}", "embeddings.patch_embedding.{}"},
        {"pos_embedding.weight", "embeddings.position_embedding.weight"},
        {"encoder.norm.{}", "post_layernorm.{}"},
        {"head.probe", "head.probe"},
        {"head.attn.q.weight", "head.attention.in_proj_weight", layout::same, 0, 3},
        {"head.attn.k.weight", "head.attention.in_proj_weight", layout::same, 1, 3},
        {"head.attn.v.weight", "head.attention.in_proj_weight", layout::same, 2, 3},
        {"head.attn.q.bias", "head.attention.in_proj_bias", layout::same, 0, 3},
        {"head.attn.k.bias", "head.attention.in_proj_bias", layout::same, 1, 3},
        {"head.attn.v.bias", "head.attention.in_proj_bias", layout::same, 2, 3},
        {"head.attn.o.{}", "head.attention.out_proj.{}"},
        {"head.norm.{}", "head.layernorm.{}"},
        {"head.mlp.{}", "head.mlp.{}"},
    };
    const auto enc = hf_siglip_encoder();
    r.insert(r.end(), enc.begin(), enc.end());
    std::vector<map_rule> out;
    detail_::prefixed(out, r, ours, theirs);
    return out;
}

// HF SiglipTextModel (`text_model.` prefix) -> our text_tower.
inline std::vector<map_rule> hf_siglip_text(const std::string& ours = "", const std::string& theirs = "text_model.") {
    std::vector<map_rule> r = {
        {"embedding.weight", "embeddings.token_embedding.weight"},
        {"pos_embedding.weight", "embeddings.position_embedding.weight"},
        {"encoder.norm.{}", "final_layer_norm.{}"},
        {"head.{}", "head.{}"},
    };
    const auto enc = hf_siglip_encoder();
    r.insert(r.end(), enc.begin(), enc.end());
    std::vector<map_rule> out;
    detail_::prefixed(out, r, ours, theirs);
    return out;
}

// HF T5ForConditionalGeneration / MT5 / UL2 (v1.0 `wi`/`wo` and v1.1 `wi_0`/`wi_1`/`wo`) -> our t5_model.
inline std::vector<map_rule> hf_t5(const std::string& ours = "", const std::string& theirs = "") {
    const std::vector<map_rule> r = {
        {"shared.weight", "shared.weight"},
        {"shared.weight", "encoder.embed_tokens.weight"},
        {"encoder.rel_bias.weight", "encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight"},
        {"decoder.rel_bias.weight", "decoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight"},
        {"encoder.blocks.{}.norm1.weight", "encoder.block.{}.layer.0.layer_norm.weight"},
        {"encoder.blocks.{}.attn.{}.weight", "encoder.block.{}.layer.0.SelfAttention.{}.weight"},
        {"encoder.blocks.{}.norm2.weight", "encoder.block.{}.layer.1.layer_norm.weight"},
        {"encoder.blocks.{}.mlp.fc1.weight", "encoder.block.{}.layer.1.DenseReluDense.wi.weight"},
        {"encoder.blocks.{}.mlp.fc2.weight", "encoder.block.{}.layer.1.DenseReluDense.wo.weight"},
        {"encoder.blocks.{}.mlp.{}.weight", "encoder.block.{}.layer.1.DenseReluDense.{}.weight"},
        {"encoder.norm.weight", "encoder.final_layer_norm.weight"},
        {"decoder.blocks.{}.norm1.weight", "decoder.block.{}.layer.0.layer_norm.weight"},
        {"decoder.blocks.{}.self_attn.{}.weight", "decoder.block.{}.layer.0.SelfAttention.{}.weight"},
        {"decoder.blocks.{}.norm2.weight", "decoder.block.{}.layer.1.layer_norm.weight"},
        {"decoder.blocks.{}.cross_attn.{}.weight", "decoder.block.{}.layer.1.EncDecAttention.{}.weight"},
        {"decoder.blocks.{}.norm3.weight", "decoder.block.{}.layer.2.layer_norm.weight"},
        {"decoder.blocks.{}.mlp.fc1.weight", "decoder.block.{}.layer.2.DenseReluDense.wi.weight"},
        {"decoder.blocks.{}.mlp.fc2.weight", "decoder.block.{}.layer.2.DenseReluDense.wo.weight"},
        {"decoder.blocks.{}.mlp.{}.weight", "decoder.block.{}.layer.2.DenseReluDense.{}.weight"},
        {"decoder.norm.weight", "decoder.final_layer_norm.weight"},
        {"lm_head.weight", "lm_head.weight"},
    };
    std::vector<map_rule> out;
    detail_::prefixed(out, r, ours, theirs);
    return out;
}

// big_vision ViT params (`img/` inside a PaLI/SigLIP checkpoint) -> our vision_tower. Per-block
// `encoderblock_{i}` names first, then the scan layout (`encoderblock` stacked on axis 0).
inline std::vector<map_rule> big_vision_vit(const std::string& ours = "", const std::string& theirs = "img/") {
    const auto block = [](const std::string& b) {
        const std::string a = b + "/MultiHeadDotProductAttention_0/";
        return std::vector<map_rule>{
            {"norm1.weight", b + "/LayerNorm_0/scale"},
            {"norm1.bias", b + "/LayerNorm_0/bias"},
            {"norm2.weight", b + "/LayerNorm_1/scale"},
            {"norm2.bias", b + "/LayerNorm_1/bias"},
            {"attn.q.weight", a + "query/kernel", layout::transpose},
            {"attn.k.weight", a + "key/kernel", layout::transpose},
            {"attn.v.weight", a + "value/kernel", layout::transpose},
            {"attn.q.bias", a + "query/bias", layout::reshape},
            {"attn.k.bias", a + "key/bias", layout::reshape},
            {"attn.v.bias", a + "value/bias", layout::reshape},
            {"attn.o.weight", a + "out/kernel", layout::transpose},
            {"attn.o.bias", a + "out/bias"},
            {"mlp.fc1.weight", b + "/MlpBlock_0/Dense_0/kernel", layout::transpose},
            {"mlp.fc1.bias", b + "/MlpBlock_0/Dense_0/bias"},
            {"mlp.fc2.weight", b + "/MlpBlock_0/Dense_1/kernel", layout::transpose},
            {"mlp.fc2.bias", b + "/MlpBlock_0/Dense_1/bias"},
        };
    };
    std::vector<map_rule> r = {
        {"embedding.weight", "embedding/kernel", layout::conv_hwio},
        {"embedding.bias", "embedding/bias"},
        {"pos_embedding.weight", "pos_embedding", layout::reshape},
        {"encoder.norm.weight", "Transformer/encoder_norm/scale"},
        {"encoder.norm.bias", "Transformer/encoder_norm/bias"},
        {"head.probe", "MAPHead_0/probe"},
        {"head.norm.weight", "MAPHead_0/LayerNorm_0/scale"},
        {"head.norm.bias", "MAPHead_0/LayerNorm_0/bias"},
    };
    for (auto rule : block("Transformer/encoderblock_{}")) {
        rule.ours = "encoder.blocks.{}." + rule.ours;
        r.push_back(std::move(rule));
    }
    for (auto rule : block("Transformer/encoderblock")) {
        rule.ours = "encoder.blocks.{}." + rule.ours;
        rule.theirs += "[{}]";
        r.push_back(std::move(rule));
    }
    for (auto rule : block("MAPHead_0")) {
        if (rule.ours.rfind("attn.", 0) != 0 && rule.ours.rfind("mlp.", 0) != 0) continue;
        rule.ours = "head." + rule.ours;
        r.push_back(std::move(rule));
    }
    std::vector<map_rule> out;
    detail_::prefixed(out, r, ours, theirs);
    return out;
}

// HF SiglipModel (both towers, logit_scale, logit_bias) -> our siglip_model.
inline std::vector<map_rule> hf_siglip() {
    auto r = hf_siglip_vision("vision.", "vision_model.");
    const auto t = hf_siglip_text("text.", "text_model.");
    r.insert(r.end(), t.begin(), t.end());
    r.push_back({"logit_scale", "logit_scale", layout::reshape});
    r.push_back({"logit_bias", "logit_bias", layout::reshape});
    return r;
}

// A PaLI-3 checkpoint laid out like HF's PaliGemma: `vision_tower.vision_model.*` (SigLIP),
// `multi_modal_projector.linear.*`, `language_model.*` (T5 names).
inline std::vector<map_rule> hf_pali3() {
    auto r = hf_siglip_vision("img.", "vision_tower.vision_model.");
    r.push_back({"projector.{}", "multi_modal_projector.linear.{}"});
    const auto t = hf_t5("text.", "language_model.");
    r.insert(r.end(), t.begin(), t.end());
    return r;
}

// A big_vision PaLI checkpoint: the vision tower under `img/`, the projector as `img/head`
// (Dense, (in, out)), the text model under `t/` in HF T5 names (big_vision's own T5 code is T5X).
inline std::vector<map_rule> big_vision_pali3(const std::string& text_prefix = "t/") {
    auto r = big_vision_vit("img.", "img/");
    r.push_back({"projector.weight", "img/head/kernel", layout::transpose});
    r.push_back({"projector.bias", "img/head/bias"});
    const auto t = hf_t5("text.", text_prefix);
    r.insert(r.end(), t.begin(), t.end());
    return r;
}

}  // namespace name_maps

// Which naming a set of tensor names uses (for tools that take any checkpoint).
enum class naming { ours, hf_siglip, hf_t5, hf_pali3, big_vision, unknown };

inline std::string_view naming_name(naming n) {
    switch (n) {
        case naming::ours: return "pali3";
        case naming::hf_siglip: return "HF SigLIP";
        case naming::hf_t5: return "HF T5";
        case naming::hf_pali3: return "HF PaLI (vision_tower/multi_modal_projector/language_model)";
        case naming::big_vision: return "big_vision";
        case naming::unknown: return "unknown";
    }
    return "?";
}

inline naming detect_naming(const std::vector<std::string>& names) {
    const auto has_prefix = [&](std::string_view p) {
        for (const auto& n : names)
            if (n.rfind(p, 0) == 0) return true;
        return false;
    };
    if (has_prefix("vision_tower.vision_model.") || has_prefix("multi_modal_projector.")) return naming::hf_pali3;
    if (has_prefix("img/")) return naming::big_vision;
    if (has_prefix("vision_model.") || has_prefix("text_model.")) return naming::hf_siglip;
    if (has_prefix("encoder.block.") || has_prefix("decoder.block.")) return naming::hf_t5;
    if (has_prefix("img.") || has_prefix("encoder.blocks.") || has_prefix("embedding.") || has_prefix("shared."))
        return naming::ours;
    return naming::unknown;
}

}  // namespace pali3::weights
