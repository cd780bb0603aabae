// Name maps (data) from our module paths to HF transformers (SigLIP, T5/mT5/UL2) and big_vision
// (.npz, Flax layouts) names, with the layout change each tensor needs (mapped_source.hpp reads
// a checkpoint through them), and the detection of a checkpoint's naming from its tensor names.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "pali3/weights/mapped_source.hpp"

namespace pali3::weights {


namespace name_maps {

namespace detail {
inline void prefixed(std::vector<map_rule>& out, const std::vector<map_rule>& rules, const std::string& ours,
                     const std::string& theirs) {
    for (auto r : rules) {
        r.ours = ours + r.ours;
        r.theirs = theirs + r.theirs;
        out.push_back(std::move(r));
    }
}
}  // namespace detail

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
    detail::prefixed(out, r, ours, theirs);
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
    detail::prefixed(out, r, ours, theirs);
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
    detail::prefixed(out, r, ours, theirs);
    return out;
}

namespace detail {
// One big_vision `Encoder1DBlock` (vit.py) at `b`, in our pre_norm_block names.
inline std::vector<map_rule> big_vision_block(const std::string& b) {
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
}
// A big_vision `Encoder` named `e` (its blocks per block, then scanned, and its final norm) in
// our `encoder.` names.
inline void big_vision_encoder(std::vector<map_rule>& r, const std::string& e) {
    r.push_back({"encoder.norm.weight", e + "/encoder_norm/scale"});
    r.push_back({"encoder.norm.bias", e + "/encoder_norm/bias"});
    for (auto rule : big_vision_block(e + "/encoderblock_{}")) {
        rule.ours = "encoder.blocks.{}." + rule.ours;
        r.push_back(std::move(rule));
    }
    for (auto rule : big_vision_block(e + "/encoderblock")) {
        rule.ours = "encoder.blocks.{}." + rule.ours;
        rule.theirs += "[{}]";
        r.push_back(std::move(rule));
    }
}
}  // namespace detail

// big_vision ViT params (`img/` inside a PaLI/SigLIP checkpoint) -> our vision_tower. Per-block
// `encoderblock_{i}` names first, then the scan layout (`encoderblock` stacked on axis 0).
inline std::vector<map_rule> big_vision_vit(const std::string& ours = "", const std::string& theirs = "img/") {
    const auto block = [](const std::string& b) { return detail::big_vision_block(b); };
    std::vector<map_rule> r = {
        {"embedding.weight", "embedding/kernel", layout::conv_hwio},
        {"embedding.bias", "embedding/bias"},
        {"pos_embedding.weight", "pos_embedding", layout::reshape},
        {"head.probe", "MAPHead_0/probe"},
        {"head.norm.weight", "MAPHead_0/LayerNorm_0/scale"},
        {"head.norm.bias", "MAPHead_0/LayerNorm_0/bias"},
    };
    detail::big_vision_encoder(r, "Transformer");
    for (auto rule : block("MAPHead_0")) {
        if (rule.ours.rfind("attn.", 0) != 0 && rule.ours.rfind("mlp.", 0) != 0) continue;
        rule.ours = "head." + rule.ours;
        r.push_back(std::move(rule));
    }
    std::vector<map_rule> out;
    detail::prefixed(out, r, ours, theirs);
    return out;
}

// big_vision's text tower (proj/image_text/text_transformer.py, `txt/` in a two-tower SigLIP
// checkpoint) -> our text_tower: Embed_0, pos_embedding (1, L, D), Encoder_0, head (Dense).
inline std::vector<map_rule> big_vision_text(const std::string& ours = "", const std::string& theirs = "txt/") {
    std::vector<map_rule> r = {
        {"embedding.weight", "Embed_0/embedding"},
        {"pos_embedding.weight", "pos_embedding", layout::reshape},
        {"head.weight", "head/kernel", layout::transpose},
        {"head.bias", "head/bias"},
    };
    detail::big_vision_encoder(r, "Encoder_0");
    std::vector<map_rule> out;
    detail::prefixed(out, r, ours, theirs);
    return out;
}

// big_vision two-tower SigLIP (proj/image_text/two_towers.py): `img/`, `txt/`, the log
// temperature `t` and the bias `b` (both shape (1,)) -> our siglip_model.
inline std::vector<map_rule> big_vision_siglip() {
    auto r = big_vision_vit("vision.", "img/");
    const auto t = big_vision_text("text.", "txt/");
    r.insert(r.end(), t.begin(), t.end());
    r.push_back({"logit_scale", "t", layout::reshape});
    r.push_back({"logit_bias", "b", layout::reshape});
    return r;
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
    if (has_prefix("img/") || has_prefix("txt/")) return naming::big_vision;
    if (has_prefix("vision_model.") || has_prefix("text_model.")) return naming::hf_siglip;
    if (has_prefix("encoder.block.") || has_prefix("decoder.block.")) return naming::hf_t5;
    if (has_prefix("img.") || has_prefix("encoder.blocks.") || has_prefix("embedding.") || has_prefix("shared."))
        return naming::ours;
    return naming::unknown;
}

}  // namespace pali3::weights
