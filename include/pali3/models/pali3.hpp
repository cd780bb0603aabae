// The PaLI-3 model: image -> SigLIP ViT tokens -> projector (Linear D_vit -> d_model, bias)
// -> [visual ; embedded prompt] -> UL2 encoder (padding mask on the text) -> decoder steps.
//   names: img.*, projector.{weight,bias}, text.* (the t5_model names)
// The three parts are template parameters: pali3_model<Vision, Projector, Text>. Their seams
// must fit: vision.width == projector.in and projector.out == text.d_model. `fixed_pali3<Preset>`
// checks them at compile time; the run-time constructor checks the same rules (config_error
// naming the parts and sizes).
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "pali3/models/concepts.hpp"
#include "pali3/models/t5.hpp"
#include "pali3/models/vit.hpp"

namespace pali3::models {

struct projector_config {
    std::size_t in = 0, out = 0;
};

// PaLI-3's projector: Linear(in -> out) with bias; its tensors sit directly under the
// projector's prefix ("projector.weight", "projector.bias"). Any part with the same members
// can replace it (docs/concepts.md: projector).
template <weight_storage Storage = float>
class linear_projector {
public:
    using config_type = projector_config;
    using storage_type = Storage;

    explicit linear_projector(const projector_config& c) : cfg_(c), linear_({c.in, c.out, true}) {}

    template <class V>
    void visit(V& v) {
        linear_.visit(v);
    }
    std::size_t prepack() { return linear_.prepack(); }
    // int8 inference (layers::quantize_int8 / load_int8 / save reach the linear layer through these).
    std::size_t quantize_int8(std::size_t group) { return linear_.quantize_int8(group); }
    template <weights::weight_source S>
    std::size_t load_int8(const weights::cursor<S>& cur, std::size_t group) {
        return linear_.load_int8(cur, group);
    }
    const kernels::int8_matrix* int8_weight() const { return linear_.int8_weight(); }
    const float* bias() const { return linear_.bias(); }

    const projector_config& config() const { return cfg_; }
    std::size_t workspace_floats(std::size_t) const { return 0; }

    // y (rows, out), rows ldy apart, from visual tokens x (rows, in).
    template <core::executor E = core::sequential>
    void forward(const float* x, std::size_t rows, float* y, std::size_t ldy, core::workspace&, E&& exec = E{},
                 const layers::trace& = {}) const {
        linear_.forward(x, cfg_.in, rows, y, ldy, exec);
    }

    // Backward of forward(): dx (rows, in) from dy (rows, out; rows lddy apart), added to dx
    // when accumulate; the weight and bias gradients into g.
    template <layers::gradient_sink G, core::executor E = core::sequential>
    void backward(const float* x, std::size_t rows, const float* dy, std::size_t lddy, float* dx, G& g, E&& exec = E{},
                  bool accumulate = false) const {
        linear_.backward(x, cfg_.in, rows, dy, lddy, dx, cfg_.in, g, exec, accumulate);
    }
    void release_prepacked() { linear_.release_prepacked(); }

private:
    projector_config cfg_;
    layers::linear<Storage> linear_;
};

// The three parts' configs; `pali3_config` is the one of the default parts.
template <class VisionConfig, class ProjectorConfig, class TextConfig>
struct basic_pali3_config {
    VisionConfig vision;
    ProjectorConfig projector;
    TextConfig text;
};
using pali3_config = basic_pali3_config<vit_config, projector_config, t5_config>;

template <class VC, class PC, class TC>
constexpr layers::fit_result check_fit(const basic_pali3_config<VC, PC, TC>& c) {
    if (c.vision.width != c.projector.in) return {"vision width != projector input", c.vision.width, c.projector.in};
    if (c.projector.out != c.text.d_model) return {"projector output != text d_model", c.projector.out, c.text.d_model};
    return {};
}

inline void check(const pali3_config& c) {
    layers::require_fit(check_fit(c), "PaLI-3 parts do not fit", "pali3_config");
    check(c.vision);
    check(c.text);
}

// Intent in, config out: the vision and text sizes once; the projector follows from them.
template <class VC, class TC>
constexpr basic_pali3_config<VC, projector_config, TC> pali3_of(const VC& vision, const TC& text) {
    return {vision, {vision.width, text.d_model}, text};
}

namespace presets {
// PaLI-3 5B: ViT-G-opt/14 (the paper's "ViT-G", width 1536) + projector + an mT5-XL-shaped UL2
// (the UL2 3B shapes are not public; T5 v1.1-XL shapes with the 250,112-row mT5 vocabulary).
// Add rows to text.vocab for PaLI's 1024 <loc> and 128 <seg> tokens when the tokenizer has them.
struct pali3_5b {
    static constexpr pali3_config value = pali3_of(with(vit_sizes::G_opt, 14, 224), t5_sizes::xl(t5_sizes::mt5_vocab));
};
struct pali3_5b_812 {
    static constexpr pali3_config value = pali3_of(with(vit_sizes::G_opt, 14, 812, false, 16), t5_sizes::xl(t5_sizes::mt5_vocab));
};
struct pali3_5b_1064 {
    static constexpr pali3_config value = pali3_of(with(vit_sizes::G_opt, 14, 1064, false, 16), t5_sizes::xl(t5_sizes::mt5_vocab));
};
// A tiny model for tests and the demo: 32 px images, patch 8, widths 48 -> 32.
struct pali3_tiny {
    static constexpr pali3_config value = pali3_of(vit_config{48, 2, 96, 4, 8, 32}, t5_config{300, 32, 64, 4, 8, 2, 2});
};
}  // namespace presets

namespace detail {
// pali3_model<S> (a weight storage) means the default parts in that storage.
template <class VisionOrStorage>
struct pali3_parts {
    using vision = VisionOrStorage;
    using projector = linear_projector<layers::storage_of_t<VisionOrStorage>>;
    using text = t5_v11<layers::storage_of_t<VisionOrStorage>>;
};
template <class S>
    requires weight_storage<S>
struct pali3_parts<S> {
    using vision = vision_tower<S>;
    using projector = linear_projector<S>;
    using text = t5_v11<S>;
};
}  // namespace detail

// pali3_model<Vision, Projector, Text>: a vision tower (docs/concepts.md: vision tower), a
// projector and an encoder-decoder text model. pali3_model<S> with a weight storage S is
// PaLI-3's own parts: vision_tower<S>, linear_projector<S>, t5_v11<S>.
template <class Vision = float, class Projector = typename detail::pali3_parts<Vision>::projector,
          class Text = typename detail::pali3_parts<Vision>::text>
class pali3_model {
public:
    using vision_type = typename detail::pali3_parts<Vision>::vision;
    using projector_type = Projector;
    using text_type = Text;
    using text_model = Text;  // the name before parts were parameters
    using config_type = basic_pali3_config<typename vision_type::config_type, typename Projector::config_type,
                                           typename Text::config_type>;
    using state_type = typename Text::state_type;

    static_assert(vision_model<vision_type>,
                  "pali3_model<Vision, Projector, Text>: Vision is not a vision tower: it needs a config_type with "
                  "width, image, channels and tokens(), config(), workspace_floats(batch) and forward(images, batch, "
                  "layout, tokens, ws, exec, trace) (docs/concepts.md: vision tower)");
    static_assert(projector_model<Projector>,
                  "pali3_model<Vision, Projector, Text>: Projector is not a projector: it needs a config_type with in "
                  "and out, a constructor from it, visit(v), workspace_floats(rows) and forward(x, rows, y, ldy, ws, "
                  "exec, trace) (docs/concepts.md: projector)");
    static_assert(encoder_decoder<Text>,
                  "pali3_model<Vision, Projector, Text>: Text is not an encoder-decoder text model: it needs a "
                  "config_type with d_model and vocab, a state_type, embed, encode, start, step and "
                  "workspace_floats (docs/concepts.md: text model)");

    explicit pali3_model(const config_type& c)
        : cfg_((layers::require_fit(check_fit(c), "PaLI-3 parts do not fit", "pali3_config"), c)),
          img_(c.vision), projector_(c.projector), text_(c.text) {}
    template <weights::weight_source S>
    pali3_model(const config_type& c, const weights::cursor<S>& cur) : pali3_model(c) {
        layers::load(*this, cur);
    }

    template <class V>
    void visit(V& v) {
        v.child("img", img_);
        v.child("projector", projector_);
        v.child("text", text_);
    }

    const config_type& config() const { return cfg_; }
    const vision_type& vision() const { return img_; }
    const Projector& projector() const { return projector_; }
    const Text& text() const { return text_; }

    // Encoder input length for prompts of at most `max_prompt` tokens.
    std::size_t sequence_length(std::size_t max_prompt) const { return cfg_.vision.tokens() + max_prompt; }

    std::size_t workspace_floats(std::size_t batch, std::size_t max_prompt, std::size_t max_decode) const {
        const std::size_t n = cfg_.vision.tokens();
        // The request's sizes multiply with the config's: checked here, once, so the parts' own
        // estimates below work on products known to fit.
        const char* where = "PaLI-3 workspace (batch, image tokens + prompt, decoder steps)";
        const std::size_t enc = core::checked_add(where, n, max_prompt);
        (void)core::checked_mul(where, batch, enc, std::max({cfg_.text.d_model, cfg_.text.d_ff, cfg_.text.heads * cfg_.text.d_kv}), 16);
        (void)core::checked_mul(where, batch, max_decode, enc, cfg_.text.heads, 16);
        (void)core::checked_mul(where, batch, n, std::max(cfg_.vision.width, cfg_.vision.mlp), 16);
        return core::workspace::padded(batch * n * cfg_.vision.width) +
               std::max({img_.workspace_floats(batch), projector_.workspace_floats(n),
                         text_.workspace_floats(batch, enc, max_decode)});
    }

    // memory (batch, N + T, d_model) with T = the longest prompt; lens[b] = N + prompt b's length
    // (the rest is padding the encoder masks). images: (batch, 3, H, W) in [-1, 1].
    template <core::executor E = core::sequential>
    std::vector<std::size_t> encode(const float* images, std::span<const std::vector<std::int32_t>> prompts,
                                    float* memory, core::workspace& ws, E&& exec = E{}, const layers::trace& tr = {}) const {
        return encode(images, prompts, {}, memory, ws, exec, tr).lens;
    }

    // Which encoder rows of a batch are real: lens[b] = N + prompt b's length, and with prompt
    // masks a (batch, N + T) 0/1 matrix (image tokens 1, each prompt's mask, padding 0).
    struct prefix_mask {
        std::vector<std::size_t> lens;
        std::vector<std::uint8_t> keep;  // empty without prompt masks
        layers::key_mask keys() const { return {lens, keep}; }
    };

    // The same with HF's attention_mask over each prompt (prompt_masks[b]: one 0/1 per id of
    // prompts[b], any pattern: left padding, holes; empty span: every id real). A hidden prompt
    // position is seen by no query, in the encoder and, through start(memory, batch, prefix, ...),
    // in the decoder's cross-attention; the image tokens are always seen.
    template <core::executor E = core::sequential>
    prefix_mask encode(const float* images, std::span<const std::vector<std::int32_t>> prompts,
                       std::span<const std::vector<std::uint8_t>> prompt_masks, float* memory, core::workspace& ws,
                       E&& exec = E{}, const layers::trace& tr = {}) const {
        const std::size_t batch = prompts.size(), n = cfg_.vision.tokens(), d = cfg_.text.d_model;
        const std::size_t vw = cfg_.vision.width;
        const std::size_t t_max = longest(prompts), len = n + t_max;
        prefix_mask out = prefix_of(prompts, prompt_masks, "pali3_model::encode");
        {
            core::workspace::scope scope(ws);
            float* tokens = ws.alloc(batch * n * vw).data();  // (batch*N, D_vit)
            img_.forward(images, batch, layers::image_layout::nchw, tokens, ws, exec, tr.child("img"));
            for (std::size_t b = 0; b < batch; ++b)  // projected tokens land in each sequence's head
                projector_.forward(tokens + b * n * vw, n, memory + b * len * d, d, ws, exec, tr.child("projector"));
        }
        tr("projector_out", memory, {batch, len, d});
        for (std::size_t b = 0; b < batch; ++b) {
            const auto& p = prompts[b];
            text_.embed(p.data(), p.size(), memory + (b * len + n) * d);
            std::fill(memory + (b * len + n + p.size()) * d, memory + (b + 1) * len * d, 0.f);
        }
        text_.encode(memory, batch, len, out.keys(), ws, exec, tr.child("text"));
        return out;
    }

    template <core::executor E = core::sequential>
    state_type start(const float* memory, std::size_t batch, std::span<const std::size_t> lens, std::size_t max_decode,
                     E&& exec = E{}) const {
        std::size_t len = 0;
        for (auto l : lens) len = std::max(len, l);
        return text_.start(memory, batch, len, lens, max_decode, exec);
    }
    // Decoding against an encode() with prompt masks: cross-attention hides the same rows.
    template <core::executor E = core::sequential>
    state_type start(const float* memory, std::size_t batch, const prefix_mask& prefix, std::size_t max_decode,
                     E&& exec = E{}) const {
        std::size_t len = 0;
        for (auto l : prefix.lens) len = std::max(len, l);
        return text_.start(memory, batch, len, prefix.keys(), max_decode, exec);
    }

    template <core::executor E = core::sequential>
    void step(const std::int32_t* ids, state_type& s, float* logits, core::workspace& ws, E&& exec = E{},
              const layers::trace& tr = {}) const {
        text_.step(ids, 1, s, logits, ws, exec, tr.child("text"));
    }

    // ---- training (docs/training.md) ---------------------------------------------------------
    // Teacher-forced mean token cross-entropy of a batch: images (batch, 3, H, W) in [-1, 1], one
    // prompt per image (the encoder's text after the image tokens), decoder input ids and target
    // ids (batch * dec_len each, target -100 ignored). With g, every parameter's gradient (the
    // vision tower's, the projector's and the text model's) is added to g. Returns the loss and
    // the number of counted targets.
    template <layers::gradient_sink G, core::executor E = core::sequential, class T = Text>
    std::pair<double, std::size_t> loss_and_grad(const float* images, std::span<const std::vector<std::int32_t>> prompts,
                                                 const std::int32_t* decoder_ids, std::size_t dec_len,
                                                 const std::int32_t* targets, G* g, E&& exec = E{},
                                                 const typename T::loss_options& opt = {}) const {
        return loss_and_grad(images, prompts, {}, decoder_ids, dec_len, targets, g, exec, opt);
    }
    // The same with HF's attention_mask over each prompt (as encode(images, prompts, prompt_masks, ...)).
    template <layers::gradient_sink G, core::executor E = core::sequential, class T = Text>
    std::pair<double, std::size_t> loss_and_grad(const float* images, std::span<const std::vector<std::int32_t>> prompts,
                                                 std::span<const std::vector<std::uint8_t>> prompt_masks,
                                                 const std::int32_t* decoder_ids, std::size_t dec_len,
                                                 const std::int32_t* targets, G* g, E&& exec = E{},
                                                 const typename T::loss_options& opt = {}) const {
        const std::size_t batch = prompts.size(), n = cfg_.vision.tokens(), d = cfg_.text.d_model;
        const std::size_t vw = cfg_.vision.width;
        const std::size_t len = n + longest(prompts);
        const prefix_mask prefix = prefix_of(prompts, prompt_masks, "pali3_model::loss_and_grad");
        core::buffer tokens(batch * n * vw), memory(batch * len * d, 0.f);
        typename vision_type::saved vs;
        img_.forward_train(images, batch, layers::image_layout::nchw, tokens.data(), vs, exec, opt.recompute);
        core::workspace ws(projector_.workspace_floats(n));
        for (std::size_t b = 0; b < batch; ++b) {
            projector_.forward(tokens.data() + b * n * vw, n, memory.data() + b * len * d, d, ws, exec);
            text_.embed(prompts[b].data(), prompts[b].size(), memory.data() + (b * len + n) * d);
        }
        core::buffer d_memory(g ? memory.size() : 0, 0.f);
        const auto r = text_.loss_and_grad(memory.data(), batch, len, prefix.keys(), decoder_ids, dec_len, targets, g,
                                           g ? d_memory.data() : nullptr, exec, opt);
        if (!g || r.second == 0) return r;
        core::buffer d_tokens(tokens.size());
        for (std::size_t b = 0; b < batch; ++b) {
            projector_.backward(tokens.data() + b * n * vw, n, d_memory.data() + b * len * d, d,
                                d_tokens.data() + b * n * vw, *g, exec);
            text_.embed_backward(prompts[b].data(), prompts[b].size(), d_memory.data() + (b * len + n) * d, *g);
        }
        img_.backward(images, batch, layers::image_layout::nchw, vs, d_tokens.data(), *g, exec);
        return r;
    }

private:
    static std::size_t longest(std::span<const std::vector<std::int32_t>> prompts) {
        std::size_t t = 0;
        for (const auto& p : prompts) t = std::max(t, p.size());
        return t;
    }
    // lens (N + each prompt) and, with prompt masks, the (batch, N + T) keep matrix.
    prefix_mask prefix_of(std::span<const std::vector<std::int32_t>> prompts,
                          std::span<const std::vector<std::uint8_t>> masks, std::string_view where) const {
        const std::size_t batch = prompts.size(), n = cfg_.vision.tokens(), len = n + longest(prompts);
        prefix_mask out;
        out.lens.resize(batch);
        for (std::size_t b = 0; b < batch; ++b) out.lens[b] = n + prompts[b].size();
        if (masks.empty()) return out;
        if (masks.size() != batch)
            throw shape_error(core::describe("one prompt mask per prompt", where, batch, masks.size()));
        out.keep.assign(batch * len, 0);
        for (std::size_t b = 0; b < batch; ++b) {
            if (masks[b].size() != prompts[b].size())
                throw shape_error(core::describe("prompt mask length", std::string(where) + " prompt " + std::to_string(b),
                                                 prompts[b].size(), masks[b].size()));
            std::fill_n(out.keep.begin() + static_cast<std::ptrdiff_t>(b * len), n, std::uint8_t{1});
            for (std::size_t j = 0; j < masks[b].size(); ++j) {
                if (masks[b][j] > 1)
                    throw value_error(core::describe("prompt mask value", std::string(where) + " prompt " + std::to_string(b),
                                                     "0 or 1", "value " + std::to_string(masks[b][j]) + " at position " + std::to_string(j)));
                out.keep[b * len + n + j] = masks[b][j];
            }
        }
        return out;
    }

    config_type cfg_;
    vision_type img_;
    Projector projector_;
    Text text_;
};

namespace detail {
template <class StorageOrModel>
struct model_of {
    using type = StorageOrModel;
};
template <class S>
    requires weight_storage<S>
struct model_of<S> {
    using type = pali3_model<S>;
};
}  // namespace detail

// A PaLI-3 model whose config is a compile-time preset: seams that do not fit do not compile.
// The second argument is a weight storage (PaLI-3's own parts) or a composed pali3_model<...>.
template <class Preset, class StorageOrModel = float>
class fixed_pali3 : public detail::model_of<StorageOrModel>::type {
    using model = typename detail::model_of<StorageOrModel>::type;
    static constexpr typename model::config_type C = Preset::value;
    static_assert(C.vision.width == C.projector.in, "pali3: vision width != projector input");
    static_assert(C.projector.out == C.text.d_model, "pali3: projector output != text d_model");
    static_assert(check_fit(C).ok(), "pali3: parts do not fit");  // keeps the two rule lists in sync
    static constexpr bool vision_fits() {
        if constexpr (requires { C.vision.patch; C.vision.block(); })
            return C.vision.patch > 0 && C.vision.image % C.vision.patch == 0 && layers::check_fit(C.vision.block()).ok();
        return true;
    }
    static constexpr bool text_fits() {
        if constexpr (requires { C.text.block(); }) return layers::check_fit(C.text.block()).ok();
        return true;
    }
    static_assert(vision_fits(), "pali3: vision image size is not a multiple of the patch size, or its block parts do not fit");
    static_assert(text_fits(), "pali3: text block parts do not fit");

public:
    fixed_pali3() : model(C) {}
    template <weights::weight_source S>
    explicit fixed_pali3(const weights::cursor<S>& cur) : model(C, cur) {}
};

}  // namespace pali3::models
