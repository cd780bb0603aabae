// Numerically stable softmax over one row, with an optional scale and an optional keep-mask
// (padding, causal and prefix masks all reduce to it). Masked entries get probability 0; a row
// whose entries are all masked becomes all zeros (no NaN), which attention treats as "attends
// to nothing".
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>

#include "pali3/kernels/simd.hpp"

namespace pali3::kernels {

// x[i] <- exp(s (x[i] - max)) / sum, i < n, with s = scale (precondition: s > 0 and finite, as
// for every attention scale). Entries equal to -inf are treated as masked.
template <class Arch = default_arch>
void softmax(float* x, std::size_t n, float scale = 1.f) noexcept {
    using B = fbatch<Arch>;
    constexpr float ninf = -std::numeric_limits<float>::infinity();
    if (n == 0) return;
    B vmax(ninf);
    std::size_t i = 0;
    for (; i + B::size <= n; i += B::size) vmax = xsimd::max(vmax, B::load_unaligned(x + i));
    float m = hmax<Arch>(vmax);
    for (; i < n; ++i) m = x[i] > m ? x[i] : m;
    if (m == ninf) {  // fully masked row
        for (i = 0; i < n; ++i) x[i] = 0.f;
        return;
    }
    // (x - m) * s, not x * s - m * s: the latter, contracted to an FMA, can leave a large
    // positive residue when |x| is huge.
    const B vs(scale), vm(m);
    B vsum(0.f);
    i = 0;
    for (; i + B::size <= n; i += B::size) {
        const B e = xsimd::exp((B::load_unaligned(x + i) - vm) * vs);
        e.store_unaligned(x + i);
        vsum += e;
    }
    float sum = hsum<Arch>(vsum);
    for (; i < n; ++i) {
        x[i] = std::exp((x[i] - m) * scale);
        sum += x[i];
    }
    const float inv = 1.f / sum;
    const B vinv(inv);
    i = 0;
    for (; i + B::size <= n; i += B::size) (B::load_unaligned(x + i) * vinv).store_unaligned(x + i);
    for (; i < n; ++i) x[i] *= inv;
}

// Softmax over the entries with keep[i] != 0; the others become 0.
template <class Arch = default_arch>
void softmax(float* x, std::size_t n, const std::uint8_t* keep, float scale = 1.f) noexcept {
    for (std::size_t i = 0; i < n; ++i)
        if (!keep[i]) x[i] = -std::numeric_limits<float>::infinity();
    softmax<Arch>(x, n, scale);
}

// Softmax over the first `valid` entries (causal / prefix masks); entries from `valid` on become 0.
template <class Arch = default_arch>
void softmax_prefix(float* x, std::size_t n, std::size_t valid, float scale = 1.f) noexcept {
    if (valid > n) valid = n;
    softmax<Arch>(x, valid, scale);
    for (std::size_t i = valid; i < n; ++i) x[i] = 0.f;
}

}  // namespace pali3::kernels
