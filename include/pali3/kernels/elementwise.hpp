// Elementwise kernels: add, scale, axpy, and storage conversion (bf16/f16 <-> f32).
#pragma once

#include <cstddef>

#include "pali3/core/storage.hpp"
#include "pali3/kernels/simd.hpp"

namespace pali3::kernels {

// out[i] = a[i] + b[i]; out may alias a or b.
template <class Arch = default_arch>
void add(const float* a, const float* b, float* out, std::size_t n) noexcept {
    using B = fbatch<Arch>;
    std::size_t i = 0;
    for (; i + B::size <= n; i += B::size)
        (B::load_unaligned(a + i) + B::load_unaligned(b + i)).store_unaligned(out + i);
    for (; i < n; ++i) out[i] = a[i] + b[i];
}

// x[i] *= s.
template <class Arch = default_arch>
void scale(float* x, float s, std::size_t n) noexcept {
    using B = fbatch<Arch>;
    const B vs(s);
    std::size_t i = 0;
    for (; i + B::size <= n; i += B::size) (B::load_unaligned(x + i) * vs).store_unaligned(x + i);
    for (; i < n; ++i) x[i] *= s;
}

// y[i] += s * x[i].
template <class Arch = default_arch>
void axpy(float s, const float* x, float* y, std::size_t n) noexcept {
    using B = fbatch<Arch>;
    const B vs(s);
    std::size_t i = 0;
    for (; i + B::size <= n; i += B::size)
        xsimd::fma(vs, B::load_unaligned(x + i), B::load_unaligned(y + i)).store_unaligned(y + i);
    for (; i < n; ++i) y[i] += s * x[i];
}

// dst[i] = float(src[i]) for any weight storage type.
template <class Arch = default_arch, weight_storage T>
void convert(const T* src, float* dst, std::size_t n) noexcept {
    using B = fbatch<Arch>;
    std::size_t i = 0;
    for (; i + B::size <= n; i += B::size) load_as_float<Arch>(src + i).store_unaligned(dst + i);
    for (; i < n; ++i) dst[i] = to_float(src[i]);
}

// dst[i] = bf16(src[i]), round to nearest even, NaN kept quiet.
template <class Arch = default_arch>
void convert(const float* src, bf16* dst, std::size_t n) noexcept {
    using U = xsimd::batch<std::uint32_t, Arch>;
    using B = fbatch<Arch>;
    constexpr std::size_t W = B::size;
    std::size_t i = 0;
    for (; i + W <= n; i += W) {
        const U u = xsimd::bitwise_cast<U>(B::load_unaligned(src + i));
        const U rounded = (u + (U(0x7fffu) + ((u >> 16) & U(1u)))) >> 16;
        const U quiet_nan = (u >> 16) | U(0x40u);
        const auto is_nan = (u & U(0x7fffffffu)) > U(0x7f800000u);
        alignas(64) std::uint32_t tmp[W];
        xsimd::select(is_nan, quiet_nan, rounded).store_aligned(tmp);
        for (std::size_t j = 0; j < W; ++j) dst[i + j] = bf16::from_bits(static_cast<std::uint16_t>(tmp[j]));
    }
    for (; i < n; ++i) dst[i] = to_bf16(src[i]);
}

// dst[i] = f16(src[i]), round to nearest even.
inline void convert(const float* src, f16* dst, std::size_t n) noexcept {
    for (std::size_t i = 0; i < n; ++i) dst[i] = to_f16(src[i]);
}

}  // namespace pali3::kernels
