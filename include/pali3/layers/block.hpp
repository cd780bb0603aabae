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
#include "pali3/layers/attention.hpp"
#include "pali3/layers/mlp.hpp"
#include "pali3/layers/norm.hpp"
#include "pali3/layers/position_bias.hpp"

namespace pali3::layers {

struct block_config {
    norm_config norm;
    attention_config attn;
    mlp_config mlp;
};

// The first rule a block config breaks, as (what, part A size, part B size); ok() when none.
struct fit_result {
    const char* what = nullptr;
    std::size_t a = 0, b = 0;
    constexpr bool ok() const { return what == nullptr; }
};

constexpr fit_result check_fit(const block_config& c) {
    if (c.attn.width != c.norm.width) return {"attention width != norm width", c.attn.width, c.norm.width};
    if (c.mlp.width != c.attn.width) return {"mlp width != attention width", c.mlp.width, c.attn.width};
    if (c.attn.heads == 0) return {"attention heads must be > 0", c.attn.heads, 1};
    if (c.attn.head_dim == 0 && c.attn.width % c.attn.heads != 0)
        return {"attention heads do not divide attention width", c.attn.heads, c.attn.width};
    if (c.mlp.hidden == 0) return {"mlp hidden size must be > 0", c.mlp.hidden, 1};
    return {};
}

inline void check(const block_config& c, std::string_view where = "block") {
    const fit_result r = check_fit(c);
    if (!r.ok())
        throw config_error(core::describe("block parts do not fit", where, r.what,
                                          std::to_string(r.a) + " vs " + std::to_string(r.b)));
}

template <class Norm, class Attn, class Mlp>
class pre_norm_block {
public:
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
                 const kernels::attention_mask& mask = {}, std::span<const std::size_t> key_lens = {},
                 const relative_position_bias* pos_bias = nullptr, const trace& tr = {}) const {
        const std::size_t w = cfg_.attn.width, rows = batch * t;
        core::workspace::scope scope(ws);
        float* h = ws.alloc(rows * w).data();  // (rows, width)
        norm1_.forward(x, w, rows, h, w);
        attn_.forward(h, batch, t, x, ws, exec, mask, key_lens, pos_bias, /*accumulate=*/true, tr.child("attn"));
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
// position bias ("rel_bias").
template <class Block>
class stack {
public:
    using block_type = Block;
    using norm_type = typename Block::norm_type;

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
    std::size_t workspace_floats(std::size_t batch, std::size_t t) const {
        return Block::workspace_floats(cfg_.block, batch, t);
    }

    template <core::executor E = core::sequential>
    void forward(float* x, std::size_t batch, std::size_t t, core::workspace& ws, E&& exec = E{},
                 const kernels::attention_mask& mask = {}, std::span<const std::size_t> key_lens = {},
                 const trace& tr = {}) const {
        const relative_position_bias* pb = bias_ ? &*bias_ : nullptr;
        for (std::size_t i = 0; i < blocks_.size(); ++i)
            blocks_[i].forward(x, batch, t, ws, exec, mask, key_lens, pb, tr.child("blocks").child(i));
        if (norm_) {
            const std::size_t w = cfg_.block.attn.width;
            norm_->forward(x, w, batch * t, x, w);
            tr("norm_out", x, {batch * t, w});
        }
    }

private:
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
