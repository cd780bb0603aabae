// int8 weights for decoding (issue 25): symmetric quantisation with one f32 scale per output row,
// or per group of `group` values along k (llama.cpp's Q8_0 is group 32), and the matrix-vector
// product C (m, n) = A (m, k) . W^T for m <= gemv_max_rows rows of f32 A, reading the int8 W
// exactly once. Half the bytes of bf16, a quarter of f32. Each row of A is quantised per call to
// int16 with one scale (quantize_int16: at most half a step of 1/32767 of the row's largest
// value), and the products are integers: int8 x int16 summed exactly (vpmaddwd on AVX2, a plain
// loop elsewhere), then multiplied by the scales. So an output is the exact dot product of the
// stored integers, scaled: the f32 rounding of the scaling is the only other error.
//
//     std::vector<std::int8_t> q(n * k);  std::vector<float> s(n * int8_groups(k, 32));
//     kernels::quantize_int8(w.data(), n, k, k, 32, q.data(), k, s.data());
//     kernels::gemv_int8(1, x.data(), k, kernels::int8_matrix{q.data(), n, k, k, s.data(), 32}, y.data(), n);
//
// Each output is produced in a fixed order set by the shape alone (thread-count independent).
#pragma once

#include <algorithm>
#include <array>
#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <limits>
#include <vector>

#include "pali3/core/error.hpp"
#include "pali3/core/threading.hpp"
#include "pali3/kernels/gemm.hpp"
#include "pali3/kernels/gemv.hpp"
#include "pali3/kernels/int8_matrix.hpp"
#include "pali3/kernels/matrix.hpp"
#include "pali3/kernels/simd.hpp"

namespace pali3::kernels {

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

// The form gemv_int8 multiplies a row of A in: q = round(a / scale) in [-32767, 32767] with
// scale = max|a| / 32767 (0 for an all-zero row). Returns the scale; a row holding NaN or Inf
// returns NaN (its outputs are then NaN, as the f32 products would be). The error per value is at
// most half a step: relative to the row's largest value, 1.5e-5, so an output's error from A is
// ~1e-5 of the output's scale at worst and far below the int8 weights' own (~4e-3 per weight).
inline float quantize_int16(const float* a, std::size_t k, std::int16_t* q) noexcept {
    float amax = 0.f;
    if (!detail::finite_absmax(a, k, amax)) {
        std::fill(q, q + k, std::int16_t{0});
        return std::numeric_limits<float>::quiet_NaN();
    }
    const float scale = amax / 32767.f, inv = amax > 0.f ? 32767.f / amax : 0.f;
    for (std::size_t i = 0; i < k; ++i)
        q[i] = static_cast<std::int16_t>(std::clamp(std::nearbyint(a[i] * inv), -32767.f, 32767.f));
    return scale;
}

namespace detail {

// Always inlined: as an ordinary inline function g++ 12 found it free of side effects (pure-const)
// and deleted the calls before inlining them, so no prefetch was ever issued. Into L2
// (prefetcht1), not L1: on a Zen 4 the L1 form held the 1-row GEMV at ~12 GB/s from DRAM, the
// L2 form reads at the limit (~22 GB/s on 1 thread; speed log 29): far more misses in flight.
[[gnu::always_inline]] inline void prefetch_line(const void* p) noexcept {
#if defined(__GNUC__) || defined(__clang__)
    __builtin_prefetch(p, 0, 2);
#else
    (void)p;
#endif
}

// Integer products are summed exactly in int32 for at most this many values, then flushed: one
// product is at most 127 * 32767 < 2^22, a 32-bit lane of vpmaddwd gathers two per step, so a lane
// stays below 2^31 for 256 steps of 16 values.
inline constexpr std::size_t int8_flush_values = 4096;

// The exact integer dot product of qa and row q over [i0, i1), any length (the portable path and
// the tails of the vector one).
inline std::int64_t int_dot(const std::int16_t* qa, const std::int8_t* q, std::size_t i0, std::size_t i1) noexcept {
    std::int64_t s = 0;
    for (std::size_t i = i0; i < i1; ++i) s += std::int32_t{qa[i]} * std::int32_t{q[i]};
    return s;
}

// Outputs [j0, j1) of the integer GEMV, portable: per row of W and of A, the exact integer sum of
// each scale group (int64), times the group's scale, summed over groups in f32 (std::fma), times
// A's scale. One scale per row: the exact sum over the row times both scales in double.
template <std::size_t M, class Act>
void gemv_int8_scalar(const std::int16_t* qa, std::size_t ldq, const float* sa, const int8_matrix& w, float* c,
                      std::size_t ldc, const epilogue<Act>& ep, std::size_t j0, std::size_t j1) {
    const std::size_t g = w.group_size(), groups = w.groups(), k = w.k;
    for (std::size_t j = j0; j < j1; ++j) {
        const std::int8_t* row = w.q + j * w.ld;
        for (std::size_t i = 0; i < M; ++i) {
            float dot;
            if (groups == 1) {
                dot = static_cast<float>(static_cast<double>(int_dot(qa + i * ldq, row, 0, k)) * w.scales[j] * sa[i]);
            } else {
                float acc = 0.f;
                for (std::size_t gi = 0; gi < groups; ++gi)
                    acc = std::fma(static_cast<float>(int_dot(qa + i * ldq, row, gi * g, std::min(k, gi * g + g))),
                                   w.scales[j * groups + gi], acc);
                dot = acc * sa[i];
            }
            finish(dot, j, c + i * ldc, ep);
        }
    }
}

#if defined(__AVX2__)
// The vector forms of the integer GEMV's step: `step` int8 weights widened in-lane to int16
// (vpmovsxbw) and multiplied by `step` int16 values of A, pairs summed into int32 lanes, exactly.
// AVX2: 16 values per step (vpmaddwd + vpaddd), 16 registers.
struct int8_lanes_avx2 {
    using ivec = __m256i;
    using fvec = __m256;
    static constexpr std::size_t step = 16, registers = 16;
    static ivec zero() noexcept { return _mm256_setzero_si256(); }
    static fvec fzero() noexcept { return _mm256_setzero_ps(); }
    static ivec load_a(const std::int16_t* p) noexcept { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)); }
    static ivec load_w(const std::int8_t* p) noexcept {
        return _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
    }
    static ivec dot(ivec acc, ivec a, ivec w) noexcept { return _mm256_add_epi32(acc, _mm256_madd_epi16(a, w)); }
    static std::int64_t hsum(ivec v) noexcept {  // exact sum of the lanes
        const __m256i wide = _mm256_add_epi64(_mm256_cvtepi32_epi64(_mm256_castsi256_si128(v)),
                                              _mm256_cvtepi32_epi64(_mm256_extracti128_si256(v, 1)));
        const __m128i t = _mm_add_epi64(_mm256_castsi256_si128(wide), _mm256_extracti128_si256(wide, 1));
        return _mm_cvtsi128_si64(t) + _mm_extract_epi64(t, 1);
    }
    static fvec scaled(fvec f, ivec acc, float s) noexcept { return _mm256_fmadd_ps(_mm256_cvtepi32_ps(acc), _mm256_set1_ps(s), f); }
    static float fhsum(fvec f) noexcept { return kernels::hsum<xsimd::avx2>(fbatch<xsimd::avx2>(f)); }
};
#endif

#if defined(__AVX512BW__)
// AVX-512: 32 values per step, 32 registers; `vpdpwssd` (AVX512-VNNI: the pairs' products summed
// into the lanes in one instruction) where the target has it, else vpmaddwd + vpaddd. The GEMV
// reads W at the memory limit only with few instructions per byte (speed log 29: the AVX2 step
// reached 47-57 % of the read limit on a Zen 4).
struct int8_lanes_avx512 {
    using ivec = __m512i;
    using fvec = __m512;
    static constexpr std::size_t step = 32, registers = 32;
    static ivec zero() noexcept { return _mm512_setzero_si512(); }
    static fvec fzero() noexcept { return _mm512_setzero_ps(); }
    static ivec load_a(const std::int16_t* p) noexcept { return _mm512_loadu_si512(p); }
    static ivec load_w(const std::int8_t* p) noexcept {
        return _mm512_cvtepi8_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
    }
    static ivec dot(ivec acc, ivec a, ivec w) noexcept {
#if defined(__AVX512VNNI__)
        return _mm512_dpwssd_epi32(acc, a, w);
#else
        return _mm512_add_epi32(acc, _mm512_madd_epi16(a, w));
#endif
    }
    static std::int64_t hsum(ivec v) noexcept {
        return _mm512_reduce_add_epi64(_mm512_add_epi64(_mm512_cvtepi32_epi64(_mm512_castsi512_si256(v)),
                                                        _mm512_cvtepi32_epi64(_mm512_extracti64x4_epi64(v, 1))));
    }
    static fvec scaled(fvec f, ivec acc, float s) noexcept { return _mm512_fmadd_ps(_mm512_cvtepi32_ps(acc), _mm512_set1_ps(s), f); }
    static float fhsum(fvec f) noexcept { return _mm512_reduce_add_ps(f); }
};
#endif

#if defined(__AVX2__)
// Rows of W per step. One scale per row: R x M int32 accumulators, M vectors of A and one of W
// in the registers. Per group: R x M int32 and R x M f32 accumulators, at most 4 rows (6 fit
// for one row of A on AVX2 but ran 1.2-1.6x slower: speed log 24). With 32 registers, a power
// of two (a divisor of the 64-output chunks): 6 rows for 4 rows of A ran 1.3-1.6x slower than 4
// on 2 threads (speed log 29).
template <class V, std::size_t M, bool Grouped>
inline constexpr std::size_t int8_step_rows_fit =
    Grouped ? std::clamp<std::size_t>((V::registers - M - 2) / (2 * M), 1, 4) : std::clamp<std::size_t>((V::registers - M - 1) / M, 1, 8);
template <class V, std::size_t M, bool Grouped>
inline constexpr std::size_t int8_step_rows =
    V::registers == 32 ? std::bit_floor(int8_step_rows_fit<V, M, Grouped>) : int8_step_rows_fit<V, M, Grouped>;

// Outputs [j0, j1) with integer products, V::step weights per row and step (int8_lanes_*: three
// instructions per 16 weights and row of A on AVX2, where the f32 path takes six; two per 32 with
// AVX512-VNNI). Per row scale: lanes flushed into int64 every int8_flush_values (exact), the
// total times both scales in double, as the portable path. Per group: each group's lanes
// converted to f32 and multiplied by the group's scale into f32 lanes (exact for groups of 32: a
// lane's sum is below 2^24).
template <class V, std::size_t M, bool Grouped, class Act>
[[gnu::noinline]] void gemv_int8_lanes(const std::int16_t* qa, std::size_t ldq, const float* sa, const int8_matrix& w,
                                       float* c, std::size_t ldc, const epilogue<Act>& ep, std::size_t j0, std::size_t j1) {
    using ivec = typename V::ivec;
    using fvec = typename V::fvec;
    constexpr std::size_t R = int8_step_rows<V, M, Grouped>, S = V::step;
    constexpr std::size_t lines = (R * S + 63) / 64;  // cache lines of W one step reads
    const std::size_t g = w.group_size(), groups = w.groups(), k = w.k;
    // acc[r][i] += qa row i . W row j + r over [p, i1) in whole steps; returns where they stop.
    auto steps = [&]<std::size_t RR>(std::size_t j, std::size_t p, std::size_t i1, ivec (&acc)[RR][M])
        __attribute__((always_inline)) {
        for (; p + S <= i1; p += S) {
            // The RR rows after the next RR, `lines` cache lines per step, so that they are in
            // cache when their turn comes (rows of a few KB are short streams for the hardware
            // prefetcher; two groups ahead: 1.1-1.3x the mean rate of one, speed log 29).
            for (std::size_t t = 0; t < lines; ++t) {
                const std::size_t idx = p / S * lines + t, rn = j + 2 * RR + idx % RR, off = idx / RR * 64;
                if (rn < w.n && off < k) prefetch_line(w.q + rn * w.ld + off);
            }
            ivec av[M];
            static_for<M>([&](auto i) { av[i] = V::load_a(qa + i * ldq + p); });
            static_for<RR>([&](auto r) {
                ivec wv = V::load_w(w.q + (j + r) * w.ld + p);
                asm("" : "+v"(wv));  // keep the widened W in a register (not folded into each product)
                static_for<M>([&](auto i) { acc[r][i] = V::dot(acc[r][i], av[i], wv); });
            });
        }
        return p;
    };
    auto rows = [&]<std::size_t RR>(std::size_t j, std::integral_constant<std::size_t, RR>) __attribute__((always_inline)) {
        ivec acc[RR][M];
        auto zero = [&] { static_for<RR>([&](auto r) { static_for<M>([&](auto i) { acc[r][i] = V::zero(); }); }); };
        zero();
        if constexpr (!Grouped) {
            std::int64_t total[RR][M] = {};
            for (std::size_t b0 = 0; b0 < k; b0 += int8_flush_values) {
                const std::size_t b1 = std::min(k, b0 + int8_flush_values);
                const std::size_t p = steps(j, b0, b1, acc);
                static_for<RR>([&](auto r) {
                    static_for<M>([&](auto i) {
                        total[r][i] += V::hsum(acc[r][i]) + int_dot(qa + i * ldq, w.q + (j + r) * w.ld, p, b1);
                    });
                });
                zero();
            }
            static_for<RR>([&](auto r) {
                static_for<M>([&](auto i) {
                    finish(static_cast<float>(static_cast<double>(total[r][i]) * w.scales[j + r] * sa[i]), j + r, c + i * ldc, ep);
                });
            });
        } else {
            fvec facc[RR][M];
            float tail[RR][M] = {};
            static_for<RR>([&](auto r) { static_for<M>([&](auto i) { facc[r][i] = V::fzero(); }); });
            for (std::size_t gi = 0; gi < groups; ++gi) {
                const std::size_t i0 = gi * g, i1 = std::min(k, i0 + g);
                for (std::size_t b0 = i0; b0 < i1; b0 += int8_flush_values) {
                    const std::size_t b1 = std::min(i1, b0 + int8_flush_values);
                    const std::size_t p = steps(j, b0, b1, acc);
                    static_for<RR>([&](auto r) {
                        const float sv = w.scales[(j + r) * groups + gi];
                        static_for<M>([&](auto i) { facc[r][i] = V::scaled(facc[r][i], acc[r][i], sv); });
                    });
                    if (p < b1)  // the last group's values past the last whole step
                        static_for<RR>([&](auto r) {
                            const float s = w.scales[(j + r) * groups + gi];
                            static_for<M>([&](auto i) {
                                tail[r][i] = std::fma(static_cast<float>(int_dot(qa + i * ldq, w.q + (j + r) * w.ld, p, b1)), s, tail[r][i]);
                            });
                        });
                    zero();
                }
            }
            static_for<RR>([&](auto r) {
                static_for<M>([&](auto i) { finish((V::fhsum(facc[r][i]) + tail[r][i]) * sa[i], j + r, c + i * ldc, ep); });
            });
        }
    };
    std::size_t j = j0;
    for (; j + R <= j1; j += R) rows(j, std::integral_constant<std::size_t, R>{});
    for (; j < j1; ++j) rows(j, std::integral_constant<std::size_t, 1>{});
}
#endif

template <std::size_t M, class Arch, class Act, class E>
void gemv_int8_rows(const float* a, std::size_t lda, const int8_matrix& w, float* c, std::size_t ldc,
                    const epilogue<Act>& ep, E& exec) {
    // A quantised once per call (M x k int16, reused buffer of the calling thread), shared by the
    // workers.
    const std::size_t ldq = (w.k + 15) / 16 * 16;
    thread_local std::vector<std::int16_t> buffer;
    if (buffer.size() < M * ldq) buffer.resize(M * ldq);
    std::int16_t* qa = buffer.data();
    float sa[M];
    for (std::size_t i = 0; i < M; ++i) sa[i] = quantize_int16(a + i * lda, w.k, qa + i * ldq);
    constexpr std::size_t grain = 64;  // chunks aligned to 64 outputs: the same path for any thread count
    const std::size_t parts = std::min<std::size_t>(exec.size(), (w.n + grain - 1) / grain);
    exec.run(parts, [&](std::size_t t) {
        const core::range r = core::split(w.n, parts, t, grain);
        // One branch per ISA, chained by `else` so that an AVX-512 build instantiates only the
        // AVX-512 lanes (the AVX2 ones are tested through the AVX2 arch tag, tests/kernels/test_int8.cpp).
#if defined(__AVX512BW__)
        if constexpr (is_avx512<Arch>) {
            if (w.groups() > 1) gemv_int8_lanes<int8_lanes_avx512, M, true>(qa, ldq, sa, w, c, ldc, ep, r.begin, r.end);
            else gemv_int8_lanes<int8_lanes_avx512, M, false>(qa, ldq, sa, w, c, ldc, ep, r.begin, r.end);
        } else
#endif
#if defined(__AVX2__)
        if constexpr (is_avx2<Arch> || is_avx512<Arch>) {
            if (w.groups() > 1) gemv_int8_lanes<int8_lanes_avx2, M, true>(qa, ldq, sa, w, c, ldc, ep, r.begin, r.end);
            else gemv_int8_lanes<int8_lanes_avx2, M, false>(qa, ldq, sa, w, c, ldc, ep, r.begin, r.end);
        } else
#endif
        {
            gemv_int8_scalar<M>(qa, ldq, sa, w, c, ldc, ep, r.begin, r.end);
        }
    });
}

// The operands of gemv_int8 / gemm_int8, checked once per call under the caller's name.
inline void check_int8_operands(const char* where, std::size_t m, const float* a, std::size_t lda, const int8_matrix& w,
                                const float* c, std::size_t ldc) {
    w.check(where);
    if (m > 0 && (!a || !c || lda < w.k || ldc < w.n))
        throw shape_error(core::describe(std::string(where) + " operands", where,
                                         "A and C, lda >= k = " + std::to_string(w.k) + ", ldc >= n = " + std::to_string(w.n),
                                         "lda=" + std::to_string(lda) + ", ldc=" + std::to_string(ldc)));
}

// gemv_int8 after check_int8_operands, m <= gemv_max_rows.
template <class Arch, class Act, class E>
void gemv_int8_checked(std::size_t m, const float* a, std::size_t lda, const int8_matrix& w, float* c, std::size_t ldc,
                       const epilogue<Act>& ep, E& exec) {
    dispatch_rows(m, [&](auto rows) { gemv_int8_rows<rows(), Arch>(a, lda, w, c, ldc, ep, exec); });
}

}  // namespace detail

// C (m, n) = Act(alpha A (m, k) . W^T + bias) [+ C] with int8 W, 1 <= m <= gemv_max_rows; A is
// multiplied in its int16 form (quantize_int16), a row holding NaN or Inf gives NaN outputs.
template <class Arch = default_arch, activation Act = act::identity, core::executor E = core::sequential>
void gemv_int8(std::size_t m, const float* a, std::size_t lda, const int8_matrix& w, float* c, std::size_t ldc,
               const epilogue<Act>& ep = {}, E&& exec = E{}) {
    detail::check_int8_operands("gemv_int8", m, a, lda, w, c, ldc);
    detail::check_gemv_rows("gemv_int8", m);
    detail::gemv_int8_checked<Arch>(m, a, lda, w, c, ldc, ep, exec);
}

// C (m, n) = Act(alpha A (m, k) . W^T + bias) [+ C] with int8 W, any m. Up to gemv_max_rows rows
// read the int8 W once (gemv_int8: A in int16, integer products). More rows, on a CPU with
// AVX512-VNNI and W with one scale per row: integer products (int8_products.hpp: A quantised per
// row to int8, `vpdpbusd`), unless the tiling names another engine (tiling.int8_engine, or the
// process's choice, int8_products::set_enabled). Otherwise the f32 GEMM, whose W packer
// dequantises the int8 values as it packs them (gemm_blocks.hpp): one conversion per weight and
// call against m multiply-adds per weight, no f32 copy of W, and A exact in f32.
template <class Arch = default_arch, activation Act = act::identity, core::executor E = core::sequential>
void gemm_int8(std::size_t m, const float* a, std::size_t lda, const int8_matrix& w, float* c, std::size_t ldc,
               const epilogue<Act>& ep = {}, E&& exec = E{}, const gemm_tiling<Arch>& tiling = {}) {
    detail::check_int8_operands("gemm_int8", m, a, lda, w, c, ldc);
    if (m <= gemv_max_rows) return detail::gemv_int8_checked<Arch>(m, a, lda, w, c, ldc, ep, exec);
    const auto engine = tiling.int8_engine.value_or(int8_products::backend_in_use());
    if (engine != int8_products::backend::none) {
        if (int8_products::supports(w))
            return int8_products::gemm_int8(engine, m, a, lda, w, c, ldc, ep, exec, tiling.chunks_per_thread,
                                            tiling.parallel_min_macs);
        // Per-group scales or k past max_k: the portable path, but an engine the call names must exist here.
        if (tiling.int8_engine) int8_products::require(engine, "gemm_int8");
    }
    detail::check_tiling(tiling, "gemm_int8");
    const std::size_t threads = m * w.n * w.k >= tiling.parallel_min_macs ? exec.size() : 1;
    detail::gemm_packed(m, detail::a_operand{a, lda}, w, c, ldc, ep, exec, tiling, threads);
}

}  // namespace pali3::kernels
