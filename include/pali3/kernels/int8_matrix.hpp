// The int8 weight matrix of issue 25 as the kernels see it (`int8_matrix`: values, a scale per
// output row or per group of values along k) and its conversion back to f32. Shared by the int8
// GEMV/GEMM (int8.hpp) and the f32 GEMM's W packer (gemm_blocks.hpp), which dequantises int8 W
// while it packs, as it converts bf16 and f16.
#pragma once

#include <algorithm>
#include <cmath>
#include <limits>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "pali3/core/error.hpp"
#include "pali3/kernels/simd.hpp"

namespace pali3::kernels {

// Scales per row for k values in groups of `group` (0: one group, the whole row).
inline constexpr std::size_t int8_groups(std::size_t k, std::size_t group) noexcept {
    return group == 0 ? 1 : (k + group - 1) / group;
}

// The group sizes int8 weights take: 0 (one scale per row) or a multiple of 32 (whole AVX2 steps
// of the integer GEMV per group). `where` names the caller or the option in the message.
inline void check_int8_group(std::size_t group, std::string_view where) {
    if (group % 32 != 0)
        throw value_error(core::describe("int8 group size", where, "0 (a scale per row) or a multiple of 32", group));
}

// W (n, k) as int8 q, rows `ld` apart: w[j][i] ~ scales[j * groups + i / group] * q[j * ld + i].
struct int8_matrix {
    const std::int8_t* q = nullptr;
    std::size_t n = 0, k = 0, ld = 0;
    const float* scales = nullptr;  // (n, int8_groups(k, group)) row-major
    std::size_t group = 0;          // 0: one scale per row
    // int8_products::packed_weights made from these values and scales (int8_products::pack_weights),
    // or null: the integer-product GEMM then packs W per call. A pack of another matrix is ignored.
    const void* prepacked = nullptr;

    std::size_t groups() const noexcept { return int8_groups(k, group); }
    std::size_t group_size() const noexcept { return group == 0 ? k : group; }
    float scale(std::size_t j, std::size_t i) const noexcept { return scales[j * groups() + i / group_size()]; }

    void check(std::string_view where) const {
        if (!q || !scales || n == 0 || k == 0)
            throw shape_error(core::describe("int8 matrix", where, "n > 0, k > 0, values and scales", "n=" + std::to_string(n) + ", k=" + std::to_string(k)));
        if (ld < k) throw shape_error(core::describe("int8 matrix row stride", where, ">= k = " + std::to_string(k), ld));
        check_int8_group(group, where);
    }
};

namespace detail {

// amax = max |a[i]| over i < k; false when a value is NaN or infinite (the row quantisers of A
// then give NaN outputs).
inline bool finite_absmax(const float* a, std::size_t k, float& amax) noexcept {
    amax = 0.f;
    bool finite = true;
    for (std::size_t i = 0; i < k; ++i) {
        const float v = std::fabs(a[i]);
        finite = finite && v <= std::numeric_limits<float>::max();
        amax = v > amax ? v : amax;
    }
    return finite;
}

// out[i] = s * q[i] for i < len (vector conversion where the target has one).
inline void scale_int8(const std::int8_t* q, std::size_t len, float s, float* out) noexcept {
    std::size_t i = 0;
#if defined(__AVX512F__)
    const __m512 v16 = _mm512_set1_ps(s);
    for (; i + 16 <= len; i += 16)
        _mm512_storeu_ps(out + i, _mm512_mul_ps(v16, _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(
                                                         _mm_loadu_si128(reinterpret_cast<const __m128i*>(q + i))))));
#endif
#if defined(__AVX2__)
    const __m256 v8 = _mm256_set1_ps(s);
    for (; i + 8 <= len; i += 8)
        _mm256_storeu_ps(out + i, _mm256_mul_ps(v8, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(
                                                       _mm_loadl_epi64(reinterpret_cast<const __m128i*>(q + i))))));
#endif
    for (; i < len; ++i) out[i] = s * static_cast<float>(q[i]);
}

}  // namespace detail

// Row j of W, values [i0, i1), back to f32: out[i - i0] = scale(j, i) * q[j][i].
inline void dequantize_int8_row(const int8_matrix& w, std::size_t j, std::size_t i0, std::size_t i1, float* out) noexcept {
    const std::size_t g = w.group_size(), groups = w.groups();
    const std::int8_t* q = w.q + j * w.ld;
    for (std::size_t i = i0; i < i1;) {
        const std::size_t gi = i / g, e = std::min(i1, gi * g + g);
        detail::scale_int8(q + i, e - i, w.scales[j * groups + gi], out + (i - i0));
        i = e;
    }
}

// W rows [j0, j1) back to f32: out[(j - j0) * ldo + i] = scale(j, i) * q[j][i].
inline void dequantize_int8(const int8_matrix& w, std::size_t j0, std::size_t j1, float* out, std::size_t ldo) noexcept {
    for (std::size_t j = j0; j < j1; ++j) dequantize_int8_row(w, j, 0, w.k, out + (j - j0) * ldo);
}

}  // namespace pali3::kernels
