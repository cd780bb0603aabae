// int8 GEMM with integer products (issue 25): C (m, n) = Act(alpha A (m, k) . W^T + bias) [+ C]
// for int8 W with one scale per output row (int8_matrix, group 0), on `vpdpbusd` (AVX512-VNNI:
// 64 u8 x s8 products per instruction into 16 int32 lanes, 4x the f32 FMA's 16 and 2x
// `vdpbf16ps`'s 32). Picked at run time; the portable path (f32 products on W dequantised while
// packed, int8.hpp) stays for CPUs without VNNI, for W with a scale per group along k, and for
// k > max_k.
//
// A is quantised per row (per token) on the fly, symmetric, as ONNX Runtime's dynamic quantisation
// does per tensor: q = round(a / s) in [-127, 127] with s = max|a| / 127 (quantize_uint8 below),
// stored as u8 = q + 128 (vpdpbusd's left operand is unsigned). The integer sums are exact:
//     sum_i (q_a + 128) q_w = sum_i q_a q_w + 128 colsum(W row)
// and colsum is computed once per packed row, so C = alpha s_a s_w (acc - 128 colsum) + bias.
// An output is the exact integer dot product of the quantised row and the stored W row, times the
// two scales in f32: the quantisation of A (half a step of 1/127 of the row's largest value) is
// the error this path adds to the int8 weights' own. A row holding NaN or Inf gives NaN outputs.
//
// Blocks: as the AVX512-BF16 engine (bf16_blocks.hpp): A packed once per 512-row block (k rounded
// up to 4, rows to 32), W once per 240-column block (or once for all: pack_weights) into 16-column
// panels of k quads (64 bytes: 16 columns x 4 consecutive k), 32 x 48 blocks of C computed by
// 8 rows x 3 panels of int32 accumulators. k is never split, so an output is summed in one order
// for any thread count.
//
// Which engine: per call when the caller names one (gemm_tiling::int8_engine), else the process's
// default (`backend_in_use()`): avx512_vnni where the CPU has AVX512-VNNI (with F, DQ, BW, VL),
// unless PALI3_INT8_DOT=0 in the environment (then, or with set_enabled(false), the portable path).
// AVX-VNNI (256-bit, without AVX-512) and AMX-INT8 tiles are not built: no CPU here has had them
// to test against (docs/speed-log.md, issue 25).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <vector>

#include "pali3/core/error.hpp"
#include "pali3/core/threading.hpp"
#include "pali3/kernels/activation.hpp"
#include "pali3/kernels/bf16_blocks.hpp"
#include "pali3/kernels/cpu_features.hpp"
#include "pali3/kernels/int8_matrix.hpp"
#include "pali3/kernels/matrix.hpp"

namespace pali3::kernels::int8_products {

// The engine of the integer products.
enum class backend { none = 0, avx512_vnni = 1 };

inline const char* backend_name(backend b) { return b == backend::avx512_vnni ? "AVX512-VNNI" : "none"; }

// The longest k the exact int32 sums allow: |sum| <= k x 255 x 127 < 2^31.
inline constexpr std::size_t max_k = 65536;

// Whether this engine computes `w`: one scale per row and k <= max_k (else the portable path).
inline bool supports(const int8_matrix& w) noexcept { return w.groups() == 1 && w.k <= max_k; }

// The form A's rows are multiplied in: q = round(a / scale) + 128 in [1, 255] with
// scale = max|a| / 127 (0 for an all-zero row, then every q is 128). Returns the scale; a row
// holding NaN or Inf returns NaN (q all 128). The vector packer gives the same bytes.
inline float quantize_uint8(const float* a, std::size_t k, std::uint8_t* q) noexcept {
    float amax = 0.f;
    if (!kernels::detail::finite_absmax(a, k, amax)) {
        std::fill(q, q + k, std::uint8_t{128});
        return std::numeric_limits<float>::quiet_NaN();
    }
    const float scale = amax / 127.f, inv = amax > 0.f ? 127.f / amax : 0.f;
    for (std::size_t i = 0; i < k; ++i)
        q[i] = static_cast<std::uint8_t>(std::clamp(std::nearbyint(a[i] * inv), -127.f, 127.f) + 128.f);
    return scale;
}

namespace detail {
inline bool probe_vnni() {
    bool on = true;
    if (env_flag("PALI3_INT8_DOT", on) && !on) return false;
    return cpu_has_avx512_vnni();
}

inline backend preferred_backend() {
    static const bool vnni = probe_vnni();
    return vnni ? backend::avx512_vnni : backend::none;
}
}  // namespace detail

using engine = engine_switch<backend, detail::preferred_backend>;

// Whether `b` can run in this process (probed once, thread-safe); none always can.
inline bool available(backend b) { return b == backend::none || detail::preferred_backend() == b; }

// The engine int8 GEMMs use now: preferred by default; set_enabled(false) or set_backend(none)
// switches to the portable path (benchmarks and tests compare the paths).
inline backend backend_in_use() { return engine::in_use(); }

inline bool enabled() { return backend_in_use() != backend::none; }

inline void set_enabled(bool on) { engine::set_enabled(on); }

// Picks an engine explicitly; false (and nothing changed) when it cannot run here.
inline bool set_backend(backend b) {
    if (!available(b)) return false;
    engine::set(b);
    return true;
}

// Throws unless `engine` is an integer-product engine this CPU runs.
inline void require(backend engine, const char* where) {
    if (engine == backend::none || !available(engine))
        throw value_error(core::describe("int8-product engine not available", where,
                                         "an engine this CPU runs (int8_products::available())", backend_name(engine)));
}

// An int8 matrix packed once for the integer-product GEMM (pack_weights): the quad panels, the
// column sums and the scales, padded to whole register blocks; what every call would otherwise
// redo. `source` and `scales_source` are the values and scales it was made from.
struct packed_weights {
    std::vector<std::int8_t> data;     // (n rounded up to 16) / 16 panels of kp x 16 bytes
    std::vector<std::int32_t> colsum;  // n rounded up to a register block (48), 0 past n
    std::vector<float> scales;         // likewise
    std::size_t n = 0, k = 0, kp = 0;
    const void* source = nullptr;
    const void* scales_source = nullptr;
    std::size_t bytes() const { return data.size() + colsum.size() * 4 + scales.size() * 4; }
    bool made_from(const int8_matrix& w) const noexcept {
        return source == w.q && scales_source == w.scales && n == w.n && k == w.k && kp == (w.k + 3) / 4 * 4;
    }
};

#if PALI3_HAVE_AMX_CODE

namespace detail {

inline constexpr std::size_t mc = 512, nc = 240, rows_per_step = 8;  // nc: whole register blocks (48 columns)

#define PALI3_VNNI_TARGET __attribute__((target("avx512f,avx512dq,avx512bw,avx512vl,avx512vnni")))

PALI3_VNNI_TARGET inline __mmask16 first_lanes(std::size_t n) {
    return n >= 16 ? __mmask16(0xffff) : __mmask16((1u << n) - 1);
}

// Rows [0, rows) of A quantised as quantize_uint8 (same bytes), kp bytes a row (k rounded up to 4,
// padded with 128 = 0), then zero rows (128) up to a multiple of 32; scales[i] per real row.
PALI3_VNNI_TARGET inline void pack_a(const float* a, std::size_t lda, std::size_t rows, std::size_t k, std::size_t kp,
                                     std::uint8_t* out, float* scales) {
    const std::size_t rp = (rows + 31) / 32 * 32;
    const __m512 sign = _mm512_castsi512_ps(_mm512_set1_epi32(0x7fffffff));
    const __m512i lo = _mm512_set1_epi32(-127), hi = _mm512_set1_epi32(127), bias = _mm512_set1_epi32(128);
    for (std::size_t i = 0; i < rp; ++i) {
        std::uint8_t* dst = out + i * kp;
        if (i >= rows) {
            std::memset(dst, 128, kp);
            continue;
        }
        const float* src = a + i * lda;
        __m512 vmax = _mm512_setzero_ps();
        __mmask16 bad = 0;
        for (std::size_t p = 0; p < k; p += 16) {
            const __m512 v = _mm512_maskz_loadu_ps(first_lanes(k - p), src + p);
            bad |= _mm512_fpclass_ps_mask(v, 0x99);  // QNaN, +Inf, -Inf, SNaN
            vmax = _mm512_max_ps(vmax, _mm512_and_ps(v, sign));
        }
        if (bad) {
            std::memset(dst, 128, kp);
            scales[i] = std::numeric_limits<float>::quiet_NaN();
            continue;
        }
        const float amax = _mm512_reduce_max_ps(vmax);
        scales[i] = amax / 127.f;
        const __m512 inv = _mm512_set1_ps(amax > 0.f ? 127.f / amax : 0.f);
        for (std::size_t p = 0; p < k; p += 16) {
            const __mmask16 m = first_lanes(k - p);
            const __m512i q = _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_maskz_loadu_ps(m, src + p), inv));  // nearest even
            const __m512i u = _mm512_add_epi32(_mm512_min_epi32(_mm512_max_epi32(q, lo), hi), bias);
            _mm512_mask_cvtepi32_storeu_epi8(dst + p, m, u);
        }
        for (std::size_t p = k; p < kp; ++p) dst[p] = 128;
    }
}

// Columns [j0, j0 + cols) of W in quad order: per 16-column panel, kp/4 rows of 16 x 4 bytes
// (columns x consecutive k), zero padded to 16 columns and kp; colsum (int32) and scale of each
// panel column (0 for padding), 16 per panel. The column sums come from the packed panel, one
// vpdpbusd per quad row (all-ones u8 times the 4 values of each column).
PALI3_VNNI_TARGET inline void pack_w(const int8_matrix& w, std::size_t j0, std::size_t cols, std::size_t kp, std::int8_t* out,
                   std::int32_t* colsum, float* scale) {
    const std::size_t panels = (cols + 15) / 16;
    for (std::size_t pnl = 0; pnl < panels; ++pnl) {
        std::int8_t* dst = out + pnl * kp * 16;
        std::size_t p_done = 0;
        // Whole panels with a row stride in whole quads: 16 x 16 transposes of 4-byte quads, 64 k at a time.
        if (pnl * 16 + 16 <= cols && w.ld % 4 == 0) {
            const auto* base = reinterpret_cast<const std::uint32_t*>(w.q + (j0 + pnl * 16) * w.ld);
            for (; p_done + 64 <= w.k; p_done += 64)
                bf16_products::detail::transpose_u32_16x16(base + p_done / 4, w.ld / 4,
                                                           reinterpret_cast<std::uint32_t*>(dst + p_done * 16));
        }
        for (std::size_t jj = 0; jj < 16; ++jj) {
            const std::size_t j = pnl * 16 + jj;
            if (j < cols) {
                const std::int8_t* row = w.q + (j0 + j) * w.ld;
                for (std::size_t p = p_done; p < w.k; ++p) dst[(p / 4) * 64 + jj * 4 + (p & 3)] = row[p];
            }
            for (std::size_t p = j < cols ? std::max(w.k, p_done) : p_done; p < kp; ++p) dst[(p / 4) * 64 + jj * 4 + (p & 3)] = 0;
            scale[pnl * 16 + jj] = j < cols ? w.scales[j0 + j] : 0.f;
        }
        const __m512i ones = _mm512_set1_epi8(1);
        __m512i sum0 = _mm512_setzero_si512(), sum1 = _mm512_setzero_si512();
        std::size_t p = 0;
        for (; p + 8 <= kp; p += 8) {
            sum0 = _mm512_dpbusd_epi32(sum0, ones, _mm512_loadu_si512(dst + p * 16));
            sum1 = _mm512_dpbusd_epi32(sum1, ones, _mm512_loadu_si512(dst + p * 16 + 64));
        }
        if (p < kp) sum0 = _mm512_dpbusd_epi32(sum0, ones, _mm512_loadu_si512(dst + p * 16));
        _mm512_storeu_si512(colsum + pnl * 16, _mm512_add_epi32(sum0, sum1));
    }
}

// The register block: rows_per_step rows of A x panels_per_step 16-column panels of W, each
// int32 accumulator one zmm (24 of the 32 registers; 3 W vectors and one broadcast beside them).
// Per k quad: 3 W loads and 8 broadcasts for 24 vpdpbusd (0.46 loads per product; 8 x 2 took 0.63).
inline constexpr std::size_t panels_per_step = 3, block_cols = 16 * panels_per_step;

// acc rows [0, R) (block_cols int32 columns, rows block_cols apart) = A rows [0, R) . the P
// W panels w[0..P) over all of kp: per k quad, P W quad rows (64 bytes each) and one 32-bit
// broadcast per A row.
template <std::size_t R, std::size_t P>
PALI3_VNNI_TARGET inline void dot_rows(const std::uint8_t* a, std::size_t kp, const std::int8_t* const (&w)[P],
                                       std::int32_t* acc) {
    __m512i c[R][P];
    for (std::size_t r = 0; r < R; ++r)
        for (std::size_t q = 0; q < P; ++q) c[r][q] = _mm512_setzero_si512();
#pragma GCC unroll 2
    for (std::size_t p = 0; p < kp; p += 4) {
        __m512i b[P];
        for (std::size_t q = 0; q < P; ++q) b[q] = _mm512_loadu_si512(w[q] + p * 16);
        for (std::size_t r = 0; r < R; ++r) {
            std::int32_t quad;
            std::memcpy(&quad, a + r * kp + p, sizeof quad);
            const __m512i x = _mm512_set1_epi32(quad);
            for (std::size_t q = 0; q < P; ++q) c[r][q] = _mm512_dpbusd_epi32(c[r][q], x, b[q]);
        }
    }
    for (std::size_t r = 0; r < R; ++r)
        for (std::size_t q = 0; q < P; ++q) _mm512_store_si512(acc + r * (16 * P) + 16 * q, c[r][q]);
}

// C rows = Act(alpha s_a s_w (acc - 128 colsum) + bias) [+ C], the first `cols` columns (masked)
// of a block_cols-wide block.
template <class Act>
PALI3_VNNI_TARGET inline void finish(const std::int32_t* acc, std::size_t rows, std::size_t cols, const std::int32_t* colsum,
                                     const float* sw, const float* sa, float* c, std::size_t ldc, const float* bias,
                                     const epilogue<Act>& ep) {
    constexpr std::size_t P = panels_per_step;
    __mmask16 m[P];
    __m512i z[P];
    __m512 s[P], b[P];
    for (std::size_t q = 0; q < P; ++q) {
        m[q] = cols > 16 * q ? first_lanes(cols - 16 * q) : __mmask16(0);
        z[q] = _mm512_slli_epi32(_mm512_loadu_si512(colsum + 16 * q), 7);
        s[q] = _mm512_loadu_ps(sw + 16 * q);
        b[q] = bias ? _mm512_maskz_loadu_ps(m[q], bias + 16 * q) : _mm512_setzero_ps();
    }
    for (std::size_t i = 0; i < rows; ++i) {
        const __m512 row = _mm512_set1_ps(ep.alpha * sa[i]);
        __m512 x[P];
        for (std::size_t q = 0; q < P; ++q) {
            const __m512 xi = _mm512_cvtepi32_ps(_mm512_sub_epi32(_mm512_load_si512(acc + i * block_cols + 16 * q), z[q]));
            x[q] = _mm512_fmadd_ps(xi, _mm512_mul_ps(s[q], row), b[q]);
        }
        if constexpr (!Act::is_identity) {
            alignas(64) float tmp[block_cols];
            for (std::size_t q = 0; q < P; ++q) _mm512_store_ps(tmp + 16 * q, x[q]);
            apply_activation<Act>(tmp, block_cols);
            for (std::size_t q = 0; q < P; ++q) x[q] = _mm512_load_ps(tmp + 16 * q);
        }
        float* crow = c + i * ldc;
        for (std::size_t q = 0; q < P; ++q) {
            if (ep.accumulate) x[q] = _mm512_add_ps(x[q], _mm512_maskz_loadu_ps(m[q], crow + 16 * q));
            _mm512_mask_storeu_ps(crow + 16 * q, m[q], x[q]);
        }
    }
}

// A packed once for a block of rows: the bytes and the scale of each row.
struct packed_rows {
    const std::uint8_t* q = nullptr;
    const float* scales = nullptr;
};

// Per-thread scratch: A's bytes and scales, a W block, its column sums and scales.
struct scratch {
    std::vector<std::uint8_t> a;
    std::vector<float> sa;
    std::vector<std::int8_t> w;
    std::vector<std::int32_t> colsum;
    std::vector<float> sw;
};
inline scratch& thread_scratch() {
    thread_local scratch s;
    return s;
}

// Columns [n0, n1) of C for rows [0, m) of A (m <= mc), A packed.
template <class Act>
void gemm_columns(std::size_t m, const packed_rows& a, std::size_t kp, const int8_matrix& w, float* c, std::size_t ldc,
                  const epilogue<Act>& ep, std::size_t n0, std::size_t n1) {
    constexpr std::size_t P = panels_per_step;
    const auto* pre = static_cast<const packed_weights*>(w.prepacked);
    if (pre && !pre->made_from(w)) pre = nullptr;  // not this matrix: pack per call
    scratch& s = thread_scratch();
    if (!pre) {
        s.w.resize(nc * kp);
        s.colsum.resize(nc);
        s.sw.resize(nc);
    }
    alignas(64) std::int32_t acc[32 * block_cols];
    for (std::size_t jc = n0; jc < n1; jc += nc) {
        const std::size_t cols = std::min(nc, n1 - jc);
        const std::int8_t* wblock = s.w.data();
        const std::int32_t* colsum = s.colsum.data();
        const float* sw = s.sw.data();
        if (pre) {  // jc is a multiple of 48, so of 16
            wblock = pre->data.data() + (jc / 16) * kp * 16;
            colsum = pre->colsum.data() + jc;
            sw = pre->scales.data() + jc;
        } else {
            pack_w(w, jc, cols, kp, s.w.data(), s.colsum.data(), s.sw.data());
        }
        // Each 32-row block of A runs across the column block's panels (C written in wide rows).
        for (std::size_t ir = 0; ir < m; ir += 32) {
            const std::uint8_t* ablock = a.q + ir * kp;
            const std::size_t br = std::min<std::size_t>(32, m - ir);
            for (std::size_t jr = 0; jr < cols; jr += block_cols) {
                const std::int8_t* panel[P];
                for (std::size_t q = 0; q < P; ++q)  // past the last panel: the first again, computed and not stored
                    panel[q] = wblock + ((jr + 16 * q < cols ? jr + 16 * q : jr) / 16) * kp * 16;
                for (std::size_t r0 = 0; r0 < br; r0 += rows_per_step)
                    dot_rows<rows_per_step, P>(ablock + r0 * kp, kp, panel, acc + r0 * block_cols);
                finish(acc, br, std::min(block_cols, cols - jr), colsum + jr, sw + jr, a.scales + ir,
                       c + ir * ldc + jc + jr, ldc, ep.bias ? ep.bias + jc + jr : nullptr, ep);
            }
        }
    }
}

}  // namespace detail

// Packs `w` for the integer-product GEMM (null when no engine is enabled or the engine does not
// take this matrix, see supports()): n x kp bytes + 8 per row next to the original. Point
// int8_matrix::prepacked at it (linear::prepack does).
inline std::shared_ptr<const packed_weights> pack_weights(const int8_matrix& w) {
    if (!enabled() || !supports(w) || !w.q || !w.scales || w.n == 0) return nullptr;
    auto p = std::make_shared<packed_weights>();
    p->n = w.n;
    p->k = w.k;
    p->kp = (w.k + 3) / 4 * 4;
    p->source = w.q;
    p->scales_source = w.scales;
    const std::size_t padded = (w.n + detail::block_cols - 1) / detail::block_cols * detail::block_cols;
    p->data.resize((w.n + 15) / 16 * p->kp * 16);
    p->colsum.assign(padded, 0);
    p->scales.assign(padded, 0.f);
    detail::pack_w(w, 0, w.n, p->kp, p->data.data(), p->colsum.data(), p->scales.data());
    return p;
}

// C (m, n) = Act(alpha A W^T + bias) [+ C] on `engine` (see require()) for W that supports(w).
// Per block of up to mc rows, threads quantise and pack A together (a row slice each, one shared
// buffer), then take column chunks (about `chunks_per_thread` each, on block_cols boundaries) from
// a queue. Products under `parallel_min_macs` multiply-adds run on the calling thread.
template <class Act, core::executor E>
void gemm_int8(backend engine, std::size_t m, const float* a, std::size_t lda, const int8_matrix& w, float* c,
               std::size_t ldc, const epilogue<Act>& ep, E& exec, std::size_t chunks_per_thread = 3,
               std::size_t parallel_min_macs = std::size_t{1} << 21) {
    require(engine, "int8_products::gemm_int8");
    if (!supports(w))
        throw value_error(core::describe("int8 matrix for the integer-product engine", "int8_products::gemm_int8",
                                         "one scale per row and k <= " + std::to_string(max_k),
                                         "group " + std::to_string(w.group) + ", k " + std::to_string(w.k)));
    if (m == 0) return;
    const std::size_t kp = (w.k + 3) / 4 * 4;
    const std::size_t panels = (w.n + detail::block_cols - 1) / detail::block_cols;
    const std::size_t parts = m * w.n * w.k < parallel_min_macs ? 1 : std::max<std::size_t>(1, std::min(exec.size(), panels));
    detail::scratch& own = detail::thread_scratch();  // the calling thread's; the tasks get pointers
    own.a.resize(std::min((m + 31) / 32 * 32, detail::mc) * kp);
    own.sa.resize(std::min((m + 31) / 32 * 32, detail::mc));
    std::uint8_t* const qa = own.a.data();
    float* const sa = own.sa.data();
    const std::size_t chunks = parts == 1 ? 1 : std::min(panels, parts * std::max<std::size_t>(1, chunks_per_thread));
    for (std::size_t i0 = 0; i0 < m; i0 += detail::mc) {
        const std::size_t rows = std::min(detail::mc, m - i0);
        const auto pack = [&](std::size_t t) {  // zero padding to 32 rows comes with the last slice
            const core::range r = core::split(rows, parts, t, 32);
            if (r.begin < r.end)
                detail::pack_a(a + (i0 + r.begin) * lda, lda, r.end - r.begin, w.k, kp, qa + r.begin * kp, sa + r.begin);
        };
        const auto columns = [&](std::size_t t) {
            const core::range r = core::split(w.n, chunks, t, detail::block_cols);
            if (r.begin < r.end)
                detail::gemm_columns(rows, detail::packed_rows{qa, sa}, kp, w, c + i0 * ldc, ldc, ep, r.begin, r.end);
        };
        if (parts == 1) {
            pack(0);
            columns(0);
        } else {
            exec.run(parts, pack);
            exec.run(chunks, columns);
        }
    }
}

#undef PALI3_VNNI_TARGET

#else

inline std::shared_ptr<const packed_weights> pack_weights(const int8_matrix&) { return nullptr; }

template <class Act, core::executor E>
void gemm_int8(backend engine, std::size_t, const float*, std::size_t, const int8_matrix&, float*, std::size_t,
               const epilogue<Act>&, E&, std::size_t = 3, std::size_t = 0) {
    require(engine, "int8_products::gemm_int8");
}

#endif

}  // namespace pali3::kernels::int8_products
