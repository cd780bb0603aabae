// bf16 GEMM with bf16 products, picked at run time: Intel AMX tiles (TMUL `tdpbf16ps`) or, on CPUs
// without them whose AVX512-BF16 dot product runs faster than f32 FMAs (AMD Zen 4/5), `vdpbf16ps`.
//
// C (m, n) = Act(alpha A (m, k) . W^T + bias) [+ C] for bf16 weights W; A is rounded to bf16 on
// packing (round to nearest even), products are summed in f32, the epilogue runs in f32. Relative
// error against an f64 reference is ~1e-3 (bf16 inputs), so this path is only taken for bf16
// weights: f32 models keep the exact-f32 xsimd GEMM.
//
// Tiles: 4 accumulators (2 x 2 blocks of 16 x 16 f32 = a 32 x 32 block of C), 2 A tiles (16 rows x
// 32 bf16 of k), 2 W tiles (16 k-pairs x 16 columns x 2, the "VNNI" layout). A is packed once per
// 512-row block, W once per 256-column block, both zero-padded to whole tiles; k is never split,
// so C is summed in one order for any thread count (threads split n on 32-column boundaries).
// The AVX512-BF16 engine computes the same 32 x 32 blocks from the same packed operands (rows in
// groups held in 512-bit accumulators, each k pair of A broadcast against a W pair row), so
// packing, prepacked weights, threading and the epilogue are shared.
//
// Availability: the backend is chosen once per process (`backend_in_use()`):
//   tiles        CPUID AMX-TILE, AMX-BF16, AVX512-BF16 and the Linux permission request for the
//                tile state (arch_prctl ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA);
//   avx512_bf16  otherwise, CPUID AVX512-BF16 on an AMD CPU (Zen 4/5: `vdpbf16ps` at 1.85x the
//                f32 FMA rate measured on Zen 5; on Intel it runs at half the f32 rate, so the
//                portable path stays faster there). PALI3_BF16_DOT=1 forces it where the CPU has
//                the instruction, PALI3_BF16_DOT=0 rules it out;
//   none         otherwise, or PALI3_NO_AMX=1 in the environment: callers use the portable path.
// Compiles on any x86-64 compiler that knows the AMX and AVX512-BF16 intrinsics (function-level
// target attributes: no global flags); elsewhere it compiles to "not available".
#pragma once

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <vector>

#include "pali3/core/storage.hpp"
#include "pali3/core/threading.hpp"
#include "pali3/kernels/activation.hpp"
#include "pali3/kernels/matrix.hpp"
#include "pali3/kernels/simd.hpp"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__)) && !defined(PALI3_NO_AMX)
#define PALI3_HAVE_AMX_CODE 1
#include <cpuid.h>
#include <immintrin.h>
#include <sys/syscall.h>
#include <unistd.h>
#else
#define PALI3_HAVE_AMX_CODE 0
#endif

namespace pali3::kernels::amx {

// The engine of the bf16 products.
enum class backend { none = 0, tiles = 1, avx512_bf16 = 2 };

inline const char* backend_name(backend b) {
    switch (b) {
        case backend::tiles: return "AMX";
        case backend::avx512_bf16: return "AVX512-BF16";
        default: return "none";
    }
}

namespace detail {
inline std::atomic<int>& state() {  // -1 unknown, else a backend
    static std::atomic<int> s{-1};
    return s;
}

inline bool env_flag(const char* name, bool& value) {
    const char* env = std::getenv(name);
    if (!env || !*env) return false;
    value = *env != '0';
    return true;
}

// AVX512-BF16 (with F, BW, VL) and the OS saving the 512-bit state: `vdpbf16ps` can run.
inline bool cpu_has_avx512_bf16() {
#if PALI3_HAVE_AMX_CODE
    unsigned a = 0, b = 0, c = 0, d = 0;
    if (!__get_cpuid(1, &a, &b, &c, &d) || !((c >> 27) & 1)) return false;  // OSXSAVE
    unsigned lo = 0, hi = 0;
    __asm__("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    if ((lo & 0xe6) != 0xe6) return false;  // XMM, YMM, opmask, ZMM state enabled by the OS
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return false;
    const bool f = (b >> 16) & 1, bw = (b >> 30) & 1, vl = (b >> 31) & 1;
    if (!__get_cpuid_count(7, 1, &a, &b, &c, &d)) return false;
    return f && bw && vl && ((a >> 5) & 1);
#else
    return false;
#endif
}

inline bool probe_tiles() {
#if PALI3_HAVE_AMX_CODE
    bool off = false;
    if (env_flag("PALI3_NO_AMX", off) && off) return false;
    if (!cpu_has_avx512_bf16()) return false;  // the epilogue and the packers use AVX-512
    unsigned a = 0, b = 0, c = 0, d = 0;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return false;
    const bool tile = (d >> 24) & 1, bf16_tiles = (d >> 22) & 1;
    if (!tile || !bf16_tiles) return false;
    constexpr long arch_req_xcomp_perm = 0x1023, xfeature_xtiledata = 18;
    return syscall(SYS_arch_prctl, arch_req_xcomp_perm, xfeature_xtiledata) == 0;
#else
    return false;
#endif
}

// Whether the AVX512-BF16 engine may be used, and whether it is the one to prefer.
inline bool probe_dot(bool& preferred) {
    preferred = false;
    bool off = false;
    if (env_flag("PALI3_NO_AMX", off) && off) return false;
    if (!cpu_has_avx512_bf16()) return false;
    bool forced = false;
    if (env_flag("PALI3_BF16_DOT", forced)) {
        preferred = forced;
        return forced;
    }
    preferred = cpu_is_amd();
    return true;
}

struct probe_result {
    bool tiles = false, dot = false, dot_preferred = false;
};

inline const probe_result& probed() {
    static const probe_result r = [] {
        probe_result p;
        p.tiles = probe_tiles();
        p.dot = probe_dot(p.dot_preferred);
        return p;
    }();
    return r;
}

inline backend preferred_backend() {
    const auto& p = probed();
    if (p.tiles) return backend::tiles;
    if (p.dot && p.dot_preferred) return backend::avx512_bf16;
    return backend::none;
}
}  // namespace detail

// Whether this engine can run in this process (probed once, thread-safe). AVX512-BF16 counts as
// available wherever the CPU has it (tests and benchmarks run it on Intel too), unless ruled out
// by PALI3_NO_AMX=1 or PALI3_BF16_DOT=0; it is only chosen by default where it is the faster path.
inline bool available(backend b) {
    switch (b) {
        case backend::tiles: return detail::probed().tiles;
        case backend::avx512_bf16: return detail::probed().dot;
        default: return true;
    }
}

// True when a bf16-product engine is chosen by default in this process.
inline bool available() { return detail::preferred_backend() != backend::none; }

// The engine bf16 GEMMs use now: preferred by default; set_enabled(false) or set_backend(none)
// switches to the portable f32 path (benchmarks and tests compare the paths).
inline backend backend_in_use() {
    int s = detail::state().load(std::memory_order_relaxed);
    if (s < 0) {
        s = static_cast<int>(detail::preferred_backend());
        detail::state().store(s, std::memory_order_relaxed);
    }
    return static_cast<backend>(s);
}

// Whether bf16 GEMMs take a bf16-product path (A rounded to bf16) at all.
inline bool enabled() { return backend_in_use() != backend::none; }

inline void set_enabled(bool on) {
    detail::state().store(static_cast<int>(on ? detail::preferred_backend() : backend::none), std::memory_order_relaxed);
}

// Picks an engine explicitly; false (and nothing changed) when it cannot run here.
inline bool set_backend(backend b) {
    if (!available(b)) return false;
    detail::state().store(static_cast<int>(b), std::memory_order_relaxed);
    return true;
}

// A bf16 (n, k) matrix packed once into the VNNI tile layout (16-column panels, k padded to 32):
// what every AMX GEMM call would otherwise redo. `source` is the matrix it was made from.
struct packed_weights {
    std::vector<std::uint16_t> data;
    std::size_t n = 0, k = 0, kp = 0;
    const void* source = nullptr;
    std::size_t bytes() const { return data.size() * sizeof(std::uint16_t); }
};

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

// Columns [n0, n1) of C, all rows. `packed_a`: A already packed by pack_a (then m <= mc), or
// null to pack it here.
template <class Act>
void gemm_columns(backend engine, std::size_t m, const float* a, std::size_t lda, const weight_ref<bf16>& w, float* c,
                  std::size_t ldc, const epilogue<Act>& ep, std::size_t n0, std::size_t n1,
                  const std::uint16_t* packed_a = nullptr) {
    const std::size_t kp = (w.k + 31) / 32 * 32;
    const auto* pre = static_cast<const packed_weights*>(w.prepacked);
    if (pre && (pre->n != w.n || pre->k != w.k || pre->kp != kp || pre->source != static_cast<const void*>(w.data) ||
                w.layout != weight_layout::nk || w.ld != w.k))
        pre = nullptr;  // not this matrix: pack per call
    thread_local std::vector<std::uint16_t> ap, wp;
    if (!packed_a) ap.resize(std::min((m + 31) / 32 * 32, mc) * kp);
    if (!pre) wp.resize((nc / 16) * kp * 16);
    alignas(64) float acc[32 * 32];
    const engine_scope scope(engine);
    for (std::size_t i0 = 0; i0 < m; i0 += mc) {
        const std::size_t rows = std::min(mc, m - i0);
        if (!packed_a) pack_a(a + i0 * lda, lda, rows, w.k, kp, ap.data());
        const std::uint16_t* apack = packed_a ? packed_a : ap.data();
        for (std::size_t jc = n0; jc < n1; jc += nc) {
            const std::size_t cols = std::min(nc, n1 - jc);
            const std::uint16_t* wblock = wp.data();
            if (pre) wblock = pre->data.data() + (jc / 16) * kp * 16;  // jc is a multiple of 16
            else pack_w(w, jc, cols, kp, wp.data());
            // Each 32-row block of A runs across the column block's panel pairs: C rows are written
            // 1 KB at a time, not 128 bytes per row per panel (8-11 % at k = 768, docs/benchmarks.md).
            for (std::size_t ir = 0; ir < rows; ir += 32) {
                const std::uint16_t* ablock = apack + ir * kp;
                const std::size_t br = std::min<std::size_t>(32, rows - ir);
                for (std::size_t jr = 0; jr < cols; jr += 32) {
                    const std::uint16_t* w0 = wblock + (jr / 16) * kp * 16;
                    const std::uint16_t* w1 = jr + 16 < cols ? w0 + kp * 16 : w0;  // a lone last panel: computed twice, stored once
                    product_block(engine, ablock, kp, w0, w1, acc, br);
                    finish(acc, br, std::min<std::size_t>(32, cols - jr), c + (i0 + ir) * ldc + jc + jr, ldc,
                           ep.bias ? ep.bias + jc + jr : nullptr, ep);
                }
            }
        }
    }
}

}  // namespace detail

// Packs a bf16 matrix for the bf16-product GEMM (null when no engine is enabled; both engines read
// the same layout): n rounded up to 16 columns, k to 32. Costs n * kp * 2 bytes next to the
// original.
inline std::shared_ptr<const packed_weights> pack_weights(const weight_ref<bf16>& w) {
    if (!enabled() || !w.data || w.n == 0 || w.k == 0) return nullptr;
    auto p = std::make_shared<packed_weights>();
    p->n = w.n;
    p->k = w.k;
    p->kp = (w.k + 31) / 32 * 32;
    p->source = w.data;
    p->data.resize((w.n + 15) / 16 * p->kp * 16);
    detail::pack_w(w, 0, w.n, p->kp, p->data.data());
    return p;
}

// The bf16-product GEMM on backend_in_use(); requires enabled(). Threads split n on 32-column
// boundaries: per block of up to mc rows they pack A together (a row slice each, into one
// buffer), then take column chunks (about `chunks_per_thread` each) from a queue, so a thread on
// a slowed core takes fewer.
// Products under `parallel_min_macs` multiply-adds run on the calling thread.
template <class Act, core::executor E>
void gemm_bf16(std::size_t m, const float* a, std::size_t lda, const weight_ref<bf16>& w, float* c, std::size_t ldc,
               const epilogue<Act>& ep, E& exec, std::size_t chunks_per_thread = 3,
               std::size_t parallel_min_macs = std::size_t{1} << 21) {
    const backend engine = backend_in_use();
    if (engine == backend::none) throw error("amx::gemm_bf16: no bf16-product engine is enabled");
    const std::size_t panels = (w.n + 31) / 32;
    if (m * w.n * w.k < parallel_min_macs) return detail::gemm_columns(engine, m, a, lda, w, c, ldc, ep, 0, w.n);
    const std::size_t parts = std::max<std::size_t>(1, std::min(exec.size(), panels));
    if (parts > 1) {
        const std::size_t kp = (w.k + 31) / 32 * 32;
        thread_local std::vector<std::uint16_t> scratch;  // this (the calling) thread's; the tasks get a pointer
        scratch.resize(std::min((m + 31) / 32 * 32, detail::mc) * kp);
        std::uint16_t* const shared_a = scratch.data();
        const std::size_t chunks = std::min(panels, parts * std::max<std::size_t>(1, chunks_per_thread));
        for (std::size_t i0 = 0; i0 < m; i0 += detail::mc) {
            const std::size_t rows = std::min(detail::mc, m - i0);
            exec.run(parts, [&](std::size_t t) {  // zero padding to 32 rows comes with the last slice
                const core::range r = core::split(rows, parts, t, 32);
                if (r.begin < r.end)
                    detail::pack_a(a + (i0 + r.begin) * lda, lda, r.end - r.begin, w.k, kp, shared_a + r.begin * kp);
            });
            exec.run(chunks, [&](std::size_t t) {
                const core::range r = core::split(w.n, chunks, t, 32);
                if (r.begin < r.end)
                    detail::gemm_columns(engine, rows, a + i0 * lda, lda, w, c + i0 * ldc, ldc, ep, r.begin, r.end, shared_a);
            });
        }
        return;
    }
    exec.run(parts, [&](std::size_t t) {
        const core::range r = core::split(w.n, parts, t, 32);
        if (r.begin < r.end) detail::gemm_columns(engine, m, a, lda, w, c, ldc, ep, r.begin, r.end);
    });
}

#else

inline std::shared_ptr<const packed_weights> pack_weights(const weight_ref<bf16>&) { return nullptr; }

template <class Act, core::executor E>
void gemm_bf16(std::size_t, const float*, std::size_t, const weight_ref<bf16>&, float*, std::size_t, const epilogue<Act>&, E&,
               std::size_t = 3, std::size_t = 0) {
    throw error("amx::gemm_bf16: AMX code is not compiled in on this platform");
}

#endif

}  // namespace pali3::kernels::amx
