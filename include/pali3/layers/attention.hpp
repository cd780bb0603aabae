// Multi-head attention: self, cross, and incremental (KV cache). Policies are types:
//   Scaling - attn::inv_sqrt_dim (ViT/SigLIP) or attn::unscaled (T5: no 1/sqrt(d));
//   Storage - weight storage of the q/k/v/o matrices.
// Sizes and the bias switch are config values; masks and the T5 relative position bias (owned
// by the stack, shared by its layers) are forward arguments. Sequences of a batch are stored
// consecutively: (batch * t, width). Heads run in parallel on the executor; each runs the tiled
// online-softmax kernel, so memory does not grow with t^2.
#pragma once

#include <algorithm>
#include <cmath>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "pali3/core/workspace.hpp"
#include "pali3/kernels/attention.hpp"
#include "pali3/layers/linear.hpp"
#include "pali3/layers/position_bias.hpp"

namespace pali3::layers {

// Which keys of each sequence of a batch are real; either part, both, or neither (all keys seen):
//   lens - one valid length per sequence (right padding): keys >= lens[b] are hidden;
//   keep - (batch, keys) row-major, 1 = seen, 0 = hidden, any pattern (HF's attention_mask):
//          left padding, holes, packed segments. Every row keeps at least one key.
// A query is never hidden: a padded position still attends to its sequence's kept keys, as in HF.
// Views only: the caller owns the storage for the call (t5_decoder_state keeps copies).
struct key_mask {
    std::span<const std::size_t> lens{};
    std::span<const std::uint8_t> keep{};

    key_mask() = default;
    // Valid lengths alone (a vector or span of them converts, as the length-only API took).
    template <class R>
        requires std::convertible_to<const R&, std::span<const std::size_t>>
    key_mask(const R& valid_lengths) : lens(valid_lengths) {}  // NOLINT(google-explicit-constructor)
    key_mask(std::span<const std::size_t> valid_lengths, std::span<const std::uint8_t> kept)
        : lens(valid_lengths), keep(kept) {}

    bool empty() const { return lens.empty() && keep.empty(); }

    // The shapes against a batch with `keys` keys per sequence, and the values of keep (0 or 1,
    // at least one 1 per row within its length); shape_error / value_error naming `where`.
    void check(std::size_t batch, std::size_t keys, std::string_view where) const {
        if (!lens.empty() && lens.size() != batch)
            throw shape_error(core::describe("one key length per sequence", where, batch, lens.size()));
        if (keep.empty()) return;
        if (keep.size() != batch * keys)
            throw shape_error(core::describe("key mask size", where,
                                             "batch x keys = " + std::to_string(batch) + " x " + std::to_string(keys),
                                             keep.size()));
        for (std::size_t b = 0; b < batch; ++b) {
            const std::size_t end = lens.empty() ? keys : std::min(keys, lens[b]);
            bool any = false;
            for (std::size_t j = 0; j < keys; ++j) {
                const std::uint8_t v = keep[b * keys + j];
                if (v > 1)
                    throw value_error(core::describe("key mask value", std::string(where) + " row " + std::to_string(b),
                                                     "0 or 1", "value " + std::to_string(v) + " at position " + std::to_string(j)));
                any = any || (v == 1 && j < end);
            }
            if (!any)
                throw value_error(core::describe("key mask row hides every key", std::string(where) + " row " + std::to_string(b),
                                                 "at least one 1", "none"));
        }
    }

    // Sequence b's part, folded into the kernel's mask (whose structure, causal or prefix, stays).
    kernels::attention_mask apply(kernels::attention_mask m, std::size_t b, std::size_t keys) const {
        if (!lens.empty()) m.key_len = std::min(m.key_len, lens[b]);
        if (!keep.empty()) m.keep = keep.data() + b * keys;
        return m;
    }
};

// What a block's attention sees besides its input rows (all optional): structure of the mask
// (causal, prefix), which keys of each sequence are real (padding), and the T5 relative
// position bias table that the stack owns and every block shares.
struct attention_inputs {
    kernels::attention_mask mask{};
    key_mask keys{};
    const relative_position_bias* pos_bias = nullptr;
};

namespace attn {
struct inv_sqrt_dim {
    static float scale(std::size_t head_dim) { return 1.f / std::sqrt(static_cast<float>(head_dim)); }
};
struct unscaled {
    static float scale(std::size_t) { return 1.f; }
};
}  // namespace attn

struct attention_config {
    std::size_t width = 0;     // model width (input and output)
    std::size_t heads = 0;
    std::size_t head_dim = 0;  // 0: width / heads (ViT); T5 sets d_kv explicitly
    bool bias = true;          // q/k/v/o biases (ViT: yes, T5: no)

    std::size_t dim_per_head() const { return head_dim ? head_dim : (heads ? width / heads : 0); }
    std::size_t inner() const { return heads * dim_per_head(); }
};

inline void check(const attention_config& c, std::string_view where) {
    if (c.width == 0 || c.heads == 0)
        throw config_error(core::describe("attention with no width or heads", where, "width > 0 and heads > 0",
                                          "width=" + std::to_string(c.width) + ", heads=" + std::to_string(c.heads)));
    if (c.head_dim == 0 && c.width % c.heads != 0)
        throw config_error(core::describe("attention heads do not divide the width", where,
                                          "width % heads == 0", std::to_string(c.width) + " % " + std::to_string(c.heads) +
                                                                    " = " + std::to_string(c.width % c.heads)));
}

// Keys and values of past positions, per layer: (batch, positions, inner) each, rows `stride()`
// floats apart. Decoder self-attention appends to it every step; cross-attention fills it once from
// the encoder memory. `capacity` is the most positions it may ever hold (the request's cap); memory
// is taken as positions come, doubling (a 4096-token cap costs nothing until the tokens come).
class kv_cache {
public:
    static constexpr std::size_t initial_positions = 64;

    kv_cache(std::size_t batch, std::size_t capacity, std::size_t inner)
        : kv_cache(batch, capacity, inner, std::min(capacity, initial_positions)) {}
    kv_cache(std::size_t batch, std::size_t capacity, std::size_t inner, std::size_t held)
        : batch_(batch), capacity_(capacity), inner_(inner), held_(std::min(held, capacity)) {
        // The cap itself must be a size that can exist, checked now rather than at the growth that wraps.
        (void)core::checked_mul("KV cache (batch x positions x width)", batch, capacity, inner);
        k_.resize(batch_ * held_ * inner_);
        v_.resize(k_.size());
    }

    std::size_t batch() const { return batch_; }
    std::size_t capacity() const { return capacity_; }
    std::size_t held() const { return held_; }  // positions allocated per row
    std::size_t stride() const { return held_ * inner_; }  // floats from one row to the next
    std::size_t inner() const { return inner_; }
    std::size_t length() const { return length_; }
    void clear() { length_ = 0; }

    float* keys(std::size_t b) { return k_.data() + b * stride(); }
    float* values(std::size_t b) { return v_.data() + b * stride(); }
    const float* keys(std::size_t b) const { return k_.data() + b * stride(); }
    const float* values(std::size_t b) const { return v_.data() + b * stride(); }

    void require_room(std::size_t extra, std::string_view where) const {
        if (extra > capacity_ - length_)
            throw value_error(core::describe("KV cache full", where, "at most " + std::to_string(capacity_) + " positions",
                                             std::to_string(length_) + " + " + std::to_string(extra)));
    }
    // require_room(), then memory for `extra` more positions (pointers from keys()/values() change).
    void make_room(std::size_t extra, std::string_view where) {
        require_room(extra, where);
        if (length_ + extra > held_) reserve(std::max(length_ + extra, std::min(capacity_, 2 * held_)));
    }
    // Memory for `positions` per row (at most the capacity), keeping what is held.
    void reserve(std::size_t positions) {
        positions = std::min(positions, capacity_);
        if (positions <= held_) return;
        std::vector<float> k(batch_ * positions * inner_), v(k.size());
        for (std::size_t b = 0; b < batch_; ++b) {
            std::copy_n(keys(b), length_ * inner_, k.data() + b * positions * inner_);
            std::copy_n(values(b), length_ * inner_, v.data() + b * positions * inner_);
        }
        k_.swap(k);
        v_.swap(v);
        held_ = positions;
    }
    void advance(std::size_t n) { length_ += n; }

    // A cache whose row b is row src[b] of this one (beam search expands and reorders hypotheses).
    kv_cache gather(std::span<const std::size_t> src) const {
        kv_cache out(src.size(), capacity_, inner_, held_);
        out.length_ = length_;
        for (std::size_t b = 0; b < src.size(); ++b) {
            if (src[b] >= batch_)
                throw value_error(core::describe("KV cache row out of range", "kv_cache::gather", "< " + std::to_string(batch_), src[b]));
            std::copy_n(keys(src[b]), length_ * inner_, out.keys(b));
            std::copy_n(values(src[b]), length_ * inner_, out.values(b));
        }
        return out;
    }

private:
    std::size_t batch_, capacity_, inner_, held_;
    std::size_t length_ = 0;
    std::vector<float> k_, v_;
};

template <class Scaling = attn::inv_sqrt_dim, weight_storage Storage = float>
class attention {
public:
    using storage_type = Storage;

    explicit attention(const attention_config& c)
        : cfg_((check(c, "attention"), c)),
          q_({c.width, c.inner(), c.bias}),
          k_({c.width, c.inner(), c.bias}),
          v_({c.width, c.inner(), c.bias}),
          o_({c.inner(), c.width, c.bias}) {}
    template <weights::weight_source S>
    attention(const attention_config& c, const weights::cursor<S>& cur) : attention(c) {
        load(*this, cur);
    }

    template <class V>
    void visit(V& v) {
        v.child("q", q_);
        v.child("k", k_);
        v.child("v", v_);
        v.child("o", o_);
    }

    const attention_config& config() const { return cfg_; }

    static std::size_t workspace_floats(const attention_config& c, std::size_t q_rows, std::size_t kv_rows) {
        return 2 * core::workspace::padded(q_rows * c.inner()) + 2 * core::workspace::padded(kv_rows * c.inner());
    }

    // Self-attention over `batch` sequences of t tokens: y (batch*t, width) = o(attn(x)) [+ y].
    // `keys` (optional) marks padding or any hidden keys; `mask` adds causal/prefix structure.
    template <core::executor E = core::sequential>
    void forward(const float* x, std::size_t batch, std::size_t t, float* y, core::workspace& ws, E&& exec = E{},
                 const kernels::attention_mask& mask = {}, const key_mask& keys = {},
                 const relative_position_bias* pos_bias = nullptr, bool accumulate = false, const trace& tr = {}) const {
        forward_cross(x, batch, t, x, t, y, ws, exec, mask, keys, pos_bias, accumulate, tr);
    }

    // Cross-attention: queries from x (batch*tq rows), keys/values from memory (batch*tm rows).
    template <core::executor E = core::sequential>
    void forward_cross(const float* x, std::size_t batch, std::size_t tq, const float* memory, std::size_t tm, float* y,
                       core::workspace& ws, E&& exec = E{}, const kernels::attention_mask& mask = {},
                       const key_mask& keys = {}, const relative_position_bias* pos_bias = nullptr,
                       bool accumulate = false, const trace& tr = {}) const {
        keys.check(batch, tm, "attention keys");
        const std::size_t inner = cfg_.inner();
        core::workspace::scope scope(ws);
        float* k = ws.alloc(batch * tm * inner).data();  // (batch*tm, inner)
        float* v = ws.alloc(batch * tm * inner).data();
        k_.forward(memory, cfg_.width, batch * tm, k, inner, exec);
        v_.forward(memory, cfg_.width, batch * tm, v, inner, exec);
        attend_and_project(x, batch, tq, [&](std::size_t b) { return k + b * tm * inner; },
                           [&](std::size_t b) { return v + b * tm * inner; }, inner, tm, y, ws, exec, mask, keys,
                           pos_bias, accumulate, tr);
    }

    // Fills `cache` with the keys/values of the encoder memory (batch*tm rows) for cross-attention.
    template <core::executor E = core::sequential>
    void precompute_cross(const float* memory, std::size_t batch, std::size_t tm, kv_cache& cache, E&& exec = E{}) const {
        check_cache(cache, batch);
        cache.clear();
        cache.make_room(tm, "attention.precompute_cross");
        for (std::size_t b = 0; b < batch; ++b) {
            k_.forward(memory + b * tm * cfg_.width, cfg_.width, tm, cache.keys(b), cfg_.inner(), exec);
            v_.forward(memory + b * tm * cfg_.width, cfg_.width, tm, cache.values(b), cfg_.inner(), exec);
        }
        cache.advance(tm);
    }

    // Cross-attention against a precomputed cache (the decoder's per-step path).
    template <core::executor E = core::sequential>
    void forward_cached_cross(const float* x, std::size_t batch, std::size_t tq, const kv_cache& cache, float* y,
                              core::workspace& ws, E&& exec = E{}, const key_mask& keys = {},
                              bool accumulate = false, const trace& tr = {}) const {
        check_cache(cache, batch);
        keys.check(batch, cache.length(), "cross-attention keys");
        const std::size_t inner = cfg_.inner();
        attend_and_project(x, batch, tq, [&](std::size_t b) { return cache.keys(b); },
                           [&](std::size_t b) { return cache.values(b); }, inner, cache.length(), y, ws, exec, {},
                           keys, nullptr, accumulate, tr);
    }

    // Causal self-attention for tq new tokens per sequence, appending their keys/values to the
    // cache first: equals forward() with a causal mask over the whole sequence, one step at a time.
    template <core::executor E = core::sequential>
    void forward_step(const float* x, std::size_t batch, std::size_t tq, kv_cache& cache, float* y,
                      core::workspace& ws, E&& exec = E{}, const relative_position_bias* pos_bias = nullptr,
                      bool accumulate = false, const trace& tr = {}) const {
        check_cache(cache, batch);
        cache.make_room(tq, "attention.forward_step");
        const std::size_t inner = cfg_.inner(), past = cache.length();
        if (tq == 1 && batch > 1) {
            // One new position per sequence: the sequences' rows of the cache are a fixed stride
            // apart, so every row's key (value) comes from one product that reads W_k (W_v) once,
            // not once per row (a 4-beam step of the 5B decoder read both 4 times).
            const std::size_t stride = cache.stride();
            k_.forward(x, cfg_.width, batch, cache.keys(0) + past * inner, stride, exec);
            v_.forward(x, cfg_.width, batch, cache.values(0) + past * inner, stride, exec);
        } else {
            for (std::size_t b = 0; b < batch; ++b) {
                k_.forward(x + b * tq * cfg_.width, cfg_.width, tq, cache.keys(b) + past * inner, inner, exec);
                v_.forward(x + b * tq * cfg_.width, cfg_.width, tq, cache.values(b) + past * inner, inner, exec);
            }
        }
        cache.advance(tq);
        kernels::attention_mask mask;
        mask.causal = true;
        mask.q_offset = past;
        const kv_cache& c = cache;
        attend_and_project(x, batch, tq, [&](std::size_t b) { return c.keys(b); },
                           [&](std::size_t b) { return c.values(b); }, inner, c.length(), y, ws, exec, mask, {},
                           pos_bias, accumulate, tr);
    }

    // ---- training -------------------------------------------------------------------------
    // What backward() needs from forward_train(): the projected queries, keys, values and the
    // heads' context (before the output projection).
    struct saved {
        core::buffer q, k, v, ctx;  // (batch*tq, inner), (batch*tm, inner) x 2, (batch*tq, inner)
    };

    // forward_cross() (forward() when memory == x and tm == tq) keeping the activations.
    template <core::executor E = core::sequential>
    void forward_train(const float* x, std::size_t batch, std::size_t tq, const float* memory, std::size_t tm, float* y,
                       saved& s, E&& exec = E{}, const attention_inputs& in = {}, bool accumulate = false) const {
        in.keys.check(batch, tm, "attention keys");
        const std::size_t inner = cfg_.inner(), dh = cfg_.dim_per_head(), heads = cfg_.heads;
        check_bias(in.pos_bias);
        s.q.resize(batch * tq * inner);
        s.k.resize(batch * tm * inner);
        s.v.resize(batch * tm * inner);
        s.ctx.resize(batch * tq * inner);
        q_.forward(x, cfg_.width, batch * tq, s.q.data(), inner, exec);
        k_.forward(memory, cfg_.width, batch * tm, s.k.data(), inner, exec);
        v_.forward(memory, cfg_.width, batch * tm, s.v.data(), inner, exec);
        const float scale = Scaling::scale(dh);
        exec.run(batch * heads, [&](std::size_t task) {
            const std::size_t b = task / heads, h = task % heads;
            const kernels::attention_mask m = in.keys.apply(in.mask, b, tm);
            std::vector<float> bias_values;
            kernels::distance_bias bias;
            if (in.pos_bias) bias = in.pos_bias->by_distance(h, m.q_offset, tq, tm, bias_values);
            kernels::attention(tq, tm, dh, s.q.data() + b * tq * inner + h * dh, inner, s.k.data() + b * tm * inner + h * dh,
                               inner, s.v.data() + b * tm * inner + h * dh, inner, s.ctx.data() + b * tq * inner + h * dh,
                               inner, scale, m, bias);
        });
        o_.forward(s.ctx.data(), inner, batch * tq, y, cfg_.width, exec, accumulate);
    }

    // Backward of forward_train(): given dy (batch*tq, width), writes dx (batch*tq, width) and
    // d_memory (batch*tm, width) (added to them when accumulate). For self-attention pass the
    // same pointer for x and memory and for dx and d_memory: the three input products then sum
    // into it. Parameter gradients (and the relative position bias table's) go to g.
    template <gradient_sink G, core::executor E = core::sequential>
    void backward(const float* x, std::size_t batch, std::size_t tq, const float* memory, std::size_t tm,
                  const saved& s, const float* dy, float* dx, float* d_memory, G& g, E&& exec = E{},
                  const attention_inputs& in = {}, bool accumulate = false) const {
        const std::size_t inner = cfg_.inner(), dh = cfg_.dim_per_head(), heads = cfg_.heads;
        check_bias(in.pos_bias);
        core::buffer dctx(batch * tq * inner), dq(batch * tq * inner, 0.f), dk(batch * tm * inner, 0.f),
            dv(batch * tm * inner, 0.f);
        o_.backward(s.ctx.data(), inner, batch * tq, dy, cfg_.width, dctx.data(), inner, g, exec);
        const float scale = Scaling::scale(dh);
        const std::size_t span = in.mask.q_offset + tq + tm;  // distances a call can see
        core::buffer d_bias(in.pos_bias ? batch * heads * span : 0, 0.f);
        exec.run(batch * heads, [&](std::size_t task) {
            const std::size_t b = task / heads, h = task % heads;
            const kernels::attention_mask m = in.keys.apply(in.mask, b, tm);
            std::vector<float> bias_values;
            kernels::distance_bias bias;
            if (in.pos_bias) bias = in.pos_bias->by_distance(h, m.q_offset, tq, tm, bias_values);
            kernels::attention_grads gr{dq.data() + b * tq * inner + h * dh, inner, dk.data() + b * tm * inner + h * dh,
                                        inner, dv.data() + b * tm * inner + h * dh, inner,
                                        in.pos_bias ? d_bias.data() + task * span : nullptr};
            kernels::attention_backward(tq, tm, dh, s.q.data() + b * tq * inner + h * dh, inner,
                                        s.k.data() + b * tm * inner + h * dh, inner, s.v.data() + b * tm * inner + h * dh,
                                        inner, s.ctx.data() + b * tq * inner + h * dh, inner,
                                        dctx.data() + b * tq * inner + h * dh, inner, scale, m, bias, gr);
        });
        if (in.pos_bias)
            for (std::size_t task = 0; task < batch * heads; ++task)
                in.pos_bias->backward(task % heads, in.mask.q_offset, tq, tm, d_bias.data() + task * span, g);
        const bool self = x == memory && dx == d_memory;
        q_.backward(x, cfg_.width, batch * tq, dq.data(), inner, dx, cfg_.width, g, exec, accumulate);
        // The key bias adds the same q.b_k to every score of a query row, which softmax ignores:
        // its gradient is exactly zero (summing dk would give only rounding noise, which AdamW
        // would turn into steps of ~lr). It is left at zero.
        k_.backward(memory, cfg_.width, batch * tm, dk.data(), inner, d_memory, cfg_.width, g, exec,
                    self ? dx != nullptr : accumulate, /*bias_grad=*/false);
        v_.backward(memory, cfg_.width, batch * tm, dv.data(), inner, d_memory, cfg_.width, g, exec, d_memory != nullptr);
    }

    void release_prepacked() {
        q_.release_prepacked();
        k_.release_prepacked();
        v_.release_prepacked();
        o_.release_prepacked();
    }

private:
    void check_bias(const relative_position_bias* pos_bias) const {
        if (pos_bias && pos_bias->config().heads != cfg_.heads)
            throw config_error(core::describe("position bias heads", "attention", cfg_.heads, pos_bias->config().heads));
    }
    void check_cache(const kv_cache& cache, std::size_t batch) const {
        if (cache.batch() != batch || cache.inner() != cfg_.inner())
            throw shape_error(core::describe("KV cache shape", "attention",
                                             "batch " + std::to_string(batch) + ", inner " + std::to_string(cfg_.inner()),
                                             "batch " + std::to_string(cache.batch()) + ", inner " + std::to_string(cache.inner())));
    }

    template <class KeysOf, class ValuesOf, class E>
    void attend_and_project(const float* x, std::size_t batch, std::size_t tq, KeysOf keys_of, ValuesOf values_of,
                            std::size_t ld_kv, std::size_t tk, float* y, core::workspace& ws, E& exec,
                            const kernels::attention_mask& mask, const key_mask& keys,
                            const relative_position_bias* pos_bias, bool accumulate, const trace& tr) const {
        const std::size_t inner = cfg_.inner(), dh = cfg_.dim_per_head(), heads = cfg_.heads;
        if (pos_bias && pos_bias->config().heads != heads)
            throw config_error(core::describe("position bias heads", "attention", heads, pos_bias->config().heads));
        core::workspace::scope scope(ws);
        float* q = ws.alloc(batch * tq * inner).data();    // (batch*tq, inner)
        float* ctx = ws.alloc(batch * tq * inner).data();  // (batch*tq, inner)
        q_.forward(x, cfg_.width, batch * tq, q, inner, exec);
        const float scale = Scaling::scale(dh);
        // bf16 models: the score and context products on bf16 operands too (AMX tiles or AVX512-BF16 where available).
        kernels::attention_tiling tiling;
        tiling.bf16_products = std::is_same_v<Storage, bf16>;
        exec.run(batch * heads, [&](std::size_t task) {
            const std::size_t b = task / heads, h = task % heads;
            const kernels::attention_mask m = keys.apply(mask, b, tk);
            std::vector<float> bias_values;
            kernels::distance_bias bias;
            if (pos_bias) bias = pos_bias->by_distance(h, m.q_offset, tq, tk, bias_values);
            kernels::attention(tq, tk, dh, q + b * tq * inner + h * dh, inner, keys_of(b) + h * dh, ld_kv,
                               values_of(b) + h * dh, ld_kv, ctx + b * tq * inner + h * dh, inner, scale, m, bias,
                               tiling);
        });
        tr("context", ctx, {batch * tq, inner});
        o_.forward(ctx, inner, batch * tq, y, cfg_.width, exec, accumulate);
    }

    attention_config cfg_;
    linear<Storage> q_, k_, v_, o_;
};

}  // namespace pali3::layers
