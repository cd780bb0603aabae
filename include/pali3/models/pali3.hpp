// The PaLI-3 model: image -> SigLIP ViT tokens -> projector (Linear D_vit -> d_model, bias)
// -> [visual ; embedded prompt] -> UL2 encoder (padding mask on the text) -> decoder steps.
//   names: img.*, projector.{weight,bias}, text.* (the t5_model names)
// A config fixes three parts whose seams must fit: vision.width == projector.in and
// projector.out == text.d_model. `fixed_pali3<Preset>` checks them at compile time; the
// run-time constructor checks the same rules (config_error naming the parts and sizes).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "pali3/models/t5.hpp"
#include "pali3/models/vit.hpp"

namespace pali3::models {

struct projector_config {
    std::size_t in = 0, out = 0;
};

struct pali3_config {
    vit_config vision;
    projector_config projector;
    t5_config text;
};

constexpr layers::fit_result check_fit(const pali3_config& c) {
    if (c.vision.width != c.projector.in) return {"vision width != projector input", c.vision.width, c.projector.in};
    if (c.projector.out != c.text.d_model) return {"projector output != text d_model", c.projector.out, c.text.d_model};
    return {};
}

inline void check(const pali3_config& c) {
    const auto r = check_fit(c);
    if (!r.ok())
        throw config_error(core::describe("PaLI-3 parts do not fit", "pali3_config", r.what,
                                          std::to_string(r.a) + " vs " + std::to_string(r.b)));
    check(c.vision);
    check(c.text);
}

namespace presets {
// PaLI-3 5B: ViT-G-opt/14 (the paper's "ViT-G", width 1536) + projector + an mT5-XL-shaped UL2
// (the UL2 3B shapes are not public; T5 v1.1-XL shapes with the 250,112-row mT5 vocabulary).
// Add rows to text.vocab for PaLI's 1024 <loc> and 128 <seg> tokens when the tokenizer has them.
struct pali3_5b {
    static constexpr pali3_config value{with(vit_sizes::G_opt, 14, 224), {1536, 2048}, t5_sizes::xl(t5_sizes::mt5_vocab)};
};
struct pali3_5b_812 {
    static constexpr pali3_config value{[] { auto v = with(vit_sizes::G_opt, 14, 812); v.posemb_grid = 16; return v; }(),
                                        {1536, 2048}, t5_sizes::xl(t5_sizes::mt5_vocab)};
};
struct pali3_5b_1064 {
    static constexpr pali3_config value{[] { auto v = with(vit_sizes::G_opt, 14, 1064); v.posemb_grid = 16; return v; }(),
                                        {1536, 2048}, t5_sizes::xl(t5_sizes::mt5_vocab)};
};
// A tiny model for tests and the demo: 32 px images, patch 8, widths 48 -> 32.
struct pali3_tiny {
    static constexpr pali3_config value{vit_config{48, 2, 96, 4, 8, 32}, {48, 32}, t5_config{300, 32, 64, 4, 8, 2, 2}};
};
}  // namespace presets

template <weight_storage Storage = float>
class pali3_model {
public:
    using text_model = t5_v11<Storage>;

    explicit pali3_model(const pali3_config& c)
        : cfg_((check(c), c)), img_(c.vision), projector_({c.projector.in, c.projector.out, true}), text_(c.text) {}
    template <weights::weight_source S>
    pali3_model(const pali3_config& c, const weights::cursor<S>& cur) : pali3_model(c) {
        layers::load(*this, cur);
    }

    template <class V>
    void visit(V& v) {
        v.child("img", img_);
        v.child("projector", projector_);
        v.child("text", text_);
    }

    const pali3_config& config() const { return cfg_; }
    const vision_tower<Storage>& vision() const { return img_; }
    const text_model& text() const { return text_; }

    // Encoder input length for prompts of at most `max_prompt` tokens.
    std::size_t sequence_length(std::size_t max_prompt) const { return cfg_.vision.tokens() + max_prompt; }

    std::size_t workspace_floats(std::size_t batch, std::size_t max_prompt, std::size_t max_decode) const {
        const std::size_t n = cfg_.vision.tokens();
        return core::workspace::padded(batch * n * cfg_.vision.width) +
               std::max(img_.workspace_floats(batch), text_.workspace_floats(batch, n + max_prompt, max_decode));
    }

    // memory (batch, N + T, d_model) with T = the longest prompt; lens[b] = N + prompt b's length
    // (the rest is padding the encoder masks). images: (batch, 3, H, W) in [-1, 1].
    template <core::executor E = core::sequential>
    std::vector<std::size_t> encode(const float* images, std::span<const std::vector<std::int32_t>> prompts,
                                    float* memory, core::workspace& ws, E&& exec = E{}, const layers::trace& tr = {}) const {
        const std::size_t batch = prompts.size(), n = cfg_.vision.tokens(), d = cfg_.text.d_model;
        std::size_t t_max = 0;
        for (const auto& p : prompts) t_max = std::max(t_max, p.size());
        const std::size_t len = n + t_max;
        std::vector<std::size_t> lens(batch);
        {
            core::workspace::scope scope(ws);
            float* tokens = ws.alloc(batch * n * cfg_.vision.width).data();  // (batch*N, D_vit)
            img_.forward(images, batch, layers::image_layout::nchw, tokens, ws, exec, tr.child("img"));
            for (std::size_t b = 0; b < batch; ++b)  // projected tokens land in each sequence's head
                projector_.forward(tokens + b * n * cfg_.vision.width, cfg_.vision.width, n, memory + b * len * d, d, exec);
        }
        tr("projector_out", memory, {batch, len, d});
        for (std::size_t b = 0; b < batch; ++b) {
            const auto& p = prompts[b];
            text_.embed(p.data(), p.size(), memory + (b * len + n) * d);
            std::fill(memory + (b * len + n + p.size()) * d, memory + (b + 1) * len * d, 0.f);
            lens[b] = n + p.size();
        }
        text_.encode(memory, batch, len, lens, ws, exec, tr.child("text"));
        return lens;
    }

    template <core::executor E = core::sequential>
    t5_decoder_state start(const float* memory, std::size_t batch, std::span<const std::size_t> lens,
                           std::size_t max_decode, E&& exec = E{}) const {
        std::size_t len = 0;
        for (auto l : lens) len = std::max(len, l);
        return text_.start(memory, batch, len, lens, max_decode, exec);
    }

    template <core::executor E = core::sequential>
    void step(const std::int32_t* ids, t5_decoder_state& s, float* logits, core::workspace& ws, E&& exec = E{},
              const layers::trace& tr = {}) const {
        text_.step(ids, 1, s, logits, ws, exec, tr.child("text"));
    }

private:
    pali3_config cfg_;
    vision_tower<Storage> img_;
    layers::linear<Storage> projector_;
    text_model text_;
};

// A PaLI-3 model whose config is a compile-time preset: seams that do not fit do not compile.
template <class Preset, weight_storage Storage = float>
class fixed_pali3 : public pali3_model<Storage> {
    static constexpr pali3_config C = Preset::value;
    static_assert(C.vision.width == C.projector.in, "pali3: vision width != projector input");
    static_assert(C.projector.out == C.text.d_model, "pali3: projector output != text d_model");
    static_assert(C.vision.patch > 0 && C.vision.image % C.vision.patch == 0, "pali3: image size is not a multiple of the patch size");
    static_assert(layers::check_fit(C.vision.block()).ok(), "pali3: vision block parts do not fit");
    static_assert(layers::check_fit(C.text.block()).ok(), "pali3: text block parts do not fit");

public:
    fixed_pali3() : pali3_model<Storage>(C) {}
    template <weights::weight_source S>
    explicit fixed_pali3(const weights::cursor<S>& cur) : pali3_model<Storage>(C, cur) {}
};

}  // namespace pali3::models
