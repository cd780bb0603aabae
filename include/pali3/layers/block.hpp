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
        attn_.forward(h, batch, t, x, ws, exec, in.mask, in.key_lens, in.pos_bias, /*accumulate=*/true, tr.child("attn"));
        tr("attn_out", x, {rows, w});
        norm2_.forward(x, w, rows, h, w);
        mlp_.forward(h, rows, x, ws, exec, /*accumulate=*/true, tr.child("mlp"));
        tr("mlp_out", x, {rows, w});
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
              std::span<const std::size_t> memory_lens, core::workspace& ws, E&& exec = E{}, const trace& tr = {}) const {
        require_layers(self.size(), "stack.step self caches");
        require_layers(cross.size(), "stack.step cross caches");
        const relative_position_bias* pb = bias_ ? &*bias_ : nullptr;
        for (std::size_t i = 0; i < blocks_.size(); ++i)
            blocks_[i].step(x, batch, tq, decoder_inputs{self[i], cross[i], memory_lens, pb}, ws, exec,
                            tr.child("blocks").child(i));
        finish(x, batch * tq, tr);
    }

private:
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

// The two block families of PaLI-3.
template <weight_storage S = float>
using vit_block = pre_norm_block<layer_norm, attention<attn::inv_sqrt_dim, S>, mlp<kernels::act::gelu_tanh, S>>;
template <weight_storage S = float>
using t5_encoder_block = pre_norm_block<rms_norm, attention<attn::unscaled, S>, gated_mlp<kernels::act::gelu_tanh, S>>;

}  // namespace pali3::layers
