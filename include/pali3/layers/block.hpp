// Pre-norm residual transformer block and a stack of them - the composition layer.
//
//   x += Attn(Norm1(x));  x += Mlp(Norm2(x))          ("norm1", "attn", "norm2", "mlp")
//
// Structure is in the types (Norm, Attn, Mlp policies), sizes are values (block_config). The
// same fit rules run at compile time for a config fixed in the type (`fixed_block<C, ...>`:
// a static_assert per rule, whose failing comparison shows the two sizes) and at run time for
// a config read from a file (`check(block_config)` -> config_error naming both parts and sizes).
#pragma once

#include <cstddef>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "pali3/core/workspace.hpp"
#include "pali3/layers/concepts.hpp"

namespace pali3::layers {

template <class Norm, class Attn, class Mlp>
class pre_norm_block {
    static_assert(norm_layer<Norm>, "pre_norm_block<Norm, Attn, Mlp>: Norm is not a norm (docs/concepts.md: norm)");
    static_assert(attention_layer<Attn>,
                  "pre_norm_block<Norm, Attn, Mlp>: Attn is not an attention layer (docs/concepts.md: attention)");
    static_assert(mlp_layer<Mlp>, "pre_norm_block<Norm, Attn, Mlp>: Mlp is not an MLP (docs/concepts.md: mlp)");

public:
    using storage_type = storage_of_t<Attn>;
    using norm_type = Norm;
    using attention_type = Attn;
    using mlp_type = Mlp;

    explicit pre_norm_block(const block_config& c)
        : cfg_((check(c), c)), norm1_(c.norm), attn_(c.attn), norm2_(c.norm), mlp_(c.mlp) {}
    template <weights::weight_source S>
    pre_norm_block(const block_config& c, const weights::cursor<S>& cur) : pre_norm_block(c) {
        load(*this, cur);
    }

    template <class V>
    void visit(V& v) {
        v.child("norm1", norm1_);
        v.child("attn", attn_);
        v.child("norm2", norm2_);
        v.child("mlp", mlp_);
    }

    const block_config& config() const { return cfg_; }

    static std::size_t workspace_floats(const block_config& c, std::size_t batch, std::size_t t) {
        const std::size_t rows = batch * t;
        return core::workspace::padded(rows * c.attn.width) +
               std::max(Attn::workspace_floats(c.attn, rows, rows), Mlp::workspace_floats(c.mlp, rows));
    }

    // x (batch*t, width) in place. Reports "attn_out" and "mlp_out" (x after each residual).
    template <core::executor E = core::sequential>
    void forward(float* x, std::size_t batch, std::size_t t, core::workspace& ws, E&& exec = E{},
                 const attention_inputs& in = {}, const trace& tr = {}) const {
        const std::size_t w = cfg_.attn.width, rows = batch * t;
        core::workspace::scope scope(ws);
        float* h = ws.alloc(rows * w).data();  // (rows, width)
        norm1_.forward(x, w, rows, h, w);
        attn_.forward(h, batch, t, x, ws, exec, in.mask, in.keys, in.pos_bias, /*accumulate=*/true, tr.child("attn"));
        tr("attn_out", x, {rows, w});
        norm2_.forward(x, w, rows, h, w);
        mlp_.forward(h, rows, x, ws, exec, /*accumulate=*/true, tr.child("mlp"));
        tr("mlp_out", x, {rows, w});
    }

    // ---- training (docs/training.md) ---------------------------------------------------------
    // What backward() needs: the block input, x after the attention residual, and the parts'
    // own saved activations. With `recompute` set before forward_train(), only the input is
    // kept and backward() runs the forward again (less memory, one more forward).
    struct saved {
        bool recompute = false;
        core::buffer x0, x1;
        typename Attn::saved attn;
        typename Mlp::saved mlp;
    };

    // forward() keeping the activations; x (batch*t, width) in place.
    template <core::executor E = core::sequential>
    void forward_train(float* x, std::size_t batch, std::size_t t, saved& s, E&& exec = E{},
                       const attention_inputs& in = {}) const {
        const std::size_t w = cfg_.attn.width, rows = batch * t;
        s.x0.assign(x, x + rows * w);
        core::buffer h(rows * w);
        norm1_.forward(x, w, rows, h.data(), w);
        attn_.forward_train(h.data(), batch, t, h.data(), t, x, s.attn, exec, in, /*accumulate=*/true);
        s.x1.assign(x, x + rows * w);
        norm2_.forward(x, w, rows, h.data(), w);
        mlp_.forward_train(h.data(), rows, x, s.mlp, exec, /*accumulate=*/true);
        if (s.recompute) {
            s.x1 = {};
            s.attn = {};
            s.mlp = {};
        }
    }

    // dx (batch*t, width): the gradient of the block's output in, of its input out. Parameter
    // gradients into g.
    template <gradient_sink G, core::executor E = core::sequential>
    void backward(float* dx, std::size_t batch, std::size_t t, const saved& s, G& g, E&& exec = E{},
                  const attention_inputs& in = {}) const {
        if (s.recompute) {
            saved full;
            core::buffer x(s.x0);
            forward_train(x.data(), batch, t, full, exec, in);
            return backward(dx, batch, t, full, g, exec, in);
        }
        const std::size_t w = cfg_.attn.width, rows = batch * t;
        core::buffer h(rows * w), dh(rows * w);
        norm2_.forward(s.x1.data(), w, rows, h.data(), w);
        mlp_.backward(h.data(), rows, s.mlp, dx, dh.data(), g, exec);
        norm2_.backward(s.x1.data(), w, rows, dh.data(), w, dx, w, g, /*accumulate=*/true);
        norm1_.forward(s.x0.data(), w, rows, h.data(), w);
        attn_.backward(h.data(), batch, t, h.data(), t, s.attn, dx, dh.data(), dh.data(), g, exec, in);
        norm1_.backward(s.x0.data(), w, rows, dh.data(), w, dx, w, g, /*accumulate=*/true);
    }

    void release_prepacked() {
        attn_.release_prepacked();
        mlp_.release_prepacked();
    }

private:
    block_config cfg_;
    Norm norm1_;
    Attn attn_;
    Norm norm2_;
    Mlp mlp_;
};

// A block type whose config is fixed at compile time: misfits are compile errors. `Config` is
// a type with `static constexpr block_config value` (a named preset; a type rather than a
// value parameter because clang 14 takes no class-type template arguments with float members).
template <class Config, class Norm, class Attn, class Mlp>
class fixed_block : public pre_norm_block<Norm, Attn, Mlp> {
    static constexpr block_config C = Config::value;
    static_assert(C.attn.width == C.norm.width, "pali3 block: attention width != norm width");
    static_assert(C.mlp.width == C.attn.width, "pali3 block: mlp width != attention width");
    static_assert(C.attn.heads > 0, "pali3 block: attention heads must be > 0");
    static_assert(C.attn.head_dim != 0 || C.attn.heads == 0 || C.attn.width % C.attn.heads == 0,
                  "pali3 block: attention heads do not divide attention width");
    static_assert(C.mlp.hidden > 0, "pali3 block: mlp hidden size must be > 0");
    static_assert(check_fit(C).ok(), "pali3 block: config does not fit");  // keeps the two rule lists in sync

public:
    static constexpr block_config config_value = C;
    fixed_block() : pre_norm_block<Norm, Attn, Mlp>(C) {}
    template <weights::weight_source S>
    explicit fixed_block(const weights::cursor<S>& cur) : pre_norm_block<Norm, Attn, Mlp>(C, cur) {}
};

struct stack_config {
    block_config block;
    std::size_t depth = 0;
    bool final_norm = true;
    std::optional<position_bias_config> relative_bias;  // T5: a table in block 0, shared
};

// N blocks ("blocks.{i}"), an optional final norm ("norm") and an optional shared relative
// position bias ("rel_bias"). A stack of encoder blocks runs forward() over whole sequences; a
// stack of decoder blocks runs step() over new tokens against per-layer caches.
template <class Block>
class stack {
    static_assert(encoder_block<Block> || decoder_block<Block>,
                  "stack<Block>: Block is neither an encoder block nor a decoder block: it needs a constructor "
                  "from block_config, visit(v), a norm_type, a static workspace_floats(config, rows, rows) and "
                  "forward(x, batch, t, ws, exec, attention_inputs, trace) or step(x, batch, tq, decoder_inputs, ws, "
                  "exec, trace) with precompute_cross (docs/concepts.md: block)");

public:
    using block_type = Block;
    using norm_type = typename Block::norm_type;
    using storage_type = storage_of_t<Block>;

    explicit stack(const stack_config& c) : cfg_(c) {
        if (c.depth == 0) throw config_error(core::describe("empty stack", "stack", "depth > 0", 0));
        check(c.block, "stack block");
        if (c.relative_bias && c.relative_bias->heads != c.block.attn.heads)
            throw config_error(core::describe("relative bias heads != attention heads", "stack",
                                              c.block.attn.heads, c.relative_bias->heads));
        blocks_.reserve(c.depth);
        for (std::size_t i = 0; i < c.depth; ++i) blocks_.emplace_back(c.block);
        if (c.final_norm) norm_.emplace(c.block.norm);
        if (c.relative_bias) bias_.emplace(*c.relative_bias);
    }
    template <weights::weight_source S>
    stack(const stack_config& c, const weights::cursor<S>& cur) : stack(c) {
        load(*this, cur);
    }

    template <class V>
    void visit(V& v) {
        if (bias_) v.child("rel_bias", *bias_);
        for (std::size_t i = 0; i < blocks_.size(); ++i) v.child("blocks." + std::to_string(i), blocks_[i]);
        if (norm_) v.child("norm", *norm_);
    }

    const stack_config& config() const { return cfg_; }
    std::size_t depth() const { return blocks_.size(); }
    const Block& block(std::size_t i) const { return blocks_.at(i); }

    // Encoder stacks: rows = batch * t. Decoder stacks: rows = batch * tq new tokens, memory
    // rows = batch * encoder length.
    std::size_t workspace_floats(std::size_t batch, std::size_t t) const
        requires encoder_block<Block>
    {
        return Block::workspace_floats(cfg_.block, batch, t);
    }
    std::size_t workspace_floats(std::size_t rows, std::size_t memory_rows) const
        requires(decoder_block<Block> && !encoder_block<Block>)
    {
        return Block::workspace_floats(cfg_.block, rows, memory_rows);
    }

    // x (batch*t, width) in place through every block, then the final norm. The stack's
    // relative position bias (if any) is passed to every block, overriding in.pos_bias.
    template <core::executor E = core::sequential>
        requires encoder_block<Block>
    void forward(float* x, std::size_t batch, std::size_t t, core::workspace& ws, E&& exec = E{},
                 const attention_inputs& in = {}, const trace& tr = {}) const {
        attention_inputs with_bias = in;
        if (bias_) with_bias.pos_bias = &*bias_;
        for (std::size_t i = 0; i < blocks_.size(); ++i)
            blocks_[i].forward(x, batch, t, ws, exec, with_bias, tr.child("blocks").child(i));
        finish(x, batch * t, tr);
    }

    // Decoder stacks: fills cross[i] with block i's keys/values of memory (batch*t, width).
    template <core::executor E = core::sequential>
        requires decoder_block<Block>
    void precompute_cross(const float* memory, std::size_t batch, std::size_t t, std::span<kv_cache> cross,
                          E&& exec = E{}) const {
        require_layers(cross.size(), "stack.precompute_cross");
        for (std::size_t i = 0; i < blocks_.size(); ++i) blocks_[i].precompute_cross(memory, batch, t, cross[i], exec);
    }

    // Decoder stacks: tq new tokens per sequence, x (batch*tq, width) in place; self[i] and
    // cross[i] are block i's caches.
    template <core::executor E = core::sequential>
        requires decoder_block<Block>
    void step(float* x, std::size_t batch, std::size_t tq, std::span<kv_cache> self, std::span<const kv_cache> cross,
              const key_mask& memory_keys, core::workspace& ws, E&& exec = E{}, const trace& tr = {}) const {
        require_layers(self.size(), "stack.step self caches");
        require_layers(cross.size(), "stack.step cross caches");
        const relative_position_bias* pb = bias_ ? &*bias_ : nullptr;
        for (std::size_t i = 0; i < blocks_.size(); ++i)
            blocks_[i].step(x, batch, tq, decoder_inputs{self[i], cross[i], memory_keys, pb}, ws, exec,
                            tr.child("blocks").child(i));
        finish(x, batch * tq, tr);
    }

    // ---- training (docs/training.md) ---------------------------------------------------------
    struct saved {
        std::vector<typename Block::saved> blocks;
        core::buffer pre_norm;  // input of the final norm
    };

    // forward() keeping every block's activations (recompute: keep only each block's input).
    template <core::executor E = core::sequential>
        requires encoder_block<Block>
    void forward_train(float* x, std::size_t batch, std::size_t t, saved& s, E&& exec = E{},
                       const attention_inputs& in = {}, bool recompute = false) const {
        attention_inputs with_bias = in;
        if (bias_) with_bias.pos_bias = &*bias_;
        s.blocks.resize(blocks_.size());  // keeps the buffers of a previous step
        for (std::size_t i = 0; i < blocks_.size(); ++i) {
            s.blocks[i].recompute = recompute;
            blocks_[i].forward_train(x, batch, t, s.blocks[i], exec, with_bias);
        }
        finish_train(x, batch * t, s);
    }

    // dx (batch*t, width): gradient of the output in, of the input out.
    template <gradient_sink G, core::executor E = core::sequential>
        requires encoder_block<Block>
    void backward(float* dx, std::size_t batch, std::size_t t, const saved& s, G& g, E&& exec = E{},
                  const attention_inputs& in = {}) const {
        attention_inputs with_bias = in;
        if (bias_) with_bias.pos_bias = &*bias_;
        backward_norm(dx, batch * t, s, g);
        for (std::size_t i = blocks_.size(); i-- > 0;) blocks_[i].backward(dx, batch, t, s.blocks[i], g, exec, with_bias);
    }

    // Decoder stacks, teacher forced: t target positions per sequence, x (batch*t, width) in
    // place, causal self-attention, cross-attention to memory (batch*memory.length, width).
    template <core::executor E = core::sequential>
        requires decoder_block<Block>
    void forward_train(float* x, std::size_t batch, std::size_t t, const memory_inputs& memory, saved& s,
                       E&& exec = E{}, bool recompute = false) const {
        const relative_position_bias* pb = bias_ ? &*bias_ : nullptr;
        s.blocks.resize(blocks_.size());  // keeps the buffers of a previous step
        for (std::size_t i = 0; i < blocks_.size(); ++i) {
            s.blocks[i].recompute = recompute;
            blocks_[i].forward_train(x, batch, t, memory, pb, s.blocks[i], exec);
        }
        finish_train(x, batch * t, s);
    }

    // dx as for encoder stacks; the memory's gradient is added to d_memory (batch*memory.length, width).
    template <gradient_sink G, core::executor E = core::sequential>
        requires decoder_block<Block>
    void backward(float* dx, float* d_memory, std::size_t batch, std::size_t t, const memory_inputs& memory,
                  const saved& s, G& g, E&& exec = E{}) const {
        const relative_position_bias* pb = bias_ ? &*bias_ : nullptr;
        backward_norm(dx, batch * t, s, g);
        for (std::size_t i = blocks_.size(); i-- > 0;)
            blocks_[i].backward(dx, d_memory, batch, t, memory, pb, s.blocks[i], g, exec);
    }

    void release_prepacked() {
        for (auto& b : blocks_) b.release_prepacked();
    }

private:
    void finish_train(float* x, std::size_t rows, saved& s) const {
        if (!norm_) return;
        const std::size_t w = cfg_.block.attn.width;
        s.pre_norm.assign(x, x + rows * w);
        norm_->forward(x, w, rows, x, w);
    }
    template <class G>
    void backward_norm(float* dx, std::size_t rows, const saved& s, G& g) const {
        if (!norm_) return;
        const std::size_t w = cfg_.block.attn.width;
        core::buffer dy(dx, dx + rows * w);
        norm_->backward(s.pre_norm.data(), w, rows, dy.data(), w, dx, w, g);
    }

    void finish(float* x, std::size_t rows, const trace& tr) const {
        if (!norm_) return;
        const std::size_t w = cfg_.block.attn.width;
        norm_->forward(x, w, rows, x, w);
        tr("norm_out", x, {rows, w});
    }
    void require_layers(std::size_t n, std::string_view where) const {
        if (n != blocks_.size())
            throw shape_error(core::describe("one cache per decoder layer", where, blocks_.size(), n));
    }

    stack_config cfg_;
    std::vector<Block> blocks_;
    std::optional<norm_type> norm_;
    std::optional<relative_position_bias> bias_;
};

// The two block families of PaLI-3. Their MLPs run tanh GELU fused in the GEMM epilogue unless
// the block's config names another activation (act::by_config: HF's hidden_act / feed_forward_proj).
template <weight_storage S = float>
using vit_block = pre_norm_block<layer_norm, attention<attn::inv_sqrt_dim, S>, mlp<kernels::act::by_config<kernels::act::gelu_tanh>, S>>;
template <weight_storage S = float>
using t5_encoder_block =
    pre_norm_block<rms_norm, attention<attn::unscaled, S>, gated_mlp<kernels::act::by_config<kernels::act::gelu_tanh>, S>>;

}  // namespace pali3::layers
