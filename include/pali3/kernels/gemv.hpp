// Matrix-vector products for decoding: C (m, n) = A (m, k) . W^T for m <= 4 rows, streaming the
// weight matrix exactly once whatever m is (beams and small batches share one pass). Bound by
// memory bandwidth: a bf16 W halves the bytes read. Each output element is produced in a fixed
// order set by the shape alone, so the result does not depend on the thread count; the kernels
// are never inlined into an executor's tasks, so their code (and where the compiler contracts a
// multiply and an add into an FMA) is the same whichever executor runs them.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "pali3/core/threading.hpp"
#include "pali3/kernels/matrix.hpp"
#include "pali3/kernels/simd.hpp"

namespace pali3::kernels {

inline constexpr std::size_t gemv_max_rows = 4;

namespace detail {

// The GEMV kernels take at most gemv_max_rows rows of A.
inline void check_gemv_rows(const char* kernel, std::size_t m) {
    if (m > gemv_max_rows)
        throw shape_error(core::describe(std::string("too many rows for ") + kernel, kernel, "m <= " + std::to_string(gemv_max_rows), m));
}

// f(std::integral_constant<std::size_t, m>{}) for 1 <= m <= gemv_max_rows (nothing for m = 0): the
// GEMV kernels are instantiated per row count.
template <class F>
void dispatch_rows(std::size_t m, F&& f) {
    static_assert(gemv_max_rows == 4, "dispatch_rows lists the row counts 1..4");
    switch (m) {
        case 0: return;
        case 1: return f(std::integral_constant<std::size_t, 1>{});
        case 2: return f(std::integral_constant<std::size_t, 2>{});
        case 3: return f(std::integral_constant<std::size_t, 3>{});
        default: return f(std::integral_constant<std::size_t, 4>{});
    }
}

// f(0) .. f(N-1) with compile-time indices; always inlined, so a micro-kernel's accumulators stay
// in registers (g++ otherwise may outline a large unrolled body and pass them through memory).
template <std::size_t N, class F>
[[gnu::always_inline]] inline void static_for(F&& f) {
    [&]<std::size_t... I>(std::index_sequence<I...>) __attribute__((always_inline)) {
        (f(std::integral_constant<std::size_t, I>{}), ...);
    }(std::make_index_sequence<N>{});
}

template <class Act>
inline void finish(float dot, std::size_t j, float* c, const epilogue<Act>& ep) {
    float v = ep.alpha * dot;
    if (ep.bias) v += ep.bias[j];
    v = Act::apply(v);
    if (ep.accumulate) v += c[j];
    c[j] = v;
}

// Rows of W per group in the (n, k) kernel: R x M accumulators, M vectors of A and one W vector
// in the register file. Measured from DRAM (speed log 16): bf16, one row of A: 8 rows 1.3x over
// 4 (more independent streams and chains); four rows of A: 6-7 rows 1.3-1.45x over 4.
template <std::size_t M, class Arch>
inline constexpr std::size_t gemv_group_rows = std::clamp<std::size_t>(
    ((is_avx512<Arch> ? 32 : 16) - M - 2) / M, 1, 8);

// W stored (n, k): each output is a dot product over a contiguous row. A group of rows gives
// R x M independent FMA chains and R concurrent streams of W.
template <std::size_t M, class Arch, class Act, class T>
[[gnu::noinline]] void gemv_nk_range(const float* a, std::size_t lda, const weight_ref<T>& w, float* c,
                   std::size_t ldc, const epilogue<Act>& ep, std::size_t j0, std::size_t j1) {
    using B = fbatch<Arch>;
    constexpr std::size_t W = B::size;
    constexpr std::size_t R = gemv_group_rows<M, Arch>;
    const std::size_t k = w.k;
    std::size_t j = j0;
    for (; j + R <= j1; j += R) {
        B acc[R][M];
        static_for<R>([&](auto r) { static_for<M>([&](auto i) { acc[r][i] = B(0.f); }); });
        // With several rows of A the next group's rows are prefetched at the same column, one
        // group ahead: the hardware prefetcher, following R interleaved streams, fell behind
        // (speed log 18: four rows at k = 256, 8 -> 21 GB/s). The last group of the range
        // re-touches its own rows. One row of A is left to the hardware prefetcher: there the
        // explicit prefetch helped from DRAM but cost 10-17 % on a decoder step whose weights
        // partly stay in L3 (speed log 18).
        const T* ahead = w.data + (j + 2 * R <= j1 ? j + R : j) * w.ld;
        std::size_t p = 0;
        for (; p + W <= k; p += W) {
            B x[M];
            static_for<M>([&](auto i) { x[i] = B::load_unaligned(a + i * lda + p); });
            static_for<R>([&](auto r) {
                B wv = load_as_float<Arch>(w.data + (j + r) * w.ld + p);
                if constexpr (M > 1) {
                    __builtin_prefetch(ahead + r * w.ld + p);
                    keep_in_register(wv);
                }
                static_for<M>([&](auto i) { acc[r][i] = xsimd::fma(wv, x[i], acc[r][i]); });
            });
        }
        // Reduced to scalars first, in code that always inlines: a larger out-of-line lambda taking
        // `acc` by reference made g++ store every accumulator to the stack on each k step.
        float sums[R][M];
        static_for<R>([&](auto r) __attribute__((always_inline)) {
            static_for<M>([&](auto i) __attribute__((always_inline)) { sums[r][i] = hsum<Arch>(acc[r][i]); });
        });
        for (std::size_t r = 0; r < R; ++r)
            for (std::size_t i = 0; i < M; ++i) {
                float s = sums[r][i];
                // std::fma, not `s += a * w`: g++ (gnu++20 contracts) fused the remainder in some
                // instantiations and not others, so a column's last bit depended on whether it fell
                // in a group or in the range's tail, i.e. on the thread count (found with silu).
                for (std::size_t q = p; q < k; ++q)
                    s = std::fma(a[i * lda + q], to_float(w.data[(j + r) * w.ld + q]), s);
                finish(s, j + r, c + i * ldc, ep);
            }
    }
    for (; j < j1; ++j) {
        B acc[M];
        static_for<M>([&](auto i) { acc[i] = B(0.f); });
        std::size_t p = 0;
        for (; p + W <= k; p += W) {
            const B wv = load_as_float<Arch>(w.data + j * w.ld + p);
            static_for<M>([&](auto i) {
                acc[i] = xsimd::fma(wv, B::load_unaligned(a + i * lda + p), acc[i]);
            });
        }
        float sums[M];
        static_for<M>([&](auto i) __attribute__((always_inline)) { sums[i] = hsum<Arch>(acc[i]); });
        for (std::size_t i = 0; i < M; ++i) {
            float s = sums[i];
            for (std::size_t q = p; q < k; ++q) s = std::fma(a[i * lda + q], to_float(w.data[j * w.ld + q]), s);
            finish(s, j, c + i * ldc, ep);
        }
    }
}

// W stored (k, n): outputs j0..j1 accumulate a[p] * W[p, j] over p = p_begin..p_end-1 in order.
// A block of columns keeps its M x J partial sums in an L1-sized buffer while P rows of W at a
// time stream past as P sequential segments of J columns; the row's scalars of A stay in
// registers. (Walking all k rows for a few vectors of columns at a time, the first version,
// touched 64-128 bytes per row per pass: half the read bandwidth, speed log 16.) One FMA per p,
// in order, whatever the block sizes and thread count. With `part` the raw sums go to
// part[i * ldp + j] (a k slice, see gemv_kn_slices); without, the epilogue writes C.
template <std::size_t M, class Arch, class Act, class T>
[[gnu::noinline]] void gemv_kn_range(const float* a, std::size_t lda, const weight_ref<T>& w, float* c,
                   std::size_t ldc, const epilogue<Act>& ep, std::size_t j0, std::size_t j1,
                   std::size_t p_begin, std::size_t p_end, float* part = nullptr, std::size_t ldp = 0) {
    using B = fbatch<Arch>;
    constexpr std::size_t W = B::size;
    constexpr std::size_t P = gemv_group_rows<M, Arch>;  // P x M scalars of A in registers
    constexpr std::size_t J_max = 4096 / M / 16 * 16;  // M x J_max partial sums (<= 16 KB), rows aligned
    alignas(64) float sums[M * J_max];
    for (std::size_t jb = j0; jb < j1; jb += J_max) {
        const std::size_t J = std::min(J_max, j1 - jb);
        const std::size_t Jv = J / W * W;  // vector part; the rest (only at the end of W) is scalar
        for (std::size_t p0 = p_begin; p0 < p_end; p0 += P) {
            const std::size_t rows = std::min(P, p_end - p0);
            const bool first = p0 == p_begin;
            const T* wrow = w.data + p0 * w.ld + jb;
            if (rows == P) {
                // With several rows of A the next P rows are prefetched at the same columns, as in
                // gemv_nk_range (speed log 18: four rows, bf16, 15 -> 21 GB/s); the last group
                // re-touches its own.
                const T* ahead = p0 + 2 * P <= p_end ? wrow + P * w.ld : wrow;
                B x[P][M];
                static_for<P>([&](auto q) __attribute__((always_inline)) {
                    static_for<M>([&](auto i) __attribute__((always_inline)) { x[q][i] = B(a[i * lda + p0 + q]); });
                });
                for (std::size_t jv = 0; jv < Jv; jv += W) {
                    B acc[M];
                    static_for<M>([&](auto i) __attribute__((always_inline)) {
                        acc[i] = first ? B(0.f) : B::load_aligned(sums + i * J_max + jv);
                    });
                    static_for<P>([&](auto q) __attribute__((always_inline)) {
                        B wv = load_as_float<Arch>(wrow + q * w.ld + jv);
                        if constexpr (M > 1) {
                            __builtin_prefetch(ahead + q * w.ld + jv);
                            keep_in_register(wv);
                        }
                        static_for<M>([&](auto i) __attribute__((always_inline)) { acc[i] = xsimd::fma(x[q][i], wv, acc[i]); });
                    });
                    static_for<M>([&](auto i) __attribute__((always_inline)) { acc[i].store_aligned(sums + i * J_max + jv); });
                }
            } else {
                for (std::size_t jv = 0; jv < Jv; jv += W) {
                    B acc[M];
                    static_for<M>([&](auto i) __attribute__((always_inline)) {
                        acc[i] = first ? B(0.f) : B::load_aligned(sums + i * J_max + jv);
                    });
                    for (std::size_t q = 0; q < rows; ++q) {
                        const B wv = load_as_float<Arch>(wrow + q * w.ld + jv);
                        static_for<M>([&](auto i) __attribute__((always_inline)) {
                            acc[i] = xsimd::fma(B(a[i * lda + p0 + q]), wv, acc[i]);
                        });
                    }
                    static_for<M>([&](auto i) __attribute__((always_inline)) { acc[i].store_aligned(sums + i * J_max + jv); });
                }
            }
            for (std::size_t j = Jv; j < J; ++j)
                for (std::size_t i = 0; i < M; ++i) {
                    float s = first ? 0.f : sums[i * J_max + j];
                    for (std::size_t q = 0; q < rows; ++q) s = std::fma(a[i * lda + p0 + q], to_float(wrow[q * w.ld + j]), s);
                    sums[i * J_max + j] = s;
                }
        }
        if (p_begin == p_end)  // no rows (k = 0): the sums are zero
            std::fill(sums, sums + M * J_max, 0.f);
        for (std::size_t i = 0; i < M; ++i) {
            if (part)
                std::copy(sums + i * J_max, sums + i * J_max + J, part + i * ldp + jb);
            else
                for (std::size_t j = 0; j < J; ++j) finish(sums[i * J_max + j], jb + j, c + i * ldc, ep);
        }
    }
}

// The (k, n) kernel sums k in this many slices, each over its own rows of W, the slice sums then
// added in slice order: fixed by the shape, never by the thread count, so results stay bitwise
// the same on any number of threads. Two threads then each stream a contiguous half of W, full
// rows wide, instead of half of every row (short 2-4 KB runs that share each DRAM page between
// the cores: speed log 17). One slice below gemv_kn_split_min_k rows.
inline constexpr std::size_t gemv_kn_split_min_k = 256;
inline constexpr std::size_t gemv_kn_slices(std::size_t k) { return k >= gemv_kn_split_min_k ? 2 : 1; }

// C = epilogue(sum of the slices' sums, in slice order). Not inlined, like the range kernels: one
// body per (M, Act) whatever executor calls it, so the compiler's choice to contract
// alpha * dot + bias into an FMA cannot differ between thread counts.
template <std::size_t M, class Act>
[[gnu::noinline]] void gemv_kn_combine(const float* part, std::size_t slices, std::size_t n, float* c,
                                       std::size_t ldc, const epilogue<Act>& ep) {
    for (std::size_t i = 0; i < M; ++i)
        for (std::size_t j = 0; j < n; ++j) {
            float sum = part[i * n + j];
            for (std::size_t s = 1; s < slices; ++s) sum += part[(s * M + i) * n + j];
            finish(sum, j, c + i * ldc, ep);
        }
}

template <std::size_t M, class Arch, class Act, class T, class E>
void gemv_rows(const float* a, std::size_t lda, const weight_ref<T>& w, float* c, std::size_t ldc,
               const epilogue<Act>& ep, E& exec) {
    // Chunks aligned to 64 outputs keep every chunk on the same vector path for any thread count.
    constexpr std::size_t grain = 64;
    const std::size_t parts = std::min<std::size_t>(exec.size(), (w.n + grain - 1) / grain);
    const std::size_t slices = w.layout == weight_layout::nk ? 1 : gemv_kn_slices(w.k);
    if (slices == 1) {
        exec.run(parts, [&](std::size_t t) {
            const core::range r = core::split(w.n, parts, t, grain);
            if (w.layout == weight_layout::nk)
                gemv_nk_range<M, Arch>(a, lda, w, c, ldc, ep, r.begin, r.end);
            else
                gemv_kn_range<M, Arch>(a, lda, w, c, ldc, ep, r.begin, r.end, 0, w.k);
        });
        return;
    }
    // Slice s covers rows [s * k_slice, ...) of W, whole groups of P rows; tasks are
    // (slice, column part) with the slices of one column part next to each other, so two
    // threads take one slice each.
    constexpr std::size_t P = gemv_group_rows<M, Arch>;
    const std::size_t k_slice = std::max<std::size_t>(P, (w.k / slices + P - 1) / P * P);
    const std::size_t col_parts = std::max<std::size_t>(1, std::min((exec.size() + slices - 1) / slices,
                                                                    (w.n + grain - 1) / grain));
    std::vector<float> part(slices * M * w.n);
    exec.run(slices * col_parts, [&](std::size_t t) {
        const std::size_t s = t % slices;
        const core::range r = core::split(w.n, col_parts, t / slices, grain);
        const std::size_t p0 = std::min(w.k, s * k_slice), p1 = s + 1 == slices ? w.k : std::min(w.k, p0 + k_slice);
        gemv_kn_range<M, Arch>(a, lda, w, c, ldc, ep, r.begin, r.end, p0, p1, part.data() + s * M * w.n, w.n);
    });
    gemv_kn_combine<M>(part.data(), slices, w.n, c, ldc, ep);
}

}  // namespace detail

// C (m, n) = Act(alpha A (m, k) . W^T + bias) [+ C], for 1 <= m <= gemv_max_rows.
template <class Arch = default_arch, activation Act = act::identity, weight_storage T,
          core::executor E = core::sequential>
void gemv(std::size_t m, const float* a, std::size_t lda, const weight_ref<T>& w, float* c,
          std::size_t ldc, const epilogue<Act>& ep = {}, E&& exec = E{}) {
    detail::check_operands("gemv", m, lda, w, a, c, ldc);
    detail::check_gemv_rows("gemv", m);
    detail::dispatch_rows(m, [&](auto rows) { detail::gemv_rows<rows(), Arch>(a, lda, w, c, ldc, ep, exec); });
}

}  // namespace pali3::kernels
