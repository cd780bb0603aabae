// Packed, cache-blocked GEMM: C (m, n) = Act(alpha A (m, k) . W^T + bias) [+ C], A f32, W in f32,
// bf16 or f16 (either layout, see matrix.hpp), f32 accumulation. bf16 weights take the bf16-product
// path (bf16_products.hpp: AMX tiles or AVX512-BF16) when the CPU has an engine for it.
//
// Structure (BLIS-like, with the operands' roles swapped for row-major C):
//   pc: k in blocks of kc     - all rows of A packed once per k block (mr-row panels)
//   jc: n in blocks of nc     - a packed W block (kc x nc, f32) stays in L2; W is converted
//                               from its storage (and transposed if stored (n, k)) here
//   ir: rows in panels of mr  - one A micro-panel (mr x kc) stays in L1
//   jr: cols in panels of nr  - micro-kernel: mr x nr accumulators in registers
// A and W are each packed exactly once per call. Up to `gemm_tiling::panel_order_rows` rows, W is
// instead packed one nr-column panel at a time, right before the row panels that use it (jr
// outside ir): with few rows the packed block's round trip through L2 costs more than the
// micro-kernels reading A from L2.
// Up to `gemm_tiling::inplace_rows` rows with f32 W stored (n, k) (AVX-512), W is not packed at
// all: C^T = W A^T, the W rows broadcast from their storage and A transposed into 32-row panels
// once (detail::inplace_kernel).
// The epilogue runs on the last k block, on registers, before the single store. Threads split
// n (or m when n is narrow) on panel boundaries; splitting n, they first pack A together (a row
// slice each, into one shared buffer), then take column chunks from a queue. k is never split,
// so every element of C is summed in the same order for any thread count. m <= 4 goes to the
// GEMV kernels. gemm_transposed_a takes A as A^T (k, m) and packs its panels from there (the
// weight gradient dY^T X without a transpose pass); the rest is the same path.
#pragma once

#include <algorithm>
#include <cstddef>
#include <memory>
#include <type_traits>

#include "pali3/core/threading.hpp"
#include "pali3/kernels/bf16_products.hpp"
#include "pali3/kernels/gemm_blocks.hpp"
#include "pali3/kernels/gemv.hpp"
#include "pali3/kernels/matrix.hpp"
#include "pali3/kernels/simd.hpp"

namespace pali3::kernels {

// A weight matrix packed once, in the layout the f32 GEMM streams (what `pack_w` would rebuild on
// every call): for each k block of `kc`, every NR-column panel as kc x NR f32, zero padded to whole
// panels; 64-byte aligned. `linear::prepack` keeps one next to an f32 matrix (4 n k bytes more) so
// a forward pass reads W once, straight into the micro-kernel, instead of transposing it again.
struct packed_panels {
    std::unique_ptr<float, detail::aligned_free> data;
    std::size_t n = 0, k = 0, kc = 0, nr = 0, floats = 0;
    const void* source = nullptr;
    weight_layout layout = weight_layout::nk;
    std::size_t ld = 0;
    std::size_t bytes() const { return floats * sizeof(float); }
    // Whether it was made from `w` with this column panel width and k block.
    template <weight_storage T>
    bool matches(const weight_ref<T>& w, std::size_t panel, std::size_t k_block) const {
        return source == static_cast<const void*>(w.data) && n == w.n && k == w.k && ld == w.ld &&
               layout == w.layout && nr == panel && kc == k_block;
    }
    // The packed (k block starting at pc, columns from j0) panels; j0 a multiple of nr.
    const float* block(std::size_t pc, std::size_t j0) const {
        const std::size_t kcur = std::min(kc, k - pc);
        return data.get() + pc * ((n + nr - 1) / nr) * nr + (j0 / nr) * kcur * nr;
    }
};

namespace detail {

// The k block: a non-linear epilogue that also accumulates needs the whole k sum before it may
// touch C.
template <class Arch, class Act>
std::size_t k_block(const epilogue<Act>& ep, const gemm_tiling<Arch>& tiling, std::size_t k) {
    return (!Act::is_identity && ep.accumulate) ? k : std::min(tiling.kc, k);
}

// All of A (m rows) packed for every k block: block pc at dst + pc * m, as gemm_block packs it;
// rows [r0, r1) only (r0 a multiple of MR), so threads can share the work.
template <std::size_t MR>
void pack_a_blocks(const a_operand& a, std::size_t m, std::size_t k, std::size_t kc_max, std::size_t r0, std::size_t r1,
                   float* dst) {
    for (std::size_t pc = 0; pc < k; pc += kc_max) {
        const std::size_t kc = std::min(kc_max, k - pc);
        a.pack<MR>(r0, r1 - r0, pc, kc, dst + pc * m + r0 * kc);
    }
}

// One thread's share: rows [m0, m1), columns [n0, n1); W a weight_ref or an int8_matrix (what
// pack_w packs). `packed_a`: all rows already packed by
// pack_a_blocks (then m0 = 0, m1 = m), or null to pack them here.
template <class Arch, class Act, class Wt>
void gemm_block(const a_operand& a, const Wt& w, float* c,
                std::size_t ldc, const epilogue<Act>& ep, const gemm_tiling<Arch>& tiling,
                std::size_t m0, std::size_t m1, std::size_t n0, std::size_t n1,
                const float* packed_a = nullptr) {
    using tiling_t = gemm_tiling<Arch>;
    constexpr std::size_t MR = tiling_t::mr, NR = tiling_t::nr;
    static constexpr auto kernels = micro_kernel_table<Arch, Act>();
    const std::size_t k = w.k;
    const std::size_t kc_max = k_block(ep, tiling, k);
    const std::size_t nc_max = std::min(tiling.nc, ((n1 - n0 + NR - 1) / NR) * NR);
    const std::size_t rows = m1 - m0;
    // Weights packed ahead (f32 only: bf16 prepacking is for the bf16-product path) skip pack_w.
    const packed_panels* pre = nullptr;
    if constexpr (std::is_same_v<Wt, weight_ref<float>>)
        if (w.prepacked && static_cast<const packed_panels*>(w.prepacked)->matches(w, NR, kc_max))
            pre = static_cast<const packed_panels*>(w.prepacked);
    float* wp = pre ? nullptr : gemm_scratch(0, nc_max * kc_max);
    float* own_a = packed_a ? nullptr : gemm_scratch(1, rows * kc_max);

    for (std::size_t pc = 0; pc < k; pc += kc_max) {
        const std::size_t kc = std::min(kc_max, k - pc);
        const bool first = pc == 0, last = pc + kc == k;
        const tile_ops ops = block_ops(ep, first, last);
        // A is packed once per k block for all rows (every W block reuses it); each
        // micro-panel (MR x kc) then stays in L1 while the W panels of a block stream past.
        const float* ap = packed_a ? packed_a + pc * rows : own_a;
        if (!packed_a) a.pack<MR>(m0, rows, pc, kc, own_a);
        if (!pre && rows <= tiling.panel_order_rows) {
            // With few rows each W element is used by few row panels, so packing a
            // whole kc x nc W block before computing on it exposes the block's read (from L3 or
            // DRAM) and spills the packed block to L2 (64 x 2048 x 5120: 1.06-1.15x). Instead W
            // is packed one NR-column panel at a time, which stays in L1 while every row panel
            // uses it; A (rows x kc) streams from L2, hence the row limit. (Prefetching the next
            // panel's storage from inside the micro-kernels added ~3 % on one thread and lost
            // 3-7 % on two: left out.)
            for (std::size_t jr = n0; jr < n1; jr += NR) {
                const std::size_t nr = std::min(NR, n1 - jr);
                pack_w<Arch, NR>(w, jr, nr, pc, kc, wp);
                const float* bias = ep.bias ? ep.bias + jr : nullptr;
                for (std::size_t ir = 0; ir < rows; ir += MR) {
                    const std::size_t mr = std::min(MR, rows - ir);
                    kernels[mr - 1](kc, ap + ir * kc, wp, c + (m0 + ir) * ldc + jr, ldc, nr, bias, ep.alpha, ops, nullptr);
                }
            }
            continue;
        }
        for (std::size_t jc = n0; jc < n1; jc += nc_max) {
            const std::size_t nc = std::min(nc_max, n1 - jc);
            const float* wblock = pre ? pre->block(pc, jc) : wp;
            if (!pre) pack_w<Arch, NR>(w, jc, nc, pc, kc, wp);
            // The next prepacked W block comes from DRAM (a model is larger than L3) or L3: fetch
            // it into L2 while this block computes, spread over the micro-kernels' k loops. (Not
            // W's storage for pack_w: 1 MB more in L2 evicts the packed block, 0.87-0.96x.)
            prefetch_stream next;
            {
                const bool more_n = jc + nc < n1;
                if (pre && (more_n || pc + kc < k)) {
                    const std::size_t npc = more_n ? pc : pc + kc, njc = more_n ? jc + nc : n0;
                    const std::size_t ncols = std::min(nc_max, n1 - njc), nkc = std::min(kc_max, k - npc);
                    next = prefetch_stream(pre->block(npc, njc), (ncols + NR - 1) / NR * NR * nkc * sizeof(float));
                    const std::size_t calls = ((rows + MR - 1) / MR) * ((nc + NR - 1) / NR);
                    next.pace(calls * std::max<std::size_t>(1, kc / 4));
                }
            }
            for (std::size_t ir = 0; ir < rows; ir += MR) {
                const std::size_t mr = std::min(MR, rows - ir);
                const float* apanel = ap + ir * kc;
                const auto kernel = kernels[mr - 1];
                float* crow = c + (m0 + ir) * ldc;
                for (std::size_t jr = 0; jr < nc; jr += NR) {
                    const std::size_t nr = std::min(NR, nc - jr);
                    const float* bias = ep.bias ? ep.bias + jc + jr : nullptr;
                    kernel(kc, apanel, wblock + jr * kc, crow + jc + jr, ldc, nr, bias, ep.alpha, ops, &next);
                }
            }
        }
    }
}

template <class Arch>
void check_tiling(const gemm_tiling<Arch>& tiling, const char* where) {
    if (tiling.kc == 0 || tiling.nc == 0)
        throw value_error(core::describe("bad GEMM blocking", where, "kc, nc > 0", 0));
}

// The packed path of gemm (any m; W a weight_ref or an int8_matrix) on `threads` threads of exec.
template <class Arch, class Act, class Wt, class E>
void gemm_packed(std::size_t m, const a_operand& a, const Wt& w, float* c, std::size_t ldc,
                 const epilogue<Act>& ep, E& exec, const gemm_tiling<Arch>& tiling, std::size_t threads) {
    using tiling_t = gemm_tiling<Arch>;
    const std::size_t n_panels = (w.n + tiling_t::nr - 1) / tiling_t::nr;
    const std::size_t m_panels = (m + tiling_t::mr - 1) / tiling_t::mr;
    // Split n when every thread gets at least two column panels; otherwise split m.
    const bool split_n = n_panels >= 2 * threads || n_panels >= m_panels;
    const std::size_t parts = std::max<std::size_t>(
        1, std::min(threads, split_n ? n_panels : m_panels));
    if (split_n && parts > 1) {
        // Threads share one packed A (each packs a slice of its rows), then take column chunks
        // from a queue: no thread packs all of A again, and a thread slowed by the machine (a
        // shared core) takes fewer chunks instead of holding up a fixed half.
        const std::size_t kc_max = k_block(ep, tiling, w.k);
        float* ap = gemm_scratch(2, m * w.k);
        exec.run(parts, [&](std::size_t t) {
            const core::range r = core::split(m, parts, t, tiling_t::mr);
            if (r.begin < r.end) pack_a_blocks<tiling_t::mr>(a, m, w.k, kc_max, r.begin, r.end, ap);
        });
        const std::size_t chunks = std::min(n_panels, parts * std::max<std::size_t>(1, tiling.chunks_per_thread));
        exec.run(chunks, [&](std::size_t t) {
            const core::range r = core::split(w.n, chunks, t, tiling_t::nr);
            if (r.begin < r.end) gemm_block(a, w, c, ldc, ep, tiling, 0, m, r.begin, r.end, ap);
        });
        return;
    }
    exec.run(parts, [&](std::size_t t) {
        if (split_n) {
            const core::range r = core::split(w.n, parts, t, tiling_t::nr);
            if (r.begin < r.end) gemm_block(a, w, c, ldc, ep, tiling, 0, m, r.begin, r.end);
        } else {
            const core::range r = core::split(m, parts, t, tiling_t::mr);
            if (r.begin < r.end) gemm_block(a, w, c, ldc, ep, tiling, r.begin, r.end, 0, w.n);
        }
    });
}

}  // namespace detail

// C (m, n) = Act(alpha A (m, k) . W^T + bias) [+ C]. See matrix.hpp for the operands.
// Rows of A and C are lda / ldc apart. m <= gemv_max_rows takes the GEMV path.
template <class Arch = default_arch, activation Act = act::identity, weight_storage T,
          core::executor E = core::sequential>
void gemm(std::size_t m, const float* a, std::size_t lda, const weight_ref<T>& w, float* c,
          std::size_t ldc, const epilogue<Act>& ep = {}, E&& exec = E{},
          const gemm_tiling<Arch>& tiling = {}) {
    detail::check_operands("gemm", m, lda, w, a, c, ldc);
    if (m == 0) return;
    if (m <= gemv_max_rows) return gemv<Arch>(m, a, lda, w, c, ldc, ep, exec);
    // bf16 weights with a bf16-product engine (AMX tiles, AVX512-BF16): bf16_products.hpp, A rounded
    // to bf16. The call's engine if it names one, else the process's.
    if constexpr (std::is_same_v<T, bf16>) {
        const auto engine = tiling.bf16_engine.value_or(bf16_products::backend_in_use());
        if (engine != bf16_products::backend::none)
            return bf16_products::gemm_bf16(engine, m, a, lda, w, c, ldc, ep, exec, tiling.chunks_per_thread,
                                            tiling.parallel_min_macs);
    }
    detail::check_tiling(tiling, "gemm");
    // Small products stay on the calling thread on every path (fork/join costs ~20-40 us; a
    // 64 x 64 x 64 bf16 product on the packed path took 36 us on two threads against 2 on one).
    const std::size_t threads = m * w.n * w.k >= tiling.parallel_min_macs ? exec.size() : 1;
#if defined(__AVX512F__)
    if constexpr (is_avx512<Arch> && std::is_same_v<T, float>) {
        if (w.layout == weight_layout::nk && m <= tiling.inplace_rows) {
            // f32 W stored (n, k), not too many rows: W read in place (detail::inplace_kernel),
            // prepacked or not (faster than streaming the packed panels too: 1.01-1.29x at m = 64).
            // A is transposed into 32-row panels (up to one thread per panel), then threads take
            // column chunks (multiples of 14 W rows) from the queue. Small products stay on the
            // calling thread (fork/join costs ~20 us).
            const std::size_t kc_max = detail::inplace_k_block(ep, m, w.k, tiling.inplace_a_bytes);
            const std::size_t panels = (m + 31) / 32, slabs = (w.n + 13) / 14;
            float* at = detail::gemm_scratch(2, panels * 32 * w.k);
            const bool parallel = threads > 1;
            if (!parallel) {
                detail::inplace_pack_a<Arch>(a, lda, m, w.k, kc_max, 0, panels, at);
                detail::inplace_columns<Arch>(at, m, w, c, ldc, ep, kc_max, 0, w.n);
                return;
            }
            const std::size_t packers = std::min(threads, panels);
            exec.run(packers, [&](std::size_t t) {
                const core::range r = core::split(panels, packers, t);
                detail::inplace_pack_a<Arch>(a, lda, m, w.k, kc_max, r.begin, r.end, at);
            });
            const std::size_t chunks = std::min(slabs, threads * std::max<std::size_t>(1, tiling.chunks_per_thread));
            exec.run(chunks, [&](std::size_t t) {
                const core::range r = core::split(w.n, chunks, t, 14);
                if (r.begin < r.end) detail::inplace_columns<Arch>(at, m, w, c, ldc, ep, kc_max, r.begin, r.end);
            });
            return;
        }
    }
#endif
    detail::gemm_packed(m, detail::a_operand{a, lda}, w, c, ldc, ep, exec, tiling, threads);
}

// The same product with A given transposed: at (k, m), rows ldat apart, holds A^T (a weight
// gradient's dY^T . X reads dY where it lies). f32 W, m > gemv_max_rows: the packed path, its
// packer reading A^T's rows (no transpose pass).
template <class Arch = default_arch, activation Act = act::identity, core::executor E = core::sequential>
void gemm_transposed_a(std::size_t m, const float* at, std::size_t ldat, const weight_ref<float>& w, float* c,
                       std::size_t ldc, const epilogue<Act>& ep = {}, E&& exec = E{}, const gemm_tiling<Arch>& tiling = {}) {
    detail::check_operands("gemm_transposed_a", m, w.k, w, at, c, ldc);
    if (w.k > 1 && ldat < m)
        throw shape_error(core::describe("A^T's leading dimension smaller than m", "gemm_transposed_a", ">= " + std::to_string(m), ldat));
    if (m <= gemv_max_rows)
        throw shape_error(core::describe("rows of a transposed-A GEMM", "gemm_transposed_a",
                                         "more than " + std::to_string(gemv_max_rows) + " (fewer: transpose, then gemm)", m));
    detail::check_tiling(tiling, "gemm_transposed_a");
    const std::size_t threads = m * w.n * w.k >= tiling.parallel_min_macs ? exec.size() : 1;
    detail::gemm_packed(m, detail::a_operand{at, ldat, true}, w, c, ldc, ep, exec, tiling, threads);
}

// Packs an f32 matrix once for the f32 GEMM with this tiling (null when nothing would use it:
// k blocks of a different size, or a width no GEMM call takes — m <= gemv_max_rows uses GEMV).
template <class Arch = default_arch>
std::shared_ptr<const packed_panels> pack_panels(const weight_ref<float>& w, const gemm_tiling<Arch>& tiling = {}) {
    using tiling_t = gemm_tiling<Arch>;
    if (!w.data || w.n == 0 || w.k == 0 || tiling.kc == 0) return nullptr;
    auto p = std::make_shared<packed_panels>();
    const std::size_t NR = tiling_t::nr, panels = (w.n + NR - 1) / NR;
    p->n = w.n;
    p->k = w.k;
    p->kc = std::min(tiling.kc, w.k);
    p->nr = NR;
    p->source = w.data;
    p->layout = w.layout;
    p->ld = w.ld;
    p->floats = panels * NR * w.k;
    p->data.reset(detail::aligned_floats(p->floats));
    for (std::size_t pc = 0; pc < w.k; pc += p->kc)
        detail::pack_w<Arch, tiling_t::nr>(w, 0, w.n, pc, std::min(p->kc, w.k - pc), p->data.get() + pc * panels * NR);
    return p;
}

}  // namespace pali3::kernels
