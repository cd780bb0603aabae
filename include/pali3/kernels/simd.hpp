// SIMD vocabulary shared by the kernels: the batch type for an architecture, loads that widen
// weight storage (bf16, f16) to f32 batches, and horizontal sums. Kernels are templates on
// `Arch` (default: the best architecture the translation unit is compiled for).
#pragma once

#include <array>
#include <cstddef>
#include <type_traits>

#include <xsimd/xsimd.hpp>

#include "pali3/core/storage.hpp"
#include "pali3/kernels/cpu_features.hpp"

#if defined(__AVX512F__) || defined(__AVX2__)
#include <immintrin.h>
#endif
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <cpuid.h>
#endif

namespace pali3::kernels {

using default_arch = xsimd::default_arch;

template <class Arch>
using fbatch = xsimd::batch<float, Arch>;

template <class Arch>
inline constexpr bool is_avx512 = std::is_base_of_v<xsimd::avx512f, Arch>;

template <class Arch>
inline constexpr bool is_avx2 = std::is_base_of_v<xsimd::avx2, Arch>;

// Pins a vector to a register. Without it g++ folded each W load of the four-row GEMV kernels
// into its four FMAs as a memory operand: every W vector read four times from L1 (twice as many
// cache-line accesses when W is not 64-byte aligned), 39 GB/s from L2 where 80 are reached
// (docs/benchmarks.md speed log 18). A no-op off x86.
template <class B>
[[gnu::always_inline]] inline void keep_in_register(B& v) noexcept {
#if (defined(__GNUC__) || defined(__clang__)) && defined(__SSE2__)
    using A = typename B::arch_type;
    if constexpr (std::is_base_of_v<xsimd::sse2, A> || std::is_base_of_v<xsimd::avx, A> || is_avx512<A>) {
        typename B::register_type r = v;
        asm("" : "+v"(r));
        v = B(r);
    }
#else
    (void)v;
#endif
}

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

#if defined(__AVX__)
// out[p] lane j = in[j] lane p: an 8x8 transpose of 32-bit lanes in registers (24 shuffles per 64
// elements), the AVX2 counterpart of transpose_16x16_registers (the f32 GEMM's A packer).
inline void transpose_8x8_registers(const __m256 (&in)[8], __m256 (&out)[8]) noexcept {
    __m256 t[8], s[8];
    for (int i = 0; i < 4; ++i) {
        t[2 * i] = _mm256_unpacklo_ps(in[2 * i], in[2 * i + 1]);      // rows 2i, 2i+1 at columns 0, 1 | 4, 5
        t[2 * i + 1] = _mm256_unpackhi_ps(in[2 * i], in[2 * i + 1]);  // at columns 2, 3 | 6, 7
    }
    for (int h = 0; h < 2; ++h) {  // s[4h + c]: rows 4h..4h+3 of column c | column c + 4
        s[4 * h + 0] = _mm256_shuffle_ps(t[4 * h], t[4 * h + 2], 0x44);
        s[4 * h + 1] = _mm256_shuffle_ps(t[4 * h], t[4 * h + 2], 0xee);
        s[4 * h + 2] = _mm256_shuffle_ps(t[4 * h + 1], t[4 * h + 3], 0x44);
        s[4 * h + 3] = _mm256_shuffle_ps(t[4 * h + 1], t[4 * h + 3], 0xee);
    }
    for (int c = 0; c < 4; ++c) {
        out[c] = _mm256_permute2f128_ps(s[c], s[4 + c], 0x20);
        out[c + 4] = _mm256_permute2f128_ps(s[c], s[4 + c], 0x31);
    }
}
#endif

#if defined(__AVX512F__)
// out[p] lane j = in[j] lane p: a 16x16 transpose of 32-bit lanes in registers (64 shuffles per 256
// elements). Used by both GEMM packers (f32 panels in gemm.hpp, bf16 pairs for the VNNI panels in amx.hpp).
// g++ 12 reports a false -Wuninitialized from inside its own AVX-512 headers here when inlined
// (the `_mm512_undefined_ps` pass-through of unpack/shuffle, GCC bug 105593): silenced here only.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif
inline void transpose_16x16_registers(const __m512 (&in)[16], __m512 (&out)[16]) noexcept {
    __m512 r[16], t[16];
    for (int i = 0; i < 8; ++i) {
        t[2 * i] = _mm512_unpacklo_ps(in[2 * i], in[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_ps(in[2 * i], in[2 * i + 1]);
    }
    // r[4q + c], lane l: rows 4q..4q+3 at column 4l + c.
    for (int q = 0; q < 4; ++q) {
        const __m512d a = _mm512_castps_pd(t[4 * q]), b = _mm512_castps_pd(t[4 * q + 1]);
        const __m512d c = _mm512_castps_pd(t[4 * q + 2]), d = _mm512_castps_pd(t[4 * q + 3]);
        r[4 * q] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, c));
        r[4 * q + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, c));
        r[4 * q + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(b, d));
        r[4 * q + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(b, d));
    }
    for (int c = 0; c < 4; ++c) {
        const __m512 s0 = _mm512_shuffle_f32x4(r[c], r[4 + c], 0x44), s1 = _mm512_shuffle_f32x4(r[c], r[4 + c], 0xee);
        const __m512 s2 = _mm512_shuffle_f32x4(r[8 + c], r[12 + c], 0x44), s3 = _mm512_shuffle_f32x4(r[8 + c], r[12 + c], 0xee);
        out[0 + c] = _mm512_shuffle_f32x4(s0, s2, 0x88);
        out[4 + c] = _mm512_shuffle_f32x4(s0, s2, 0xdd);
        out[8 + c] = _mm512_shuffle_f32x4(s1, s3, 0x88);
        out[12 + c] = _mm512_shuffle_f32x4(s1, s3, 0xdd);
    }
}
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
#endif

}  // namespace pali3::kernels
