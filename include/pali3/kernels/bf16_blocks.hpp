// The blocks the bf16-product engines are made of (bf16_products.hpp uses them; attention.hpp
// too, for q k^T and p v): operand packing into the VNNI tile layout (bf16 weights, f32 A, f32 K
// and V), the tile configuration, the 32 x 32 product block on AMX tiles (`tdpbf16ps`) or on
// AVX512-BF16 (`vdpbf16ps`), and the shared epilogue. Function-level target attributes: no global
// flags; compiled only where PALI3_HAVE_AMX_CODE (cpu_features.hpp).
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "pali3/core/storage.hpp"
#include "pali3/kernels/activation.hpp"
#include "pali3/kernels/cpu_features.hpp"
#include "pali3/kernels/matrix.hpp"
#include "pali3/kernels/simd.hpp"

namespace pali3::kernels::bf16_products {

// The engine of the bf16 products.
enum class backend { none = 0, tiles = 1, avx512_bf16 = 2 };

inline const char* backend_name(backend b) {
    switch (b) {
        case backend::tiles: return "AMX";
        case backend::avx512_bf16: return "AVX512-BF16";
        default: return "none";
    }
}

#if PALI3_HAVE_AMX_CODE

namespace detail {

inline constexpr std::size_t mc = 512, nc = 256;

#define PALI3_AMX_TARGET __attribute__((target("amx-tile,amx-bf16,avx512f,avx512bw,avx512vl,avx512bf16")))

struct alignas(64) tile_config {
    std::uint8_t palette = 1, start_row = 0;
    std::uint8_t reserved[14] = {};
    std::uint16_t colsb[16] = {};
    std::uint8_t rows[16] = {};
};

// rows x kp bf16 (kp = k rounded up to 32), zero padded; rows rounded up to 32.
PALI3_AMX_TARGET inline void pack_a(const float* a, std::size_t lda, std::size_t rows, std::size_t k, std::size_t kp,
                                    std::uint16_t* out) {
    const std::size_t rp = (rows + 31) / 32 * 32;
    for (std::size_t i = 0; i < rp; ++i) {
        std::uint16_t* dst = out + i * kp;
        if (i >= rows) {
            std::memset(dst, 0, kp * 2);
            continue;
        }
        const float* src = a + i * lda;
        std::size_t p = 0;
        for (; p + 32 <= k; p += 32) {
            const __m512 lo = _mm512_loadu_ps(src + p), hi = _mm512_loadu_ps(src + p + 16);
            _mm512_storeu_si512(dst + p, (__m512i)_mm512_cvtne2ps_pbh(hi, lo));
        }
        for (; p < k; ++p) dst[p] = to_bf16(src[p]).bits;
        for (; p < kp; ++p) dst[p] = 0;
    }
}

// 16 rows of 16 32-bit elements (`src` rows `lds` elements apart) -> transposed into 16 rows of 16
// (dst rows contiguous). For bf16 pairs this turns (n, k) storage into the VNNI tile layout.
// 16 rows of 16 32-bit elements (`src` rows `lds` elements apart) -> transposed into 16 rows of 16
// (dst rows contiguous). For bf16 pairs this turns (n, k) storage into the VNNI tile layout.
inline void transpose_u32_16x16(const std::uint32_t* src, std::size_t lds, std::uint32_t* dst) {
#if defined(__AVX512F__)
    __m512 rows[16], cols[16];
    for (int j = 0; j < 16; ++j) rows[j] = _mm512_castsi512_ps(_mm512_loadu_si512(src + j * lds));
    transpose_16x16_registers(rows, cols);
    for (int p = 0; p < 16; ++p) _mm512_storeu_si512(dst + p * 16, _mm512_castps_si512(cols[p]));
#else
    for (std::size_t r = 0; r < 16; ++r)
        for (std::size_t c = 0; c < 16; ++c) dst[c * 16 + r] = src[r * lds + c];
#endif
}

// Columns [j0, j0 + cols) of W, all of k, in VNNI order: for each 16-column panel, kp/2 rows of
// 16 x (k even, k odd) pairs. Zero padded to 16 columns and kp.
inline void pack_w(const weight_ref<bf16>& w, std::size_t j0, std::size_t cols, std::size_t kp, std::uint16_t* out) {
    const std::size_t panels = (cols + 15) / 16;
    for (std::size_t pnl = 0; pnl < panels; ++pnl) {
        std::uint16_t* dst = out + pnl * kp * 16;
        std::size_t p_done = 0;
        // Whole 16-column panels of (n, k) storage with an even row stride: 16x16 transposes of
        // bf16 pairs, 32 k at a time.
        if (w.layout == weight_layout::nk && pnl * 16 + 16 <= cols && w.ld % 2 == 0 &&
            reinterpret_cast<std::uintptr_t>(w.data) % 4 == 0) {
            const auto* base = reinterpret_cast<const std::uint32_t*>(w.data + (j0 + pnl * 16) * w.ld);
            for (; p_done + 32 <= w.k; p_done += 32)
                transpose_u32_16x16(base + p_done / 2, w.ld / 2, reinterpret_cast<std::uint32_t*>(dst + (p_done / 2) * 32));
        }
        for (std::size_t jj = 0; jj < 16; ++jj) {
            const std::size_t j = pnl * 16 + jj;
            if (j >= cols) {
                for (std::size_t p = p_done; p < kp; ++p) dst[(p / 2) * 32 + jj * 2 + (p & 1)] = 0;
                continue;
            }
            if (w.layout == weight_layout::nk) {
                const bf16* row = w.data + (j0 + j) * w.ld;
                for (std::size_t p = p_done; p < w.k; ++p) dst[(p / 2) * 32 + jj * 2 + (p & 1)] = row[p].bits;
            } else {
                for (std::size_t p = p_done; p < w.k; ++p) dst[(p / 2) * 32 + jj * 2 + (p & 1)] = w.data[p * w.ld + j0 + j].bits;
            }
            for (std::size_t p = std::max(w.k, p_done); p < kp; ++p) dst[(p / 2) * 32 + jj * 2 + (p & 1)] = 0;
        }
    }
}

// acc (32 x 32 f32) = A rows [0, 32) . W panel pair, over all of kp.
PALI3_AMX_TARGET inline void tile_block(const std::uint16_t* a, std::size_t kp, const std::uint16_t* w0, const std::uint16_t* w1,
                                        float* acc) {
    _tile_zero(0);
    _tile_zero(1);
    _tile_zero(2);
    _tile_zero(3);
    const std::size_t a_stride = kp * 2;
    for (std::size_t p = 0; p < kp; p += 32) {
        _tile_loadd(4, a + p, a_stride);
        _tile_loadd(5, a + 16 * kp + p, a_stride);
        _tile_loadd(6, w0 + (p / 2) * 32, 64);
        _tile_loadd(7, w1 + (p / 2) * 32, 64);
        _tile_dpbf16ps(0, 4, 6);
        _tile_dpbf16ps(1, 4, 7);
        _tile_dpbf16ps(2, 5, 6);
        _tile_dpbf16ps(3, 5, 7);
    }
    _tile_stored(0, acc, 128);
    _tile_stored(1, acc + 16, 128);
    _tile_stored(2, acc + 16 * 32, 128);
    _tile_stored(3, acc + 16 * 32 + 16, 128);
}

// acc rows [0, 16) only (the last row block of an m that leaves 1..16 rows: half the work of a
// padded 32-row block).
PALI3_AMX_TARGET inline void tile_block_16(const std::uint16_t* a, std::size_t kp, const std::uint16_t* w0,
                                           const std::uint16_t* w1, float* acc) {
    _tile_zero(0);
    _tile_zero(1);
    for (std::size_t p = 0; p < kp; p += 32) {
        _tile_loadd(4, a + p, kp * 2);
        _tile_loadd(6, w0 + (p / 2) * 32, 64);
        _tile_loadd(7, w1 + (p / 2) * 32, 64);
        _tile_dpbf16ps(0, 4, 6);
        _tile_dpbf16ps(1, 4, 7);
    }
    _tile_stored(0, acc, 128);
    _tile_stored(1, acc + 16, 128);
}

#define PALI3_DOT_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16")))

// The AVX512-BF16 engine: acc rows [0, R) (32 columns, rows 32 floats apart) = A rows [0, R) . W
// panel pair, over all of kp. 2R accumulators; per k pair, two W pair rows (64 bytes each) and
// one 32-bit broadcast of each A row's (even, odd) pair.
template <std::size_t R>
PALI3_DOT_TARGET inline void dot_rows(const std::uint16_t* a, std::size_t kp, const std::uint16_t* w0,
                                      const std::uint16_t* w1, float* acc) {
    __m512 c0[R], c1[R];
    for (std::size_t r = 0; r < R; ++r) c0[r] = c1[r] = _mm512_setzero_ps();
#pragma GCC unroll 2
    for (std::size_t p = 0; p < kp; p += 2) {
        const __m512bh b0 = (__m512bh)_mm512_loadu_si512(w0 + p * 16);
        const __m512bh b1 = (__m512bh)_mm512_loadu_si512(w1 + p * 16);
        for (std::size_t r = 0; r < R; ++r) {
            std::int32_t pair;
            std::memcpy(&pair, a + r * kp + p, sizeof pair);
            const __m512bh x = (__m512bh)_mm512_set1_epi32(pair);
            c0[r] = _mm512_dpbf16_ps(c0[r], x, b0);
            c1[r] = _mm512_dpbf16_ps(c1[r], x, b1);
        }
    }
    for (std::size_t r = 0; r < R; ++r) {
        _mm512_store_ps(acc + r * 32, c0[r]);
        _mm512_store_ps(acc + r * 32 + 16, c1[r]);
    }
}

// acc (rows x 32, rows <= 32) from A (rows padded to 32 with zeros) and the W panel pair, in
// groups of dot_group rows (the padded rows of a last group cost time, not correctness).
inline constexpr std::size_t dot_group = 8;
inline void dot_block(const std::uint16_t* a, std::size_t kp, const std::uint16_t* w0, const std::uint16_t* w1,
                      float* acc, std::size_t rows) {
    for (std::size_t r0 = 0; r0 < rows; r0 += dot_group) dot_rows<dot_group>(a + r0 * kp, kp, w0, w1, acc + r0 * 32);
}

#undef PALI3_DOT_TARGET

// One 32 x 32 block (its first `rows` rows) on the chosen engine.
inline void product_block(backend b, const std::uint16_t* a, std::size_t kp, const std::uint16_t* w0,
                          const std::uint16_t* w1, float* acc, std::size_t rows) {
    if (b == backend::tiles) {
        if (rows <= 16) tile_block_16(a, kp, w0, w1, acc);
        else tile_block(a, kp, w0, w1, acc);
    } else {
        dot_block(a, kp, w0, w1, acc, rows);
    }
}

PALI3_AMX_TARGET inline void configure() {
    tile_config cfg;
    for (int t = 0; t < 8; ++t) {
        cfg.rows[t] = 16;
        cfg.colsb[t] = 64;
    }
    // g++ 12 may treat `ldtilecfg` as not reading the rows/colsb bytes and drop their stores
    // (seen in a standalone harness: only `palette` reached memory, then SIGILL on the first tile
    // instruction); the barrier makes every store to cfg land first.
    __asm__ volatile("" : : "r"(&cfg) : "memory");
    _tile_loadconfig(&cfg);
}

PALI3_AMX_TARGET inline void release() { _tile_release(); }

// Tile state configured for the lifetime of the object when the engine is `tiles`.
struct engine_scope {
    backend b;
    explicit engine_scope(backend engine) : b(engine) {
        if (b == backend::tiles) configure();
    }
    ~engine_scope() {
        if (b == backend::tiles) release();
    }
    engine_scope(const engine_scope&) = delete;
    engine_scope& operator=(const engine_scope&) = delete;
};

// Operands made on the fly from f32 activations (attention's K, V and probabilities), for
// tile_product below. Both round to nearest even, as pack_a does.
//
// (n, k) rows `ld` apart -> VNNI panels of 16 rows (what pack_w makes from bf16 weights): panel p
// holds rows [16p, 16p + 16) as kp/2 rows of 16 x (k even, k odd) pairs, zero padded to kp and to
// whole panels. Attention's K (keys, head_dim) as the right operand of q k^T.
PALI3_AMX_TARGET inline void pack_nk_f32(const float* src, std::size_t ld, std::size_t n, std::size_t k, std::size_t kp,
                                         std::uint16_t* out) {
    alignas(64) std::uint16_t rows[16 * 32];  // 16 rows x 32 k of one transpose block
    const std::size_t panels = (n + 15) / 16;
    for (std::size_t pnl = 0; pnl < panels; ++pnl) {
        const std::size_t r0 = pnl * 16, nr = std::min<std::size_t>(16, n - r0);
        std::uint16_t* dst = out + pnl * kp * 16;
        for (std::size_t p0 = 0; p0 < kp; p0 += 32) {
            const std::size_t nk = std::min<std::size_t>(32, k > p0 ? k - p0 : 0);
            const __mmask16 lo = static_cast<__mmask16>(nk >= 16 ? 0xffff : (1u << nk) - 1);
            const __mmask16 hi = static_cast<__mmask16>(nk <= 16 ? 0 : nk >= 32 ? 0xffff : (1u << (nk - 16)) - 1);
            for (std::size_t r = 0; r < 16; ++r) {
                __m512 a = _mm512_setzero_ps(), b = _mm512_setzero_ps();
                if (r < nr) {
                    a = _mm512_maskz_loadu_ps(lo, src + (r0 + r) * ld + p0);
                    b = _mm512_maskz_loadu_ps(hi, src + (r0 + r) * ld + p0 + 16);
                }
                _mm512_store_si512(rows + r * 32, (__m512i)_mm512_cvtne2ps_pbh(b, a));
            }
            transpose_u32_16x16(reinterpret_cast<const std::uint32_t*>(rows), 16,
                                reinterpret_cast<std::uint32_t*>(dst + (p0 / 2) * 32));
        }
    }
}

// (k, n) rows `ld` apart -> the same VNNI panels over its n columns (pairs of consecutive rows
// interleaved): attention's V (keys, head_dim) as the right operand of p v.
PALI3_AMX_TARGET inline void pack_kn_f32(const float* src, std::size_t ld, std::size_t k, std::size_t n, std::size_t kp,
                                         std::uint16_t* out) {
    alignas(64) static constexpr std::uint16_t interleave[32] = {0, 16, 1, 17, 2,  18, 3,  19, 4,  20, 5,
                                                                 21, 6, 22, 7, 23, 8,  24, 9,  25, 10, 26,
                                                                 11, 27, 12, 28, 13, 29, 14, 30, 15, 31};
    const __m512i idx = _mm512_load_si512(interleave);
    const std::size_t panels = (n + 15) / 16;
    for (std::size_t pnl = 0; pnl < panels; ++pnl) {
        const std::size_t c0 = pnl * 16, nc_ = std::min<std::size_t>(16, n - c0);
        const __mmask16 cols = static_cast<__mmask16>(nc_ >= 16 ? 0xffff : (1u << nc_) - 1);
        std::uint16_t* dst = out + pnl * kp * 16;
        for (std::size_t p = 0; p < kp; p += 2) {
            const __m512 even = p < k ? _mm512_maskz_loadu_ps(cols, src + p * ld + c0) : _mm512_setzero_ps();
            const __m512 odd = p + 1 < k ? _mm512_maskz_loadu_ps(cols, src + (p + 1) * ld + c0) : _mm512_setzero_ps();
            const __m512i pairs = (__m512i)_mm512_cvtne2ps_pbh(odd, even);  // [even 0..15 | odd 0..15]
            _mm512_storeu_si512(dst + (p / 2) * 32, _mm512_permutexvar_epi16(idx, pairs));
        }
    }
}

// c (rows, cols) = alpha A W^T, or c += A W^T (Accumulate): A packed by pack_a (kp columns), W as
// VNNI panels `panel_stride` elements apart, their first kp/2 pair rows used, on `engine` (an
// engine_scope held by the caller around a run of products).
template <bool Accumulate>
PALI3_AMX_TARGET inline void tile_product(backend engine, const std::uint16_t* a, std::size_t rows, std::size_t kp,
                                          const std::uint16_t* w, std::size_t panel_stride, std::size_t cols, float* c,
                                          std::size_t ldc, float alpha) {
    alignas(64) float acc[32 * 32];
    const __m512 va = _mm512_set1_ps(alpha);
    for (std::size_t jr = 0; jr < cols; jr += 32) {
        const std::uint16_t* w0 = w + (jr / 16) * panel_stride;
        const std::uint16_t* w1 = jr + 16 < cols ? w0 + panel_stride : w0;
        const std::size_t bc = std::min<std::size_t>(32, cols - jr);
        const __mmask16 m0 = static_cast<__mmask16>(bc >= 16 ? 0xffff : (1u << bc) - 1);
        const __mmask16 m1 = static_cast<__mmask16>(bc <= 16 ? 0 : bc >= 32 ? 0xffff : (1u << (bc - 16)) - 1);
        for (std::size_t ir = 0; ir < rows; ir += 32) {
            const std::size_t br = std::min<std::size_t>(32, rows - ir);
            product_block(engine, a + ir * kp, kp, w0, w1, acc, br);
            for (std::size_t i = 0; i < br; ++i) {
                float* crow = c + (ir + i) * ldc + jr;
                const __m512 x0 = _mm512_load_ps(acc + i * 32), x1 = _mm512_load_ps(acc + i * 32 + 16);
                if constexpr (Accumulate) {
                    _mm512_mask_storeu_ps(crow, m0, _mm512_add_ps(_mm512_maskz_loadu_ps(m0, crow), x0));
                    _mm512_mask_storeu_ps(crow + 16, m1, _mm512_add_ps(_mm512_maskz_loadu_ps(m1, crow + 16), x1));
                } else {
                    _mm512_mask_storeu_ps(crow, m0, _mm512_mul_ps(va, x0));
                    _mm512_mask_storeu_ps(crow + 16, m1, _mm512_mul_ps(va, x1));
                }
            }
        }
    }
}

// The epilogue of one 32 x 32 block: c rows = Act(alpha acc + bias) [+ c], in 512-bit registers
// (the first `cols` columns, masked); the scalar loop it replaced cost 12-44 % of a call at k = 768.
template <class Act>
PALI3_AMX_TARGET inline void finish(const float* acc, std::size_t rows, std::size_t cols, float* c, std::size_t ldc,
                                    const float* bias, const epilogue<Act>& ep) {
    const auto mask = [](std::size_t n) { return n >= 16 ? __mmask16(0xffff) : __mmask16((1u << n) - 1); };
    const __mmask16 m0 = mask(cols), m1 = cols > 16 ? mask(cols - 16) : __mmask16(0);
    const __m512 alpha = _mm512_set1_ps(ep.alpha);
    const __m512 b0 = bias ? _mm512_maskz_loadu_ps(m0, bias) : _mm512_setzero_ps();
    const __m512 b1 = bias ? _mm512_maskz_loadu_ps(m1, bias + 16) : _mm512_setzero_ps();
    for (std::size_t i = 0; i < rows; ++i) {
        __m512 x0 = _mm512_fmadd_ps(alpha, _mm512_load_ps(acc + i * 32), b0);
        __m512 x1 = _mm512_fmadd_ps(alpha, _mm512_load_ps(acc + i * 32 + 16), b1);
        if constexpr (!Act::is_identity) {
            alignas(64) float tmp[32];
            _mm512_store_ps(tmp, x0);
            _mm512_store_ps(tmp + 16, x1);
            apply_activation<Act>(tmp, 32);
            x0 = _mm512_load_ps(tmp);
            x1 = _mm512_load_ps(tmp + 16);
        }
        float* crow = c + i * ldc;
        if (ep.accumulate) {
            x0 = _mm512_add_ps(x0, _mm512_maskz_loadu_ps(m0, crow));
            x1 = _mm512_add_ps(x1, _mm512_maskz_loadu_ps(m1, crow + 16));
        }
        _mm512_mask_storeu_ps(crow, m0, x0);
        _mm512_mask_storeu_ps(crow + 16, m1, x1);
    }
}

#undef PALI3_AMX_TARGET

}  // namespace detail

#endif

}  // namespace pali3::kernels::bf16_products
