// SIMD vocabulary shared by the kernels: the batch type for an architecture, loads that widen
// weight storage (bf16, f16) to f32 batches, and horizontal sums. Kernels are templates on
// `Arch` (default: the best architecture the translation unit is compiled for).
#pragma once

#include <array>
#include <cstddef>
#include <type_traits>

#include <xsimd/xsimd.hpp>

#include "pali3/core/storage.hpp"

#if defined(__AVX512F__) || defined(__AVX2__)
#include <immintrin.h>
#endif

namespace pali3::kernels {

using default_arch = xsimd::default_arch;

template <class Arch>
using fbatch = xsimd::batch<float, Arch>;

template <class Arch>
inline constexpr bool is_avx512 = std::is_base_of_v<xsimd::avx512f, Arch>;

template <class Arch>
inline constexpr bool is_avx2 = std::is_base_of_v<xsimd::avx2, Arch>;

// Loads fbatch<Arch>::size consecutive storage values as f32.
template <class Arch>
inline fbatch<Arch> load_as_float(const float* p) noexcept {
    return fbatch<Arch>::load_unaligned(p);
}

template <class Arch>
inline fbatch<Arch> load_as_float(const bf16* p) noexcept {
#if defined(__AVX512F__)
    if constexpr (is_avx512<Arch>) {
        const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
        return fbatch<Arch>(_mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16)));
    } else
#endif
#if defined(__AVX2__)
    if constexpr (is_avx2<Arch> && fbatch<Arch>::size == 8) {
        const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
        return fbatch<Arch>(_mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16)));
    } else
#endif
    {
        alignas(64) std::array<float, fbatch<Arch>::size> tmp;
        for (std::size_t i = 0; i < tmp.size(); ++i) tmp[i] = to_float(p[i]);
        return fbatch<Arch>::load_aligned(tmp.data());
    }
}

template <class Arch>
inline fbatch<Arch> load_as_float(const f16* p) noexcept {
#if defined(__AVX512F__)
    if constexpr (is_avx512<Arch>) {
        const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
        return fbatch<Arch>(_mm512_cvtph_ps(h));
    } else
#endif
#if defined(__F16C__)
    if constexpr (fbatch<Arch>::size == 8) {
        const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
        return fbatch<Arch>(_mm256_cvtph_ps(h));
    } else
#endif
    {
        alignas(64) std::array<float, fbatch<Arch>::size> tmp;
        for (std::size_t i = 0; i < tmp.size(); ++i) tmp[i] = to_float(p[i]);
        return fbatch<Arch>::load_aligned(tmp.data());
    }
}

template <class Arch>
inline float hsum(const fbatch<Arch>& v) noexcept {
    return xsimd::hadd(v);
}

template <class Arch>
inline float hmax(const fbatch<Arch>& v) noexcept {
    alignas(64) std::array<float, fbatch<Arch>::size> tmp;
    v.store_aligned(tmp.data());
    float m = tmp[0];
    for (std::size_t i = 1; i < tmp.size(); ++i) m = tmp[i] > m ? tmp[i] : m;
    return m;
}

}  // namespace pali3::kernels
