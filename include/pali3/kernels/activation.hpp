// Activation policies (identity, relu, gelu_tanh, gelu_erf) and the elementwise kernels that
// apply them: in place, and gated (`act(a) * b`, the T5 v1.1 / UL2 FFN). Each policy also gives
// its derivative, which the backward kernels (kernels/backward.hpp) use. A policy works on a
// scalar and on an xsimd batch, so GEMM epilogues and standalone kernels share one definition.
#pragma once

#include <cmath>
#include <concepts>
#include <cstddef>
#include <string_view>

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
    for (; i < n; ++i) x[i] = Act::apply(x[i]);
}

// dst[i] = Act(src[i]) for i < n (dst may alias src).
template <activation Act, class Arch = default_arch>
void apply_activation(const float* src, float* dst, std::size_t n) noexcept {
    using B = fbatch<Arch>;
    std::size_t i = 0;
    for (; i + B::size <= n; i += B::size) Act::template apply<Arch>(B::load_unaligned(src + i)).store_unaligned(dst + i);
    for (; i < n; ++i) dst[i] = Act::apply(src[i]);
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

}  // namespace pali3::kernels
