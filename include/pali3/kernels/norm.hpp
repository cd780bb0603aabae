// Row normalisations: LayerNorm (ViT/SigLIP: centred, scaled, with bias) and RMSNorm (T5/UL2:
// no centring, no bias). Statistics in f32 with a two-pass variance; weights in any storage.
#pragma once

#include <cmath>
#include <cstddef>

#include "pali3/kernels/simd.hpp"

namespace pali3::kernels {

namespace detail {
template <class Arch>
float row_sum(const float* x, std::size_t n) noexcept {
    using B = fbatch<Arch>;
    B s0(0.f), s1(0.f);
    std::size_t i = 0;
    for (; i + 2 * B::size <= n; i += 2 * B::size) {
        s0 += B::load_unaligned(x + i);
        s1 += B::load_unaligned(x + i + B::size);
    }
    if (i + B::size <= n) {
        s0 += B::load_unaligned(x + i);
        i += B::size;
    }
    float s = hsum<Arch>(s0 + s1);
    for (; i < n; ++i) s += x[i];
    return s;
}

// sum((x - c)^2)
template <class Arch>
float row_sq_dev(const float* x, std::size_t n, float c) noexcept {
    using B = fbatch<Arch>;
    const B vc(c);
    B s0(0.f), s1(0.f);
    std::size_t i = 0;
    for (; i + 2 * B::size <= n; i += 2 * B::size) {
        const B d0 = B::load_unaligned(x + i) - vc, d1 = B::load_unaligned(x + i + B::size) - vc;
        s0 = xsimd::fma(d0, d0, s0);
        s1 = xsimd::fma(d1, d1, s1);
    }
    if (i + B::size <= n) {
        const B d = B::load_unaligned(x + i) - vc;
        s0 = xsimd::fma(d, d, s0);
        i += B::size;
    }
    float s = hsum<Arch>(s0 + s1);
    for (; i < n; ++i) s += (x[i] - c) * (x[i] - c);
    return s;
}
}  // namespace detail

// y[r, :] = (x[r, :] - mean) / sqrt(var + eps) * gamma + beta for r < rows. `beta` may be null.
// y may alias x (same leading dimension).
template <class Arch = default_arch, weight_storage T>
void layer_norm(const float* x, std::size_t ldx, float* y, std::size_t ldy, std::size_t rows,
                std::size_t width, const T* gamma, const T* beta, float eps) noexcept {
    using B = fbatch<Arch>;
    for (std::size_t r = 0; r < rows; ++r) {
        const float* xr = x + r * ldx;
        float* yr = y + r * ldy;
        const float mean = detail::row_sum<Arch>(xr, width) / static_cast<float>(width);
        const float var = detail::row_sq_dev<Arch>(xr, width, mean) / static_cast<float>(width);
        const float inv = 1.f / std::sqrt(var + eps);
        const B vm(mean), vi(inv);
        std::size_t i = 0;
        for (; i + B::size <= width; i += B::size) {
            B v = (B::load_unaligned(xr + i) - vm) * vi * load_as_float<Arch>(gamma + i);
            if (beta) v += load_as_float<Arch>(beta + i);
            v.store_unaligned(yr + i);
        }
        for (; i < width; ++i)
            yr[i] = (xr[i] - mean) * inv * to_float(gamma[i]) + (beta ? to_float(beta[i]) : 0.f);
    }
}

// y[r, :] = x[r, :] / sqrt(mean(x^2) + eps) * weight. y may alias x.
template <class Arch = default_arch, weight_storage T>
void rms_norm(const float* x, std::size_t ldx, float* y, std::size_t ldy, std::size_t rows,
              std::size_t width, const T* weight, float eps) noexcept {
    using B = fbatch<Arch>;
    for (std::size_t r = 0; r < rows; ++r) {
        const float* xr = x + r * ldx;
        float* yr = y + r * ldy;
        const float ms = detail::row_sq_dev<Arch>(xr, width, 0.f) / static_cast<float>(width);
        const float inv = 1.f / std::sqrt(ms + eps);
        const B vi(inv);
        std::size_t i = 0;
        for (; i + B::size <= width; i += B::size)
            (B::load_unaligned(xr + i) * vi * load_as_float<Arch>(weight + i)).store_unaligned(yr + i);
        for (; i < width; ++i) yr[i] = xr[i] * inv * to_float(weight[i]);
    }
}

}  // namespace pali3::kernels
