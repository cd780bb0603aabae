// The UL2 / T5 encoder-decoder (T5 v1.1 family by default; v1.0 as a policy). RMSNorm pre-norm,
// attention without 1/sqrt(d) scaling and without biases, relative position bias in block 0 of
// each stack shared by its layers (encoder bidirectional, decoder unidirectional), FFN gated
// GELU (v1.1) or ReLU (v1.0), untied lm_head (v1.1) or tied with d_model^-0.5 (v1.0).
//   names: shared.weight, encoder.{rel_bias,blocks.{i},norm}, decoder.{rel_bias,blocks.{i}.{norm1,
//          self_attn,norm2,cross_attn,norm3,mlp},norm}, lm_head.weight
// Decoding state (self-attention KV caches, cross-attention K/V of the memory) is an explicit
// object; the model itself is stateless after loading.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <utility>
#include <span>
#include <string>
#include <vector>

#include "pali3/layers/block.hpp"
#include "pali3/kernels/backward.hpp"
#include "pali3/layers/linear.hpp"

namespace pali3::models {

struct t5_config {
    std::size_t vocab = 0, d_model = 0, d_ff = 0, heads = 0, d_kv = 64;
    std::size_t encoder_layers = 0, decoder_layers = 0;
    std::size_t num_buckets = 32, max_distance = 128;
    bool tied_embeddings = false;  // v1.0: lm_head = shared, logits scaled by d_model^-0.5
    float eps = 1e-6f;
    // The feed-forward's activation (gated or not is the model type's): of_type is tanh GELU for
    // T5 v1.1 (HF "gated-gelu"), ReLU for v1.0; UL2 / Flan-UL2 name silu ("gated-silu").
    kernels::activation_id activation = kernels::activation_id::of_type;

    constexpr layers::block_config block() const {
        return {{d_model, eps}, {d_model, heads, d_kv, false}, {d_model, d_ff, false, activation}};
    }
};

inline void check(const t5_config& c) {
    if (c.vocab == 0 || c.encoder_layers == 0 || c.decoder_layers == 0 || c.d_kv == 0)
        throw config_error(core::describe("bad T5 config", "t5_config", "vocab, layers, d_kv > 0",
                                          "vocab=" + std::to_string(c.vocab) + ", layers=" + std::to_string(c.encoder_layers) +
                                              "+" + std::to_string(c.decoder_layers)));
    layers::check(c.block(), "t5_config block");
}

// T5 v1.1 shapes (google/t5-v1_1-* config.json); mT5 uses the 250,112-row multilingual vocabulary.
namespace t5_sizes {
inline constexpr std::size_t t5_vocab = 32128, mt5_vocab = 250112;
constexpr t5_config small(std::size_t vocab = t5_vocab) { return {vocab, 512, 1024, 6, 64, 8, 8}; }
constexpr t5_config base(std::size_t vocab = t5_vocab) { return {vocab, 768, 2048, 12, 64, 12, 12}; }
constexpr t5_config large(std::size_t vocab = t5_vocab) { return {vocab, 1024, 2816, 16, 64, 24, 24}; }
constexpr t5_config xl(std::size_t vocab = t5_vocab) { return {vocab, 2048, 5120, 32, 64, 24, 24}; }
// UL2 20B and Flan-UL2 (google/ul2, google/flan-ul2 config.json): the same shapes, gated SiLU,
// 32 + 32 layers, 16 heads of 256, untied lm_head; 19,591,209,984 parameters.
constexpr t5_config ul2_20b(std::size_t vocab = t5_vocab) {
    return {vocab, 4096, 16384, 16, 256, 32, 32, 32, 128, false, 1e-6f, kernels::activation_id::silu};
}
// T5 v1.0 (t5-small / t5-base config.json): ReLU FFN, lm_head tied to the embedding.
constexpr t5_config v10_small(std::size_t vocab = t5_vocab) { return {vocab, 512, 2048, 8, 64, 6, 6, 32, 128, true}; }
constexpr t5_config v10_base(std::size_t vocab = t5_vocab) { return {vocab, 768, 3072, 12, 64, 12, 12, 32, 128, true}; }
}  // namespace t5_sizes

// Decoder block: causal self-attention (KV cache), cross-attention to the encoder memory, FFN
// (docs/concepts.md: decoder block).
template <class Ffn, weight_storage Storage = float>
class t5_decoder_block {
public:
    using storage_type = Storage;
    using norm_type = layers::rms_norm;
    using attention_type = layers::attention<layers::attn::unscaled, Storage>;

    explicit t5_decoder_block(const layers::block_config& c)
        : cfg_((layers::check(c, "t5_decoder_block"), c)), norm1_(c.norm), self_(c.attn), norm2_(c.norm),
          cross_(c.attn), norm3_(c.norm), mlp_(c.mlp) {}

    template <class V>
    void visit(V& v) {
        v.child("norm1", norm1_);
        v.child("self_attn", self_);
        v.child("norm2", norm2_);
        v.child("cross_attn", cross_);
        v.child("norm3", norm3_);
        v.child("mlp", mlp_);
    }

    const attention_type& cross_attention() const { return cross_; }

    static std::size_t workspace_floats(const layers::block_config& c, std::size_t rows, std::size_t kv_rows) {
        return core::workspace::padded(rows * c.attn.width) +
               std::max(attention_type::workspace_floats(c.attn, rows, std::max(rows, kv_rows)),
                        Ffn::workspace_floats(c.mlp, rows));
    }

    // Keys/values of the encoder memory (batch*tm, d_model) for every later step.
    template <core::executor E = core::sequential>
    void precompute_cross(const float* memory, std::size_t batch, std::size_t tm, layers::kv_cache& cross,
                          E&& exec = E{}) const {
        cross_.precompute_cross(memory, batch, tm, cross, exec);
    }

    // x (batch*tq, d_model) in place: tq new tokens per sequence, appended to in.self.
    template <core::executor E = core::sequential>
    void step(float* x, std::size_t batch, std::size_t tq, const layers::decoder_inputs& in, core::workspace& ws,
              E&& exec = E{}, const layers::trace& tr = {}) const {
        const std::size_t w = cfg_.attn.width, rows = batch * tq;
        core::workspace::scope scope(ws);
        float* h = ws.alloc(rows * w).data();  // (rows, d_model)
        norm1_.forward(x, w, rows, h, w);
        self_.forward_step(h, batch, tq, in.self, x, ws, exec, in.pos_bias, true, tr.child("self_attn"));
        tr("self_attn_out", x, {rows, w});
        norm2_.forward(x, w, rows, h, w);
        cross_.forward_cached_cross(h, batch, tq, in.cross, x, ws, exec, in.memory_keys, true, tr.child("cross_attn"));
        tr("cross_attn_out", x, {rows, w});
        norm3_.forward(x, w, rows, h, w);
        mlp_.forward(h, rows, x, ws, exec, true, tr.child("mlp"));
        tr("mlp_out", x, {rows, w});
    }

    // ---- training (docs/training.md): teacher forced, all t target positions at once -------
    struct saved {
        bool recompute = false;
        core::buffer x0, x1, x2;  // input, after self-attention, after cross-attention
        typename attention_type::saved self, cross;
        typename Ffn::saved mlp;
    };

    template <core::executor E = core::sequential>
    void forward_train(float* x, std::size_t batch, std::size_t t, const layers::memory_inputs& mem,
                       const layers::relative_position_bias* pos_bias, saved& s, E&& exec = E{}) const {
        const std::size_t w = cfg_.attn.width, rows = batch * t;
        core::buffer h(rows * w);
        s.x0.assign(x, x + rows * w);
        norm1_.forward(x, w, rows, h.data(), w);
        self_.forward_train(h.data(), batch, t, h.data(), t, x, s.self, exec, self_inputs(pos_bias), true);
        s.x1.assign(x, x + rows * w);
        norm2_.forward(x, w, rows, h.data(), w);
        cross_.forward_train(h.data(), batch, t, mem.memory, mem.length, x, s.cross, exec, {{}, mem.keys, nullptr}, true);
        s.x2.assign(x, x + rows * w);
        norm3_.forward(x, w, rows, h.data(), w);
        mlp_.forward_train(h.data(), rows, x, s.mlp, exec, true);
        if (s.recompute) {
            s.x1 = {};
            s.x2 = {};
            s.self = {};
            s.cross = {};
            s.mlp = {};
        }
    }

    // dx: gradient of the output in, of the input out; the memory's gradient is added to d_memory.
    template <layers::gradient_sink G, core::executor E = core::sequential>
    void backward(float* dx, float* d_memory, std::size_t batch, std::size_t t, const layers::memory_inputs& mem,
                  const layers::relative_position_bias* pos_bias, const saved& s, G& g, E&& exec = E{}) const {
        if (s.recompute) {
            saved full;
            core::buffer x(s.x0);
            forward_train(x.data(), batch, t, mem, pos_bias, full, exec);
            return backward(dx, d_memory, batch, t, mem, pos_bias, full, g, exec);
        }
        const std::size_t w = cfg_.attn.width, rows = batch * t;
        core::buffer h(rows * w), dh(rows * w);
        norm3_.forward(s.x2.data(), w, rows, h.data(), w);
        mlp_.backward(h.data(), rows, s.mlp, dx, dh.data(), g, exec);
        norm3_.backward(s.x2.data(), w, rows, dh.data(), w, dx, w, g, true);
        norm2_.forward(s.x1.data(), w, rows, h.data(), w);
        std::fill(dh.begin(), dh.end(), 0.f);
        cross_.backward(h.data(), batch, t, mem.memory, mem.length, s.cross, dx, dh.data(), d_memory, g, exec,
                        {{}, mem.keys, nullptr}, /*accumulate=*/true);
        norm2_.backward(s.x1.data(), w, rows, dh.data(), w, dx, w, g, true);
        norm1_.forward(s.x0.data(), w, rows, h.data(), w);
        self_.backward(h.data(), batch, t, h.data(), t, s.self, dx, dh.data(), dh.data(), g, exec, self_inputs(pos_bias));
        norm1_.backward(s.x0.data(), w, rows, dh.data(), w, dx, w, g, true);
    }

    void release_prepacked() {
        self_.release_prepacked();
        cross_.release_prepacked();
        mlp_.release_prepacked();
    }

private:
    static layers::attention_inputs self_inputs(const layers::relative_position_bias* pos_bias) {
        layers::attention_inputs in;
        in.mask.causal = true;
        in.pos_bias = pos_bias;
        return in;
    }

    layers::block_config cfg_;
    layers::rms_norm norm1_;
    attention_type self_;
    layers::rms_norm norm2_;
    attention_type cross_;
    layers::rms_norm norm3_;
    Ffn mlp_;
};

// Per-sequence decoding state: one self-attention cache and one cross-attention cache per layer,
// and which encoder rows each sequence's cross-attention sees (copies, so the state owns them).
struct t5_decoder_state {
    std::vector<layers::kv_cache> self, cross;
    std::vector<std::size_t> memory_lens;   // valid memory length per sequence
    std::vector<std::uint8_t> memory_keep;  // (batch, memory length) 0/1; empty: all rows within the length
    std::size_t batch = 0;
    std::size_t length() const { return self.empty() ? 0 : self.front().length(); }
    std::size_t memory_length() const { return cross.empty() ? 0 : cross.front().length(); }
    layers::key_mask memory_keys() const { return {memory_lens, memory_keep}; }

    // The state whose row b is row src[b] of this one (beam search).
    t5_decoder_state gather(std::span<const std::size_t> src) const {
        t5_decoder_state out;
        out.batch = src.size();
        for (const auto& c : self) out.self.push_back(c.gather(src));
        for (const auto& c : cross) out.cross.push_back(c.gather(src));
        const std::size_t tm = memory_length();
        for (const auto b : src) {
            out.memory_lens.push_back(memory_lens.at(b));
            if (!memory_keep.empty())
                out.memory_keep.insert(out.memory_keep.end(), memory_keep.begin() + static_cast<std::ptrdiff_t>(b * tm),
                                       memory_keep.begin() + static_cast<std::ptrdiff_t>((b + 1) * tm));
        }
        return out;
    }
};

// t5_model<EncoderBlock, DecoderBlock>: token embedding ("shared"), an encoder stack of
// EncoderBlock with a bidirectional relative position bias, a decoder stack of DecoderBlock with
// a unidirectional one, and the untied lm_head or the tied, rescaled embedding. Both blocks are
// built from t5_config::block(). Storage: the embedding's and lm_head's weights.
template <class EncoderBlock, class DecoderBlock, weight_storage Storage = layers::storage_of_t<EncoderBlock>>
class t5_model {
    static_assert(layers::encoder_block<EncoderBlock>,
                  "t5_model<EncoderBlock, DecoderBlock>: EncoderBlock is not an encoder block: it needs a constructor "
                  "from block_config, visit(v), a norm_type, a static workspace_floats(config, batch, t) and "
                  "forward(x, batch, t, ws, exec, attention_inputs, trace) (docs/concepts.md: block)");
    static_assert(layers::decoder_block<DecoderBlock>,
                  "t5_model<EncoderBlock, DecoderBlock>: DecoderBlock is not a decoder block: it needs a constructor "
                  "from block_config, visit(v), a norm_type, a static workspace_floats(config, rows, memory rows), "
                  "precompute_cross(memory, batch, t, cache, exec) and step(x, batch, tq, decoder_inputs, ws, exec, "
                  "trace) (docs/concepts.md: decoder block)");

public:
    using config_type = t5_config;
    using state_type = t5_decoder_state;
    using storage_type = Storage;
    using encoder_block = EncoderBlock;
    using decoder_block = DecoderBlock;

    explicit t5_model(const t5_config& c)
        : cfg_((check(c), c)),
          shared_({c.vocab, c.d_model}),
          encoder_({c.block(), c.encoder_layers, true, layers::position_bias_config{c.heads, c.num_buckets, c.max_distance, true}}),
          decoder_({c.block(), c.decoder_layers, true, layers::position_bias_config{c.heads, c.num_buckets, c.max_distance, false}}) {
        if (!c.tied_embeddings) lm_head_.emplace(layers::linear_config{c.d_model, c.vocab, false});
    }
    template <weights::weight_source S>
    t5_model(const t5_config& c, const weights::cursor<S>& cur) : t5_model(c) {
        layers::load(*this, cur);
    }

    template <class V>
    void visit(V& v) {
        v.child("shared", shared_);
        v.child("encoder", encoder_);
        v.child("decoder", decoder_);
        if (lm_head_) v.child("lm_head", *lm_head_);
    }

    const t5_config& config() const { return cfg_; }
    const layers::embedding<Storage>& embedding() const { return shared_; }

    std::size_t workspace_floats(std::size_t batch, std::size_t enc_len, std::size_t dec_len) const {
        return std::max(encoder_.workspace_floats(batch, enc_len), decoder_.workspace_floats(batch * dec_len, batch * enc_len));
    }

    // Embeds ids (n) into out (n, d_model).
    void embed(const std::int32_t* ids, std::size_t n, float* out) const { shared_.forward(ids, n, out); }

    // Encoder over already-embedded inputs x (batch*t, d_model), in place. `keys`: which input
    // rows are real, as valid lengths (right padding) and/or HF's 0/1 attention_mask (batch, t),
    // any pattern; a hidden row is seen by no query (its own output is computed, as in HF).
    template <core::executor E = core::sequential>
    void encode(float* x, std::size_t batch, std::size_t t, const layers::key_mask& keys, core::workspace& ws,
                E&& exec = E{}, const layers::trace& tr = {}) const {
        keys.check(batch, t, "t5_model::encode mask");
        encoder_.forward(x, batch, t, ws, exec, {.keys = keys}, tr.child("encoder"));
    }

    // Prepares decoding against memory (batch*t, d_model): cross K/V computed once per layer;
    // the state keeps a copy of `keys` (the memory rows cross-attention sees).
    template <core::executor E = core::sequential>
    t5_decoder_state start(const float* memory, std::size_t batch, std::size_t t, const layers::key_mask& keys,
                           std::size_t max_len, E&& exec = E{}) const {
        keys.check(batch, t, "t5_model::start mask");
        t5_decoder_state s;
        s.batch = batch;
        s.memory_lens.assign(keys.lens.begin(), keys.lens.end());
        if (s.memory_lens.empty()) s.memory_lens.assign(batch, t);
        s.memory_keep.assign(keys.keep.begin(), keys.keep.end());
        const std::size_t inner = cfg_.heads * cfg_.d_kv;
        for (std::size_t i = 0; i < decoder_.depth(); ++i) {
            s.self.emplace_back(batch, max_len, inner);
            s.cross.emplace_back(batch, t, inner);
        }
        decoder_.precompute_cross(memory, batch, t, s.cross, exec);
        return s;
    }

    // Feeds tq tokens per sequence (ids: batch*tq) and writes logits (batch*tq, vocab).
    template <core::executor E = core::sequential>
    void step(const std::int32_t* ids, std::size_t tq, t5_decoder_state& s, float* logits, core::workspace& ws,
              E&& exec = E{}, const layers::trace& tr = {}) const {
        const std::size_t rows = s.batch * tq, w = cfg_.d_model;
        core::workspace::scope scope(ws);
        float* x = ws.alloc(rows * w).data();  // (rows, d_model)
        shared_.forward(ids, rows, x);
        decoder_.step(x, s.batch, tq, s.self, s.cross, s.memory_keys(), ws, exec, tr.child("decoder"));
        if (lm_head_) {
            lm_head_->forward(x, w, rows, logits, cfg_.vocab, exec);
        } else {  // tied (v1.0): shared^T, with the d_model^-0.5 rescale
            kernels::scale(x, 1.f / std::sqrt(static_cast<float>(w)), rows * w);
            kernels::gemm(rows, x, w, kernels::weight_nk(shared_.table().data, cfg_.vocab, w), logits, cfg_.vocab,
                          kernels::epilogue<>{}, exec);
        }
        tr("logits", logits, {rows, cfg_.vocab});
    }

    // ---- training (docs/training.md) ---------------------------------------------------------
    // A teacher-forced batch: encoder inputs (already embedded, so PaLI-3 can put image tokens
    // first) with which rows are real (valid lengths and/or a 0/1 mask), decoder input ids and
    // target ids (batch * dec_len each; a target of -100 is ignored, as in HF).
    struct saved {
        core::buffer memory;        // encoder output (batch*enc_len, d_model)
        core::buffer decoder_out;   // decoder output after the final norm (batch*dec_len, d_model)
        std::vector<std::size_t> lens;
        std::vector<std::uint8_t> keep;
        typename layers::stack<EncoderBlock>::saved encoder;
        typename layers::stack<DecoderBlock>::saved decoder;
    };

    struct loss_options {
        float label_smoothing = 0.f;
        bool recompute = false;   // keep only each block's input; backward reruns its forward
        std::size_t normaliser = 0;  // divide the summed loss by this (0: this batch's counted
                                     // targets; data-parallel runs pass the global count)
    };

    // Mean token cross-entropy of the batch (over targets != -100) and, with g, the gradients of
    // every parameter; d_inputs (batch*enc_len, d_model, may be null) receives the gradient of the
    // encoder inputs (added to it). Returns the loss and the number of counted targets.
    template <layers::gradient_sink G, core::executor E = core::sequential>
    std::pair<double, std::size_t> loss_and_grad(const float* inputs, std::size_t batch, std::size_t enc_len,
                                                 const layers::key_mask& keys, const std::int32_t* decoder_ids,
                                                 std::size_t dec_len, const std::int32_t* targets, G* g, float* d_inputs,
                                                 E&& exec = E{}, const loss_options& opt = {}) const {
        const std::size_t w = cfg_.d_model, rows = batch * dec_len;
        keys.check(batch, enc_len, "t5_model::loss_and_grad mask");
        saved s;
        s.lens.assign(keys.lens.begin(), keys.lens.end());
        if (s.lens.empty()) s.lens.assign(batch, enc_len);
        s.keep.assign(keys.keep.begin(), keys.keep.end());
        const layers::key_mask own{s.lens, s.keep};
        s.memory.assign(inputs, inputs + batch * enc_len * w);
        encoder_.forward_train(s.memory.data(), batch, enc_len, s.encoder, exec, {.keys = own}, opt.recompute);
        const layers::memory_inputs mem{s.memory.data(), enc_len, own};
        s.decoder_out.resize(rows * w);
        shared_.forward(decoder_ids, rows, s.decoder_out.data());
        decoder_.forward_train(s.decoder_out.data(), batch, dec_len, mem, s.decoder, exec, opt.recompute);
        // Logits (rows, vocab), then the loss and its gradient in place.
        core::buffer logits(rows * cfg_.vocab), h;
        const float* head_in = s.decoder_out.data();
        const float tied_scale = 1.f / std::sqrt(static_cast<float>(w));
        if (!lm_head_) {
            h.assign(s.decoder_out.begin(), s.decoder_out.end());
            kernels::scale(h.data(), tied_scale, h.size());
            head_in = h.data();
        }
        if (lm_head_) lm_head_->forward(head_in, w, rows, logits.data(), cfg_.vocab, exec);
        else kernels::gemm(rows, head_in, w, head_weight(), logits.data(), cfg_.vocab, kernels::epilogue<>{}, exec);
        std::size_t counted = 0;
        for (std::size_t i = 0; i < rows; ++i) counted += targets[i] != -100;
        if (counted == 0) return {0.0, 0};
        const float inv = 1.f / static_cast<float>(opt.normaliser ? opt.normaliser : counted);
        // One pass: the loss and (with g) its gradient in place of the logits.
        const auto ce = kernels::cross_entropy(logits.data(), cfg_.vocab, rows, cfg_.vocab, targets,
                                               g ? logits.data() : nullptr, cfg_.vocab, inv, opt.label_smoothing);
        if (!g) return {ce.loss_sum * inv, ce.count};
        // Head backward: dx (rows, d_model).
        core::buffer dx(rows * w);
        if (lm_head_) {
            lm_head_->backward(head_in, w, rows, logits.data(), cfg_.vocab, dx.data(), w, *g, exec);
        } else {
            if (float* dt = g->grad(shared_.table()))
                kernels::weight_grad(rows, logits.data(), cfg_.vocab, cfg_.vocab, head_in, w, w, dt, w, exec);
            kernels::input_grad(rows, logits.data(), cfg_.vocab, head_weight(), dx.data(), w, false, exec);
            kernels::scale(dx.data(), tied_scale, dx.size());
        }
        core::buffer d_memory(batch * enc_len * w, 0.f);
        decoder_.backward(dx.data(), d_memory.data(), batch, dec_len, mem, s.decoder, *g, exec);
        shared_.backward(decoder_ids, rows, dx.data(), *g);
        encoder_.backward(d_memory.data(), batch, enc_len, s.encoder, *g, exec, {.keys = own});
        if (d_inputs) kernels::add(d_inputs, d_memory.data(), d_inputs, d_memory.size());
        return {ce.loss_sum * inv, ce.count};
    }

    // The same from token ids for the encoder (T5 alone): embeds, runs loss_and_grad, and sends
    // the inputs' gradient to the embedding.
    template <layers::gradient_sink G, core::executor E = core::sequential>
    std::pair<double, std::size_t> loss_and_grad(const std::int32_t* encoder_ids, std::size_t batch, std::size_t enc_len,
                                                 const layers::key_mask& keys, const std::int32_t* decoder_ids,
                                                 std::size_t dec_len, const std::int32_t* targets, G* g, E&& exec = E{},
                                                 const loss_options& opt = {}) const {
        const std::size_t n = batch * enc_len;
        core::buffer x(n * cfg_.d_model), dx(g ? x.size() : 0, 0.f);
        shared_.forward(encoder_ids, n, x.data());
        auto r = loss_and_grad(x.data(), batch, enc_len, keys, decoder_ids, dec_len, targets, g, g ? dx.data() : nullptr,
                               exec, opt);
        if (g) shared_.backward(encoder_ids, n, dx.data(), *g);
        return r;
    }

    // Backward of embed(ids, n, out): dx (n, d_model) into the shared embedding's gradient.
    template <layers::gradient_sink G>
    void embed_backward(const std::int32_t* ids, std::size_t n, const float* dx, G& g) const {
        shared_.backward(ids, n, dx, g);
    }

    void release_prepacked() {
        encoder_.release_prepacked();
        decoder_.release_prepacked();
        if (lm_head_) lm_head_->release_prepacked();
    }

private:
    kernels::weight_ref<Storage> head_weight() const {
        return lm_head_ ? lm_head_->weight() : kernels::weight_nk(shared_.table().data, cfg_.vocab, cfg_.d_model);
    }

    t5_config cfg_;
    layers::embedding<Storage> shared_;
    layers::stack<EncoderBlock> encoder_;
    layers::stack<DecoderBlock> decoder_;
    std::optional<layers::linear<Storage>> lm_head_;
};

// T5 v1.1 / UL2 (gated feed-forward: tanh GELU unless the config names another activation, e.g.
// UL2's silu) and T5 v1.0 (no gate: ReLU unless the config names another) in a given storage.
template <weight_storage S = float>
using t5_v11 = t5_model<layers::t5_encoder_block<S>,
                        t5_decoder_block<layers::gated_mlp<kernels::act::by_config<kernels::act::gelu_tanh>, S>, S>>;
template <weight_storage S = float>
using t5_v10 = t5_model<layers::pre_norm_block<layers::rms_norm, layers::attention<layers::attn::unscaled, S>,
                                               layers::mlp<kernels::act::by_config<kernels::act::relu>, S>>,
                        t5_decoder_block<layers::mlp<kernels::act::by_config<kernels::act::relu>, S>, S>>;

}  // namespace pali3::models
