// Activation policies (identity, relu, gelu_tanh, gelu_erf, silu) and the elementwise kernels
// that apply them: in place, and gated (`act(a) * b`, the T5 v1.1 / UL2 FFN). Each policy also
// gives its derivative, which the backward kernels (kernels/backward.hpp) use. A policy works on
// a scalar and on an xsimd batch, so GEMM epilogues and standalone kernels share one definition.
// `activation_id` names them at run time (a config file's choice) and `act::by_config<Fused>` is
// the policy of a layer whose activation the config picks: see the end of this file.
#pragma once

#include <cmath>
#include <concepts>
#include <cstddef>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

#include "pali3/core/error.hpp"
#include "pali3/core/name_table.hpp"

#include "pali3/kernels/simd.hpp"

namespace pali3::kernels {

namespace act {

struct identity {
    static constexpr std::string_view name = "identity";
    static constexpr bool is_identity = true;
    static float apply(float x) noexcept { return x; }
    template <class Arch>
    static fbatch<Arch> apply(const fbatch<Arch>& x) noexcept {
        return x;
    }
    static float derivative(float) noexcept { return 1.f; }
    template <class Arch>
    static fbatch<Arch> derivative(const fbatch<Arch>&) noexcept {
        return fbatch<Arch>(1.f);
    }
};

struct relu {
    static constexpr std::string_view name = "relu";
    static constexpr bool is_identity = false;
    static float apply(float x) noexcept { return x > 0.f ? x : 0.f; }
    template <class Arch>
    static fbatch<Arch> apply(const fbatch<Arch>& x) noexcept {
        return xsimd::max(x, fbatch<Arch>(0.f));
    }
    // 0 at x = 0, as PyTorch's threshold_backward.
    static float derivative(float x) noexcept { return x > 0.f ? 1.f : 0.f; }
    template <class Arch>
    static fbatch<Arch> derivative(const fbatch<Arch>& x) noexcept {
        using B = fbatch<Arch>;
        return xsimd::select(x > B(0.f), B(1.f), B(0.f));
    }
};

// 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), the form ViT/SigLIP and T5 v1.1 use.
// Computed as x * sigmoid(2u): the same function, one exp instead of a tanh.
struct gelu_tanh {
    static constexpr std::string_view name = "gelu_tanh";
    static constexpr bool is_identity = false;
    static constexpr float k0 = 0.7978845608028654f;  // sqrt(2/pi)
    static constexpr float k1 = 0.044715f;
    static float apply(float x) noexcept {
        const float u = k0 * (x + k1 * x * x * x);
        return x / (1.f + std::exp(-2.f * u));
    }
    // g++ 12 reports a false -Wuninitialized from its own AVX-512 headers inside xsimd::exp when
    // this is emitted out of line (the `_mm512_undefined_ps` pass-through, GCC bug 105593).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif
    template <class Arch>
    static fbatch<Arch> apply(const fbatch<Arch>& x) noexcept {
        using B = fbatch<Arch>;
        const B x2 = x * x;
        const B u = B(-2.f * k0) * xsimd::fma(B(k1) * x2, x, x);
        return x / (B(1.f) + xsimd::exp(u));
    }
    // d/dx x s(2u) = s + x s (1 - s) 2 u',  s = sigmoid(2u), u' = k0 (1 + 3 k1 x^2).
    static float derivative(float x) noexcept {
        const float u = k0 * (x + k1 * x * x * x);
        const float s = 1.f / (1.f + std::exp(-2.f * u));
        return s + x * s * (1.f - s) * 2.f * k0 * (1.f + 3.f * k1 * x * x);
    }
    template <class Arch>
    static fbatch<Arch> derivative(const fbatch<Arch>& x) noexcept {
        using B = fbatch<Arch>;
        const B x2 = x * x;
        const B u = B(-2.f * k0) * xsimd::fma(B(k1) * x2, x, x);
        const B s = B(1.f) / (B(1.f) + xsimd::exp(u));
        const B du = B(2.f * k0) * xsimd::fma(B(3.f * k1), x2, B(1.f));
        return xsimd::fma(x * s * (B(1.f) - s), du, s);
    }
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
};

// 0.5 x (1 + erf(x / sqrt(2))), the exact GELU, computed as 0.5 x erfc(-x / sqrt(2)) so the
// negative tail does not lose its digits to 1 + erf(x) ~ 0.
struct gelu_erf {
    static constexpr std::string_view name = "gelu_erf";
    static constexpr bool is_identity = false;
    static constexpr float inv_sqrt2 = 0.7071067811865476f;
    static float apply(float x) noexcept { return 0.5f * x * std::erfc(-x * inv_sqrt2); }
    template <class Arch>
    static fbatch<Arch> apply(const fbatch<Arch>& x) noexcept {
        using B = fbatch<Arch>;
        return B(0.5f) * x * xsimd::erfc(x * B(-inv_sqrt2));
    }
    // Phi(x) + x phi(x).
    static constexpr float inv_sqrt_2pi = 0.3989422804014327f;
    static float derivative(float x) noexcept {
        return 0.5f * std::erfc(-x * inv_sqrt2) + x * inv_sqrt_2pi * std::exp(-0.5f * x * x);
    }
    template <class Arch>
    static fbatch<Arch> derivative(const fbatch<Arch>& x) noexcept {
        using B = fbatch<Arch>;
        return xsimd::fma(x * B(inv_sqrt_2pi), xsimd::exp(B(-0.5f) * x * x), B(0.5f) * xsimd::erfc(x * B(-inv_sqrt2)));
    }
};

// x sigmoid(x) (SiLU, "swish"): UL2 / Flan-UL2's gated feed-forward ("gated-silu").
struct silu {
    static constexpr std::string_view name = "silu";
    static constexpr bool is_identity = false;
    static float apply(float x) noexcept { return x / (1.f + std::exp(-x)); }
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif
    template <class Arch>
    static fbatch<Arch> apply(const fbatch<Arch>& x) noexcept {
        using B = fbatch<Arch>;
        return x / (B(1.f) + xsimd::exp(-x));
    }
    // s + x s (1 - s),  s = sigmoid(x).
    static float derivative(float x) noexcept {
        const float s = 1.f / (1.f + std::exp(-x));
        return s + x * s * (1.f - s);
    }
    template <class Arch>
    static fbatch<Arch> derivative(const fbatch<Arch>& x) noexcept {
        using B = fbatch<Arch>;
        const B s = B(1.f) / (B(1.f) + xsimd::exp(-x));
        return xsimd::fma(x * s, B(1.f) - s, s);
    }
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
};

}  // namespace act

template <class A>
concept activation = requires(float x) {
    { A::apply(x) } -> std::same_as<float>;
    { A::is_identity } -> std::convertible_to<bool>;
};

// An activation that training can run through: it also gives its derivative (scalar and batch).
template <class A>
concept differentiable_activation = activation<A> && requires(float x) {
    { A::derivative(x) } -> std::same_as<float>;
};

// x[i] = Act(x[i]) for i < n.
template <activation Act, class Arch = default_arch>
void apply_activation(float* x, std::size_t n) noexcept {
    using B = fbatch<Arch>;
    std::size_t i = 0;
    for (; i + B::size <= n; i += B::size) Act::template apply<Arch>(B::load_unaligned(x + i)).store_unaligned(x + i);
    // The tail counted down: g++ 12 misreads `for (; i < n; ++i)` after the batch loop with a
    // constant n (the bf16 epilogue's 32) and warns of an iteration at 2^62 (-Waggressive-loop-optimizations).
    for (std::size_t rest = n - i; rest > 0; --rest, ++i) x[i] = Act::apply(x[i]);
}

// dst[i] = Act(src[i]) for i < n (dst may alias src).
template <activation Act, class Arch = default_arch>
void apply_activation(const float* src, float* dst, std::size_t n) noexcept {
    using B = fbatch<Arch>;
    std::size_t i = 0;
    for (; i + B::size <= n; i += B::size) Act::template apply<Arch>(B::load_unaligned(src + i)).store_unaligned(dst + i);
    for (std::size_t rest = n - i; rest > 0; --rest, ++i) dst[i] = Act::apply(src[i]);
}

// out[i] = Act(gate[i]) * up[i]: the gated FFN (T5 v1.1 `wi_0` -> gate, `wi_1` -> up).
// `out` may alias `gate` or `up`.
template <activation Act, class Arch = default_arch>
void gated_activation(const float* gate, const float* up, float* out, std::size_t n) noexcept {
    using B = fbatch<Arch>;
    std::size_t i = 0;
    for (; i + B::size <= n; i += B::size)
        (Act::template apply<Arch>(B::load_unaligned(gate + i)) * B::load_unaligned(up + i))
            .store_unaligned(out + i);
    for (std::size_t rest = n - i; rest > 0; --rest, ++i) out[i] = Act::apply(gate[i]) * up[i];
}

// ---- activations named at run time ----------------------------------------------------------
// A config file names its activation; `activation_id` is that name as a value (structural, so a
// block_config holding one can still be a template argument). `of_type` means "the one the
// layer's type names" (the default of every layer config).
enum class activation_id : unsigned char { of_type = 0, relu, gelu_tanh, gelu_erf, silu };

// Our names (config JSON, messages): the policies' own.
inline constexpr std::pair<activation_id, std::string_view> activation_names[] = {
    {activation_id::relu, act::relu::name},
    {activation_id::gelu_tanh, act::gelu_tanh::name},
    {activation_id::gelu_erf, act::gelu_erf::name},
    {activation_id::silu, act::silu::name}};

inline std::string_view name_of(activation_id id) noexcept { return core::name_in(activation_names, id).value_or("of_type"); }
inline activation_id activation_from_name(std::string_view name, std::string_view where) {
    if (const auto a = core::value_in(activation_names, name)) return *a;
    throw config_error(core::describe("unknown activation", where, core::names_list(activation_names), name));
}

// The id of a policy; of_type for a policy without one (identity, user-defined ones).
template <class Act>
constexpr activation_id id_of() noexcept {
    if constexpr (std::is_same_v<Act, act::relu>) return activation_id::relu;
    else if constexpr (std::is_same_v<Act, act::gelu_tanh>) return activation_id::gelu_tanh;
    else if constexpr (std::is_same_v<Act, act::gelu_erf>) return activation_id::gelu_erf;
    else if constexpr (std::is_same_v<Act, act::silu>) return activation_id::silu;
    else return activation_id::of_type;
}

// f(std::type_identity<Policy>{}) for the policy `id` names (of_type is not a policy: error).
template <class F>
decltype(auto) with_activation(activation_id id, F&& f) {
    switch (id) {
        case activation_id::relu: return f(std::type_identity<act::relu>{});
        case activation_id::gelu_tanh: return f(std::type_identity<act::gelu_tanh>{});
        case activation_id::gelu_erf: return f(std::type_identity<act::gelu_erf>{});
        case activation_id::silu: return f(std::type_identity<act::silu>{});
        case activation_id::of_type: break;
    }
    throw config_error(core::describe("activation not resolved", "with_activation", "relu, gelu_tanh, gelu_erf or silu",
                                      static_cast<int>(id)));
}

namespace act {
// The policy of a layer whose activation its config picks at run time (mlp_config::activation):
// `Fused` (also the default when the config says of_type) runs fused into the GEMM epilogue as a
// compile-time policy would; any other named activation runs as one elementwise pass over the
// GEMM's output (one extra read and write of the hidden rows: ~2-3 % of a ViT-B MLP, speed log 21).
// This is how the run-time models honour a config's `hidden_act` / `feed_forward_proj` without
// one model type per activation.
template <activation Fused>
struct by_config {
    using fused = Fused;
};
}  // namespace act

template <class A>
inline constexpr bool is_by_config_v = false;
template <class F>
inline constexpr bool is_by_config_v<act::by_config<F>> = true;

// What a layer's Act template argument may be: a policy, or by_config<Policy>.
template <class A>
concept activation_choice = activation<A> || is_by_config_v<A>;

// The id a layer of policy Act runs for a config's `id`, or a config_error when the config names
// another activation than a fixed policy can run.
template <activation_choice Act>
activation_id resolve_activation(activation_id id, std::string_view layer) {
    if constexpr (is_by_config_v<Act>) {
        return id == activation_id::of_type ? id_of<typename Act::fused>() : id;
    } else {
        if (id != activation_id::of_type && id != id_of<Act>())
            throw config_error(core::describe("activation the config names is not the layer's", layer,
                                              std::string(Act::name) + " (fixed in the layer's type; use act::by_config to choose at run time)",
                                              name_of(id)));
        return id;
    }
}

}  // namespace pali3::kernels
