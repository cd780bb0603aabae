// int8 weights for decoding (issue 25, first part): symmetric quantisation with one f32 scale per
// output row, or per group of `group` values along k (llama.cpp's Q8_0 is group 32), and the
// matrix-vector product C (m, n) = A (m, k) . W^T for m <= gemv_max_rows rows of f32 A, reading
// the int8 W exactly once. Half the bytes of bf16, a quarter of f32: a GEMV is bound by memory,
// so the int8 values are widened to f32 in registers and multiplied there (exact products of the
// stored values; the f32 sums differ from a double reference only by rounding).
//
//     std::vector<std::int8_t> q(n * k);  std::vector<float> s(n * int8_groups(k, 32));
//     kernels::quantize_int8(w.data(), n, k, k, 32, q.data(), k, s.data());
//     kernels::gemv_int8(1, x.data(), k, kernels::int8_matrix{q.data(), n, k, k, s.data(), 32}, y.data(), n);
//
// Each output is produced in a fixed order set by the shape alone (thread-count independent).
#pragma once

#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "pali3/core/error.hpp"
#include "pali3/core/threading.hpp"
#include "pali3/kernels/gemv.hpp"
#include "pali3/kernels/matrix.hpp"
#include "pali3/kernels/simd.hpp"

namespace pali3::kernels {

// Scales per row for k values in groups of `group` (0: one group, the whole row).
inline constexpr std::size_t int8_groups(std::size_t k, std::size_t group) noexcept {
    return group == 0 ? 1 : (k + group - 1) / group;
}

// W (n, k) as int8 q, rows `ld` apart: w[j][i] ~ scales[j * groups + i / group] * q[j * ld + i].
struct int8_matrix {
    const std::int8_t* q = nullptr;
    std::size_t n = 0, k = 0, ld = 0;
    const float* scales = nullptr;  // (n, int8_groups(k, group)) row-major
    std::size_t group = 0;          // 0: one scale per row

    std::size_t groups() const noexcept { return int8_groups(k, group); }
    std::size_t group_size() const noexcept { return group == 0 ? k : group; }
    float scale(std::size_t j, std::size_t i) const noexcept { return scales[j * groups() + i / group_size()]; }

    void check(std::string_view where) const {
        if (!q || !scales || n == 0 || k == 0)
            throw shape_error(core::describe("int8 matrix", where, "n > 0, k > 0, values and scales", "n=" + std::to_string(n) + ", k=" + std::to_string(k)));
        if (ld < k) throw shape_error(core::describe("int8 matrix row stride", where, ">= k = " + std::to_string(k), ld));
        if (group != 0 && group % 32 != 0)
            throw value_error(core::describe("int8 group size", where, "0 (per row) or a multiple of 32", group));
    }
};

// Symmetric round-to-nearest quantisation of W (n, k), rows `ldw` apart, into q (rows `ldq`
// apart) and scales (n, int8_groups(k, group)): scale = max|w| / 127 over each row or group,
// q = round(w / scale) in [-127, 127] (-128 is never used, so -q is always representable); an
// all-zero group gets scale 0. A non-finite weight is refused (value_error naming row and column).
inline void quantize_int8(const float* w, std::size_t n, std::size_t k, std::size_t ldw, std::size_t group,
                          std::int8_t* q, std::size_t ldq, float* scales) {
    const int8_matrix shape{q, n, k, ldq, scales, group};
    shape.check("quantize_int8");
    if (ldw < k) throw shape_error(core::describe("weight row stride", "quantize_int8", ">= k = " + std::to_string(k), ldw));
    const std::size_t g = shape.group_size(), groups = shape.groups();
    for (std::size_t j = 0; j < n; ++j)
        for (std::size_t gi = 0; gi < groups; ++gi) {
            const std::size_t i0 = gi * g, i1 = std::min(k, i0 + g);
            float amax = 0.f;
            for (std::size_t i = i0; i < i1; ++i) {
                const float v = w[j * ldw + i];
                if (!std::isfinite(v))
                    throw value_error(core::describe("non-finite weight", "quantize_int8",
                                                     "finite values", "row " + std::to_string(j) + ", column " + std::to_string(i)));
                amax = std::max(amax, std::fabs(v));
            }
            const float s = amax / 127.f;
            scales[j * groups + gi] = s;
            const float inv = s > 0.f ? 1.f / s : 0.f;
            for (std::size_t i = i0; i < i1; ++i) {
                const float r = std::nearbyint(w[j * ldw + i] * inv);
                q[j * ldq + i] = static_cast<std::int8_t>(std::clamp(r, -127.f, 127.f));
            }
        }
}

namespace detail {

inline void prefetch_line(const void* p) noexcept {
#if defined(__GNUC__) || defined(__clang__)
    __builtin_prefetch(p, 0, 3);
#else
    (void)p;
#endif
}

// fbatch<Arch>::size int8 values widened to f32.
template <class Arch>
inline fbatch<Arch> load_int8_as_float(const std::int8_t* p) noexcept {
#if defined(__AVX512F__)
    if constexpr (is_avx512<Arch>) {
        const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
        return fbatch<Arch>(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(b)));
    } else
#endif
#if defined(__AVX2__)
    if constexpr (is_avx2<Arch> && fbatch<Arch>::size == 8) {
        const __m128i b = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(p));
        return fbatch<Arch>(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(b)));
    } else
#endif
    {
        alignas(64) std::array<float, fbatch<Arch>::size> tmp;
        for (std::size_t i = 0; i < tmp.size(); ++i) tmp[i] = static_cast<float>(p[i]);
        return fbatch<Arch>::load_aligned(tmp.data());
    }
}

// Rows of W per step. One scale per row: R x M accumulators, M vectors of A and one W vector in
// registers, the scale applied once at the end. Per group: R x M accumulators and R x M group
// partials.
template <std::size_t M, class Arch, bool Grouped>
inline constexpr std::size_t int8_group_rows =
    Grouped ? std::clamp<std::size_t>(((is_avx512<Arch> ? 32 : 16) - M - 1) / (2 * M), 1, 4)
            : std::clamp<std::size_t>(((is_avx512<Arch> ? 32 : 16) - M - 2) / M, 1, 8);

// Outputs [j0, j1): for each row step and scale group, the partial dot products of the group's
// values (vectors, then the group's tail scalar, std::fma so g++'s contraction cannot differ
// between paths) times the group's scale, summed over groups in order. One scale per row is one
// group whose scale multiplies the finished dot product.
template <std::size_t M, class Arch, bool Grouped, class Act>
[[gnu::noinline]] void gemv_int8_range(const float* a, std::size_t lda, const int8_matrix& w, float* c, std::size_t ldc,
                                       const epilogue<Act>& ep, std::size_t j0, std::size_t j1) {
    using B = fbatch<Arch>;
    constexpr std::size_t W = B::size;
    const std::size_t g = w.group_size(), groups = w.groups(), k = w.k;
    // sum[r][i] += A row i . W row j + r over [i0, i1), whole vectors; returns where they stop.
    auto vectors = [&]<std::size_t R>(std::size_t j, std::size_t i0, std::size_t i1, B (&sum)[R][M])
        __attribute__((always_inline)) {
        std::size_t p = i0;
        for (; p + W <= i1; p += W) {
            // One cache line of the next R rows per step (row (p / W) % R, line (p / W) / R): by
            // the end of these rows the next ones are in cache. Rows of 2-8 KB are short streams
            // for the hardware prefetcher.
            {
                const std::size_t line = p / W, rn = j + R + line % R, off = line / R * 64;
                if (rn < w.n && off < k) prefetch_line(w.q + rn * w.ld + off);
            }
            B av[M];
            static_for<M>([&](auto i) {
                av[i] = B::load_unaligned(a + i * lda + p);
                keep_in_register(av[i]);
            });
            static_for<R>([&](auto r) {
                B wv = load_int8_as_float<Arch>(w.q + (j + r) * w.ld + p);
                keep_in_register(wv);
                static_for<M>([&](auto i) { sum[r][i] = xsimd::fma(av[i], wv, sum[r][i]); });
            });
        }
        return p;
    };
    auto scalars = [&]<std::size_t R>(std::size_t j, std::size_t p, std::size_t i1, float (&tail)[R][M]) __attribute__((always_inline)) {
        for (; p < i1; ++p)
            static_for<R>([&](auto r) {
                const float wq = static_cast<float>(w.q[(j + r) * w.ld + p]);
                static_for<M>([&](auto i) { tail[r][i] = std::fma(a[i * lda + p], wq, tail[r][i]); });
            });
    };
    auto rows = [&]<std::size_t R>(std::size_t j, std::integral_constant<std::size_t, R>) __attribute__((always_inline)) {
        B acc[R][M];
        static_for<R>([&](auto r) { static_for<M>([&](auto i) { acc[r][i] = B(0.f); }); });
        if constexpr (!Grouped) {
            float tail[R][M] = {};
            scalars(j, vectors(j, 0, k, acc), k, tail);
            static_for<R>([&](auto r) {
                static_for<M>([&](auto i) { finish((hsum<Arch>(acc[r][i]) + tail[r][i]) * w.scales[j + r], j + r, c + i * ldc, ep); });
            });
        } else {
            float tail_acc[R][M] = {};
            for (std::size_t gi = 0; gi < groups; ++gi) {
                const std::size_t i0 = gi * g, i1 = std::min(k, i0 + g);
                B part[R][M];
                static_for<R>([&](auto r) { static_for<M>([&](auto i) { part[r][i] = B(0.f); }); });
                float tail[R][M] = {};
                scalars(j, vectors(j, i0, i1, part), i1, tail);
                static_for<R>([&](auto r) {
                    const float s = w.scales[(j + r) * groups + gi];
                    static_for<M>([&](auto i) {
                        acc[r][i] = xsimd::fma(part[r][i], B(s), acc[r][i]);
                        tail_acc[r][i] = std::fma(tail[r][i], s, tail_acc[r][i]);
                    });
                });
            }
            static_for<R>([&](auto r) {
                static_for<M>([&](auto i) { finish(hsum<Arch>(acc[r][i]) + tail_acc[r][i], j + r, c + i * ldc, ep); });
            });
        }
    };
    constexpr std::size_t R = int8_group_rows<M, Arch, Grouped>;
    std::size_t j = j0;
    for (; j + R <= j1; j += R) rows(j, std::integral_constant<std::size_t, R>{});
    for (; j < j1; ++j) rows(j, std::integral_constant<std::size_t, 1>{});
}

template <std::size_t M, class Arch, class Act, class E>
void gemv_int8_rows(const float* a, std::size_t lda, const int8_matrix& w, float* c, std::size_t ldc,
                    const epilogue<Act>& ep, E& exec) {
    constexpr std::size_t grain = 64;  // chunks aligned to 64 outputs: the same path for any thread count
    const std::size_t parts = std::min<std::size_t>(exec.size(), (w.n + grain - 1) / grain);
    exec.run(parts, [&](std::size_t t) {
        const core::range r = core::split(w.n, parts, t, grain);
        if (w.groups() > 1) gemv_int8_range<M, Arch, true>(a, lda, w, c, ldc, ep, r.begin, r.end);
        else gemv_int8_range<M, Arch, false>(a, lda, w, c, ldc, ep, r.begin, r.end);
    });
}

}  // namespace detail

// C (m, n) = Act(alpha A (m, k) . W^T + bias) [+ C] with int8 W, 1 <= m <= gemv_max_rows.
template <class Arch = default_arch, activation Act = act::identity, core::executor E = core::sequential>
void gemv_int8(std::size_t m, const float* a, std::size_t lda, const int8_matrix& w, float* c, std::size_t ldc,
               const epilogue<Act>& ep = {}, E&& exec = E{}) {
    w.check("gemv_int8");
    if (m > gemv_max_rows)
        throw shape_error(core::describe("too many rows for gemv_int8", "gemv_int8", "m <= " + std::to_string(gemv_max_rows), m));
    if (m > 0 && (!a || !c || lda < w.k || ldc < w.n))
        throw shape_error(core::describe("gemv_int8 operands", "gemv_int8",
                                         "A and C, lda >= k = " + std::to_string(w.k) + ", ldc >= n = " + std::to_string(w.n),
                                         "lda=" + std::to_string(lda) + ", ldc=" + std::to_string(ldc)));
    switch (m) {
        case 0: return;
        case 1: return detail::gemv_int8_rows<1, Arch>(a, lda, w, c, ldc, ep, exec);
        case 2: return detail::gemv_int8_rows<2, Arch>(a, lda, w, c, ldc, ep, exec);
        case 3: return detail::gemv_int8_rows<3, Arch>(a, lda, w, c, ldc, ep, exec);
        default: return detail::gemv_int8_rows<4, Arch>(a, lda, w, c, ldc, ep, exec);
    }
}

}  // namespace pali3::kernels
