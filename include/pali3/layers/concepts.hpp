// What a part must provide to be composed: the block config and its fit rules, the grouped
// inputs a block's attention sees, and one C++20 concept per kind of part (norm, attention, MLP,
// encoder block, decoder block). Every model template static_asserts these with a message in
// plain words; docs/concepts.md says per concept what a part needs, with a worked example.
#pragma once

#include <concepts>
#include <cstddef>
#include <span>
#include <string>
#include <string_view>

#include "pali3/core/threading.hpp"
#include "pali3/core/workspace.hpp"
#include "pali3/layers/attention.hpp"
#include "pali3/layers/mlp.hpp"
#include "pali3/layers/module.hpp"
#include "pali3/layers/norm.hpp"
#include "pali3/layers/position_bias.hpp"

namespace pali3::layers {

// A transformer block's sizes: the three parts' configs. Builders (vit_config::block(),
// t5_config::block()) fill it from one width so no size is written twice.
struct block_config {
    norm_config norm;
    attention_config attn;
    mlp_config mlp;
};

// The first rule a config breaks, as (what, part A size, part B size); ok() when none.
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

// The run-time form of a fit rule: config_error "<context> (at <where>): expected <rule>, found a vs b".
inline void require_fit(const fit_result& r, std::string_view context, std::string_view where) {
    if (!r.ok())
        throw config_error(core::describe(context, where, r.what, std::to_string(r.a) + " vs " + std::to_string(r.b)));
}

inline void check(const block_config& c, std::string_view where = "block") {
    require_fit(check_fit(c), "block parts do not fit", where);
}

// attention_inputs (what a block's attention sees besides its input rows) is in attention.hpp.

// A decoder's training forward sees the whole encoder memory: (batch * length, width) rows,
// and which of each sequence's rows are real (valid lengths and/or a 0/1 mask; empty: all).
struct memory_inputs {
    const float* memory = nullptr;
    std::size_t length = 0;
    key_mask keys{};
};

// What one decoder block needs for a step: its own self-attention cache (appended to), the
// cross-attention keys/values of the encoder memory (filled once by precompute_cross), which
// memory rows of each sequence are real, and the stack's relative position bias.
struct decoder_inputs {
    kv_cache& self;
    const kv_cache& cross;
    key_mask memory_keys{};
    const relative_position_bias* pos_bias = nullptr;
};

// A module lists its tensors to a visitor (module.hpp): loading, counting and saving use it.
template <class M>
concept visitable = requires(M& m, lister& l) { m.visit(l); };

// A norm: y = norm(x) row by row, rows `ld` floats apart.
template <class N>
concept norm_layer = std::constructible_from<N, const norm_config&> && visitable<N> &&
                     requires(const N& n, const float* x, float* y, std::size_t s) { n.forward(x, s, s, y, s); };

// An MLP: y (rows, width) = mlp(x) [+ y when accumulate].
template <class M>
concept mlp_layer = std::constructible_from<M, const mlp_config&> && visitable<M> &&
                    requires(const M& m, const float* x, float* y, std::size_t n, core::workspace& ws,
                             core::sequential& e, const trace& tr) {
                        m.forward(x, n, y, ws, e, true, tr);
                        { M::workspace_floats(mlp_config{}, n) } -> std::convertible_to<std::size_t>;
                    };

// An attention layer: self-attention (mask, padding, bias) and, for decoders, the cached
// step and cross paths (attention<> has all of them).
template <class A>
concept attention_layer =
    std::constructible_from<A, const attention_config&> && visitable<A> &&
    requires(const A& a, const float* x, float* y, std::size_t n, core::workspace& ws, core::sequential& e,
             const kernels::attention_mask& m, const key_mask& keys, const relative_position_bias* pb,
             const trace& tr) {
        a.forward(x, n, n, y, ws, e, m, keys, pb, true, tr);
        { A::workspace_floats(attention_config{}, n, n) } -> std::convertible_to<std::size_t>;
    };

// An encoder block: x (batch*t, width) -> x in place. Built from a block_config, so a stack can
// build N of them; `norm_type` is the stack's final norm.
template <class B>
concept encoder_block =
    std::constructible_from<B, const block_config&> && visitable<B> && norm_layer<typename B::norm_type> &&
    requires(const B& b, float* x, std::size_t n, core::workspace& ws, core::sequential& e,
             const attention_inputs& in, const trace& tr) {
        b.forward(x, n, n, ws, e, in, tr);
        { B::workspace_floats(block_config{}, n, n) } -> std::convertible_to<std::size_t>;
    };

// A decoder block: tq new tokens per sequence, x (batch*tq, width) in place, with the caches of
// decoder_inputs; precompute_cross fills its cross-attention cache from the encoder memory.
// workspace_floats(config, rows, memory rows).
template <class B>
concept decoder_block =
    std::constructible_from<B, const block_config&> && visitable<B> && norm_layer<typename B::norm_type> &&
    requires(const B& b, float* x, const float* memory, std::size_t n, kv_cache& c, const decoder_inputs& in,
             core::workspace& ws, core::sequential& e, const trace& tr) {
        b.step(x, n, n, in, ws, e, tr);
        b.precompute_cross(memory, n, n, c, e);
        { B::workspace_floats(block_config{}, n, n) } -> std::convertible_to<std::size_t>;
    };

static_assert(norm_layer<layer_norm> && norm_layer<rms_norm>);
static_assert(mlp_layer<mlp<>> && mlp_layer<gated_mlp<>> && attention_layer<attention<>>);

// The weight storage a part declares (`storage_type`), float when it declares none.
template <class T>
struct storage_of {
    using type = float;
};
template <class T>
    requires requires { typename T::storage_type; }
struct storage_of<T> {
    using type = typename T::storage_type;
};
template <class T>
using storage_of_t = typename storage_of<T>::type;

}  // namespace pali3::layers
