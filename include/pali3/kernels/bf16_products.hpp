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
// Which engine: per call when the caller names one (gemm_tiling::bf16_engine,
// attention_tiling::bf16_engine), else the process's default (`backend_in_use()`), chosen once:
//   tiles        CPUID AMX-TILE, AMX-BF16, AVX512-BF16 and the Linux permission request for the
//                tile state (arch_prctl ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA);
//   avx512_bf16  otherwise, CPUID AVX512-BF16 on an AMD CPU (Zen 4/5: `vdpbf16ps` at 1.85x the
//                f32 FMA rate measured on Zen 5; on Intel it runs at half the f32 rate, so the
//                portable path stays faster there). PALI3_BF16_DOT=1 forces it where the CPU has
//                the instruction, PALI3_BF16_DOT=0 rules it out;
//   none         otherwise, or PALI3_NO_AMX=1 in the environment: callers use the portable path.
// CPU detection is in cpu_features.hpp. Compiles on any x86-64 compiler that knows the AMX and
// AVX512-BF16 intrinsics (function-level target attributes: no global flags); elsewhere it
// compiles to "not available". (kernels/amx.hpp, the former name, still works: namespace amx.)
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <vector>

#include "pali3/core/storage.hpp"
#include "pali3/core/threading.hpp"
#include "pali3/kernels/bf16_blocks.hpp"
#include "pali3/kernels/cpu_features.hpp"
#include "pali3/kernels/activation.hpp"
#include "pali3/kernels/matrix.hpp"
#include "pali3/kernels/simd.hpp"


namespace pali3::kernels::bf16_products {

namespace detail {
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
        p.tiles = cpu_amx_tiles();
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

using engine = engine_switch<backend, detail::preferred_backend>;

// The engine bf16 GEMMs use now: preferred by default; set_enabled(false) or set_backend(none)
// switches to the portable f32 path (benchmarks and tests compare the paths).
inline backend backend_in_use() { return engine::in_use(); }

// Whether bf16 GEMMs take a bf16-product path (A rounded to bf16) at all.
inline bool enabled() { return backend_in_use() != backend::none; }

inline void set_enabled(bool on) { engine::set_enabled(on); }

// Picks an engine explicitly; false (and nothing changed) when it cannot run here.
inline bool set_backend(backend b) {
    if (!available(b)) return false;
    engine::set(b);
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

// Throws unless `engine` can run here (a caller's per-call choice is checked once, by name).
inline void require(backend engine, const char* where) {
    if (engine == backend::none || !available(engine))
        throw value_error(core::describe("bf16-product engine not available", where,
                                         "an engine this CPU runs (available())", backend_name(engine)));
}

// The bf16-product GEMM on `engine` (see require()). Threads split n on 32-column
// boundaries: per block of up to mc rows they pack A together (a row slice each, into one
// buffer), then take column chunks (about `chunks_per_thread` each) from a queue, so a thread on
// a slowed core takes fewer.
// Products under `parallel_min_macs` multiply-adds run on the calling thread.
template <class Act, core::executor E>
void gemm_bf16(backend engine, std::size_t m, const float* a, std::size_t lda, const weight_ref<bf16>& w, float* c,
               std::size_t ldc, const epilogue<Act>& ep, E& exec, std::size_t chunks_per_thread = 3,
               std::size_t parallel_min_macs = std::size_t{1} << 21) {
    require(engine, "bf16_products::gemm_bf16");
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

inline void require(backend engine, const char* where) {
    throw value_error(core::describe("bf16-product engine not available", where, "an x86-64 build with AMX / AVX512-BF16 code",
                                     backend_name(engine)));
}

template <class Act, core::executor E>
void gemm_bf16(backend engine, std::size_t, const float*, std::size_t, const weight_ref<bf16>&, float*, std::size_t,
               const epilogue<Act>&, E&, std::size_t = 3, std::size_t = 0) {
    require(engine, "bf16_products::gemm_bf16");
}

#endif

}  // namespace pali3::kernels::bf16_products
