// Packed, cache-blocked GEMM: C (m, n) = Act(alpha A (m, k) . W^T + bias) [+ C], A f32, W in f32,
// bf16 or f16 (either layout, see matrix.hpp), f32 accumulation. bf16 weights take the bf16-product
// path (amx.hpp: AMX tiles or AVX512-BF16) when the CPU has an engine for it.
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
// GEMV kernels.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <new>
#include <type_traits>
#include <utility>

#include "pali3/core/threading.hpp"
#include "pali3/kernels/amx.hpp"
#include "pali3/kernels/gemv.hpp"
#include "pali3/kernels/elementwise.hpp"
#include "pali3/kernels/matrix.hpp"
#include "pali3/kernels/simd.hpp"

namespace pali3::kernels {

// Register tile and cache blocking for an architecture. mr x (nr_vectors * W) accumulators
// must fit the register file with room for the W loads and one broadcast.
template <class Arch>
struct gemm_tiling {
    static constexpr std::size_t width = fbatch<Arch>::size;
    static constexpr std::size_t nr_vectors = 2;
    static constexpr std::size_t nr = nr_vectors * width;
    static constexpr std::size_t mr = is_avx512<Arch> ? 14 : 6;  // 28 or 12 accumulators
    // k and n blocks of the packed path (a kc x nc block of packed f32 W stays in L2), measured
    // per CPU (docs/benchmarks.md): Intel, 2 MiB L2: 256 x 1024 (kc 512 / nc 512 0.94x); AMD Zen 5,
    // 1 MiB L2: 1024 x 128, 1.02-1.19x on 1 thread and up to 1.14x on 2 over 256 x 1024 at the
    // ViT/UL2 shapes (fewer round trips of C through the partial sums, a 512 KiB W block).
    static std::size_t default_kc() noexcept { return cpu_is_amd() ? 1024 : 256; }
    static std::size_t default_nc() noexcept { return cpu_is_amd() ? 128 : 1024; }
    std::size_t kc = default_kc();
    std::size_t nc = default_nc();
    // Threads splitting n take column chunks from a queue, about this many each (1: fixed shares).
    std::size_t chunks_per_thread = 3;
    // Products of fewer multiply-adds (m n k) stay on the calling thread, on every GEMM path: a
    // fork/join costs ~20 us, a 64 x 64 x 64 bf16 product ~2 us.
    std::size_t parallel_min_macs = std::size_t{1} << 21;
    // Up to this many rows, W is packed one column panel at a time, interleaved with the
    // micro-kernels that use it, instead of a kc x nc block ahead of them. Measured (1 thread):
    // 64 rows 1.07-1.15x, 112 1.04-1.06x; 197-257 rows -5..+6 % by shape (C walked a column
    // panel at a time defeats the hardware prefetcher when C is larger than L2); 512+ rows lose
    // (A no longer fits L2 next to the panel).
    std::size_t panel_order_rows = 160;
    // Up to this many rows, f32 W stored (n, k) is read in place (AVX-512; prepacked panels unused):
    // C^T = W A^T, W rows broadcast straight from their storage, A transposed into 32-row panels
    // once — no per-call transpose of W. Measured (speed log 14): 64-128 rows 1.13-1.46x on
    // 1 thread, 1.02-1.23x on 2; 160 rows 1.13x on 1 thread but 0.86x on 2; 197-256 within
    // -16..+12 % by shape; 512+ rows lose.
    std::size_t inplace_rows = 128;
    // The in-place path's k block keeps A^T (rows rounded up to 32, x kc) within this many bytes.
    std::size_t inplace_a_bytes = std::size_t{1} << 20;
};

namespace detail {

struct aligned_free {
    void operator()(float* p) const noexcept { std::free(p); }
};

inline float* aligned_floats(std::size_t n) {
    const std::size_t bytes = ((n * sizeof(float) + 63) / 64) * 64;
    void* p = std::aligned_alloc(64, bytes ? bytes : 64);
    if (!p) throw std::bad_alloc();
    return static_cast<float*>(p);
}

// Per-thread scratch reused across calls (packing buffers); grows, never shrinks.
class scratch_buffer {
public:
    float* get(std::size_t n) {
        if (n > capacity_) {
            data_.reset(aligned_floats(n));
            capacity_ = n;
        }
        return data_.get();
    }

private:
    std::unique_ptr<float, aligned_free> data_;
    std::size_t capacity_ = 0;
};

inline float* gemm_scratch(std::size_t slot, std::size_t n) {
    thread_local scratch_buffer buffers[3];
    return buffers[slot].get(n);
}

// The next prepacked W block, fetched into L2 a few lines at a time from inside the
// micro-kernel's k loop while the current block computes. A burst of prefetches between
// micro-kernel calls (the first version) fills the line-fill buffers and stalls the kernel's own
// loads; spread over the k loop they overlap with the FMAs.
struct prefetch_stream {
    const char* base = nullptr;  // 64-byte aligned
    std::size_t lines = 0, next = 0;
    std::size_t per_group = 0;  // lines issued per 4 k steps

    prefetch_stream() = default;
    prefetch_stream(const void* first, std::size_t bytes) {
        const auto addr = reinterpret_cast<std::uintptr_t>(first);
        const std::uintptr_t begin = addr & ~std::uintptr_t{63};
        base = reinterpret_cast<const char*>(begin);
        lines = bytes ? (addr + bytes - begin + 63) / 64 : 0;
    }
    // Spread the lines over `groups` groups of 4 k steps.
    void pace(std::size_t groups) { per_group = groups ? (lines + groups - 1) / groups : lines; }
    void issue() {
        const std::size_t end = std::min(lines, next + per_group);
        for (; next < end; ++next) __builtin_prefetch(base + next * 64, 0, 2);
    }
};

struct tile_ops {
    bool load_c_before;  // add the current C (a partial sum from earlier k blocks) before Act
    bool add_bias;
    bool apply_act;
    bool load_c_after;  // add the current C (the old value, accumulate) after Act
};

// What the epilogue of the k block [first, last] does: partial sums of earlier blocks live in C;
// bias on the first block, the activation on the last; the old C (accumulate) goes in before a
// linear epilogue, after a non-linear one (which then needs a single k block).
template <class Act>
tile_ops block_ops(const epilogue<Act>& ep, bool first, bool last) {
    tile_ops ops{};
    ops.load_c_before = !first || (ep.accumulate && Act::is_identity);
    ops.add_bias = first && ep.bias != nullptr;
    ops.apply_act = last && !Act::is_identity;
    ops.load_c_after = first && last && ep.accumulate && !Act::is_identity;
    return ops;
}

template <class Arch, class Act>
inline fbatch<Arch> tile_epilogue(fbatch<Arch> v, const float* c, const float* bias,
                                  const tile_ops& ops) {
    if (ops.load_c_before) v += fbatch<Arch>::load_unaligned(c);
    if (ops.add_bias) v += fbatch<Arch>::load_unaligned(bias);
    if (ops.apply_act) v = Act::template apply<Arch>(v);
    if (ops.load_c_after) v += fbatch<Arch>::load_unaligned(c);
    return v;
}

inline float tile_epilogue_scalar(float v, float c, float bias, const tile_ops& ops,
                                  float (*act)(float)) {
    if (ops.load_c_before) v += c;
    if (ops.add_bias) v += bias;
    if (ops.apply_act) v = act(v);
    if (ops.load_c_after) v += c;
    return v;
}

// MR x NR tile of C from an A micro-panel (kc x MR, k-major) and a W micro-panel (kc x NR).
template <std::size_t MR, class Arch, class Act>
void micro_kernel(std::size_t kc, const float* __restrict ap, const float* __restrict bp,
                  float* c, std::size_t ldc, std::size_t n_valid, const float* bias, float alpha,
                  const tile_ops& ops, prefetch_stream* pf) {
    using B = fbatch<Arch>;
    constexpr std::size_t W = B::size;
    constexpr std::size_t NV = gemm_tiling<Arch>::nr_vectors;
    B acc[MR][NV];
    static_for<MR>([&](auto i) { static_for<NV>([&](auto v) { acc[i][v] = B(0.f); }); });
    // The C tile is read at the end (partial sums of earlier k blocks, residual); C is often
    // larger than L2, so start fetching it now.
    static_for<MR>([&](auto i) {
        __builtin_prefetch(c + i * ldc, 1, 3);
        __builtin_prefetch(c + i * ldc + NV * W - 1, 1, 3);
    });
    const auto step = [&]() __attribute__((always_inline)) {
        B b[NV];
        static_for<NV>([&](auto v) { b[v] = B::load_aligned(bp + v * W); });
        static_for<MR>([&](auto i) {
            const B a(ap[i]);
            static_for<NV>([&](auto v) { acc[i][v] = xsimd::fma(a, b[v], acc[i][v]); });
        });
        ap += MR;
        bp += NV * W;
    };
    if (pf && pf->per_group) {
        // The prefetch stream's lines issued every 4 k steps.
#pragma GCC unroll 4
        for (std::size_t p = 0; p < kc; ++p) {
            if ((p & 3) == 0) pf->issue();
            step();
        }
    } else {
#pragma GCC unroll 4
        for (std::size_t p = 0; p < kc; ++p) step();
    }
    const B va(alpha);
    if (n_valid == NV * W) {
        static_for<MR>([&](auto i) {
            static_for<NV>([&](auto v) {
                float* ct = c + i * ldc + v * W;
                tile_epilogue<Arch, Act>(acc[i][v] * va, ct, bias ? bias + v * W : nullptr, ops).store_unaligned(ct);
            });
        });
    } else {
        alignas(64) float tmp[MR][NV * W];
        static_for<MR>([&](auto i) {
            static_for<NV>([&](auto v) { (acc[i][v] * va).store_aligned(&tmp[i][v * W]); });
        });
        for (std::size_t i = 0; i < MR; ++i)
            for (std::size_t j = 0; j < n_valid; ++j)
                c[i * ldc + j] = tile_epilogue_scalar(tmp[i][j], c[i * ldc + j],
                                                      bias ? bias[j] : 0.f, ops, &Act::apply);
    }
}

template <class Arch, class Act>
using micro_kernel_fn = void (*)(std::size_t, const float*, const float*, float*, std::size_t,
                                 std::size_t, const float*, float, const tile_ops&, prefetch_stream*);

// micro_kernel<1..MR>, so a short last row panel computes only its rows.
template <class Arch, class Act>
constexpr auto micro_kernel_table() {
    constexpr std::size_t MR = gemm_tiling<Arch>::mr;
    return []<std::size_t... I>(std::index_sequence<I...>) {
        return std::array<micro_kernel_fn<Arch, Act>, MR>{&micro_kernel<I + 1, Arch, Act>...};
    }(std::make_index_sequence<MR>{});
}

// Packs A rows [0, mc) x cols [0, kc) into panels of mr rows, each k-major (a short last panel
// uses its own row count as stride).
template <std::size_t MR>
void pack_a(const float* a, std::size_t lda, std::size_t mc, std::size_t kc, float* dst) {
    for (std::size_t i0 = 0; i0 < mc; i0 += MR) {
        const std::size_t mr = std::min(MR, mc - i0);
        if (mr == MR) {
            std::size_t p = 0;
#if defined(__AVX512F__)
            if constexpr (MR <= 16) {
                // 16 k at a time: MR rows (zero-padded to 16) transposed in registers, each
                // column stored as MR floats (masked) — the scalar gather below took ~6 % of a
                // 2-thread ViT forward.
                constexpr __mmask16 keep = static_cast<__mmask16>((1u << MR) - 1);
                __m512 rows[16], cols[16];
                for (std::size_t i = MR; i < 16; ++i) rows[i] = _mm512_setzero_ps();
                for (; p + 16 <= kc; p += 16) {
                    for (std::size_t i = 0; i < MR; ++i) rows[i] = _mm512_loadu_ps(a + (i0 + i) * lda + p);
                    transpose_16x16_registers(rows, cols);
                    for (std::size_t q = 0; q < 16; ++q) _mm512_mask_storeu_ps(dst + (p + q) * MR, keep, cols[q]);
                }
            }
#endif
            const float* src = a + i0 * lda + p;
            float* out = dst + p * MR;
            for (std::size_t q = 0, tail = kc - p; q < tail; ++q)
                for (std::size_t i = 0; i < MR; ++i) out[q * MR + i] = src[i * lda + q];
        } else {
            for (std::size_t p = 0; p < kc; ++p)
                for (std::size_t i = 0; i < mr; ++i) dst[p * mr + i] = a[(i0 + i) * lda + p];
        }
        dst += mr * kc;
    }
}

// dst[p * ldd + j] = src[j * lds + p] for j < W, p < len: W rows become one vector per p.
template <class Arch>
inline void gather_columns(const float* src, std::size_t lds, std::size_t len, float* dst,
                           std::size_t ldd) {
    using B = fbatch<Arch>;
    using I = xsimd::batch<std::int32_t, Arch>;
    alignas(64) std::int32_t idx[B::size];
    for (std::size_t j = 0; j < B::size; ++j) idx[j] = static_cast<std::int32_t>(j * lds);
    const I vidx = I::load_aligned(idx);
    for (std::size_t p = 0; p < len; ++p) B::gather(src + p, vidx).store_aligned(dst + p * ldd);
}

// dst[p * ldd + j] = float(src[j * lds + p]) for j, p < 16: a 16x16 transpose in registers
// (64 shuffles per 256 elements), converting the storage on load.
template <class Arch, class T>
inline void transpose_16x16(const T* src, std::size_t lds, float* dst, std::size_t ldd) {
#if defined(__AVX512F__)
    if constexpr (is_avx512<Arch>) {
        __m512 rows[16], cols[16];
        for (int j = 0; j < 16; ++j) rows[j] = load_as_float<Arch>(src + j * lds);
        transpose_16x16_registers(rows, cols);
        for (int p = 0; p < 16; ++p) _mm512_store_ps(dst + p * ldd, cols[p]);
        return;
    }
#endif
    for (std::size_t j = 0; j < 16; ++j)
        for (std::size_t p = 0; p < 16; ++p) dst[p * ldd + j] = to_float(src[j * lds + p]);
}

// Packs W(j0 .. j0+nc, p0 .. p0+kc) into panels of NR columns (kc x NR each, zero-padded),
// converting the storage to f32.
template <class Arch, std::size_t NR, class T>
void pack_w(const weight_ref<T>& w, std::size_t j0, std::size_t nc, std::size_t p0,
            std::size_t kc, float* dst) {
    using B = fbatch<Arch>;
    constexpr std::size_t W = B::size;
    for (std::size_t jp = 0; jp < nc; jp += NR) {
        const std::size_t nr = std::min(NR, nc - jp);
        if (w.layout == weight_layout::kn) {
            for (std::size_t p = 0; p < kc; ++p) {
                const T* src = w.data + (p0 + p) * w.ld + j0 + jp;
                float* d = dst + p * NR;
                if (nr == NR) {
                    for (std::size_t v = 0; v < NR; v += W) load_as_float<Arch>(src + v).store_aligned(d + v);
                } else {
                    for (std::size_t j = 0; j < nr; ++j) d[j] = to_float(src[j]);
                    for (std::size_t j = nr; j < NR; ++j) d[j] = 0.f;
                }
            }
        } else {
            // (n, k) storage: a transpose. Groups of W stored rows are gathered one k at a time
            // (f32 straight from W; other storage through a converted f32 staging copy).
            for (std::size_t jv = 0; jv < NR; jv += W) {
                const std::size_t rows = jv < nr ? std::min(W, nr - jv) : 0;
                if (rows == W) {
                    const T* src = w.data + (j0 + jp + jv) * w.ld + p0;
                    std::size_t p = 0;
                    if constexpr (W == 16) {
                        for (; p + 16 <= kc; p += 16) transpose_16x16<Arch>(src + p, w.ld, dst + p * NR + jv, NR);
                    }
                    if (p < kc) {
                        // Tail (and non-AVX-512 targets): copy/convert up to 64 k of each row into
                        // a contiguous stage, then gather columns from it (all in L1).
                        alignas(64) float stage[W * 64];
                        for (std::size_t pb = p; pb < kc; pb += 64) {
                            const std::size_t len = std::min<std::size_t>(64, kc - pb);
                            for (std::size_t j = 0; j < W; ++j) convert<Arch>(src + j * w.ld + pb, stage + j * 64, len);
                            gather_columns<Arch>(stage, 64, len, dst + pb * NR + jv, NR);
                        }
                    }
                } else {
                    for (std::size_t j = 0; j < W; ++j) {
                        if (j < rows) {
                            const T* src = w.data + (j0 + jp + jv + j) * w.ld + p0;
                            for (std::size_t p = 0; p < kc; ++p) dst[p * NR + jv + j] = to_float(src[p]);
                        } else {
                            for (std::size_t p = 0; p < kc; ++p) dst[p * NR + jv + j] = 0.f;
                        }
                    }
                }
            }
        }
        dst += kc * NR;
    }
}

#if defined(__AVX512F__)
// The in-place path (`gemm_tiling::inplace_rows`): a tile of C^T, NRW W rows (n) x 16 NV rows
// of A (m). Each k step loads NV vectors of A (a row of an A^T panel, kc x 32, packed once per
// call) and broadcasts NRW W values straight from W's (n, k) storage: the W rows are NRW
// sequential streams, so W needs no packing at all. Registers: NRW NV accumulators, NV A
// vectors, one broadcast. The row addresses are base + {0,1,2,4,8} ld over six bases, which keeps
// g++ from spilling row pointers inside the k loop. The tile is then transposed in registers
// (one 16x16 per 16 rows of A) and written a C row (NRW columns, masked) at a time through the
// epilogue; partial sums of earlier k blocks are read back the same way.
template <std::size_t NRW, std::size_t NV, class Arch, class Act>
void inplace_kernel(std::size_t kc, const float* w, std::size_t ldw, const float* __restrict atp,
                    float* c, std::size_t ldc, std::size_t rows, const float* bias, float alpha,
                    const tile_ops& ops) {
    static_assert(NRW >= 1 && NRW <= 14 && NV >= 1 && NV <= 2);
    using B = fbatch<Arch>;
    constexpr std::size_t panel_rows = 32;
    B acc[NRW][NV];
    static_for<NRW>([&](auto i) { static_for<NV>([&](auto v) { acc[i][v] = B(0.f); }); });
    constexpr std::array<std::size_t, 14> base_of{0, 1, 2, 3, 4, 1, 2, 3, 0, 1, 2, 3, 4, 5};
    constexpr std::array<std::size_t, 14> scale_of{0, 0, 0, 0, 0, 4, 4, 4, 8, 8, 8, 8, 8, 8};
    const std::size_t ldb = ldw * sizeof(float);
    const char* bases[6] = {};
    for (std::size_t j = 0; j < std::min<std::size_t>(6, NRW); ++j) bases[j] = reinterpret_cast<const char*>(w + j * ldw);
#pragma GCC unroll 4
    for (std::size_t p = 0; p < kc; ++p) {
        B b[NV];
        static_for<NV>([&](auto v) { b[v] = B::load_aligned(atp + p * panel_rows + v * 16); });
        static_for<NRW>([&](auto i) {
            const B a(*reinterpret_cast<const float*>(bases[base_of[i]] + scale_of[i] * ldb + p * sizeof(float)));
            static_for<NV>([&](auto v) { acc[i][v] = xsimd::fma(a, b[v], acc[i][v]); });
        });
    }
    alignas(64) float tile[NRW][NV * 16];
    const B va(alpha);
    static_for<NRW>([&](auto i) { static_for<NV>([&](auto v) { (acc[i][v] * va).store_aligned(&tile[i][v * 16]); }); });
    const auto cols = static_cast<__mmask16>((1u << NRW) - 1);
    for (std::size_t half = 0; half < NV && half * 16 < rows; ++half) {
        __m512 in[16], out[16];
        for (std::size_t i = 0; i < 16; ++i) in[i] = i < NRW ? _mm512_load_ps(&tile[i][half * 16]) : _mm512_setzero_ps();
        transpose_16x16_registers(in, out);
        const std::size_t lines = std::min<std::size_t>(16, rows - half * 16);
        for (std::size_t l = 0; l < lines; ++l) {
            float* crow = c + (half * 16 + l) * ldc;
            __m512 x = out[l];
            if (ops.load_c_before) x = _mm512_add_ps(x, _mm512_maskz_loadu_ps(cols, crow));
            if (ops.add_bias) x = _mm512_add_ps(x, _mm512_maskz_loadu_ps(cols, bias));
            if (ops.apply_act) x = Act::template apply<Arch>(B(x));
            if (ops.load_c_after) x = _mm512_add_ps(x, _mm512_maskz_loadu_ps(cols, crow));
            _mm512_mask_storeu_ps(crow, cols, x);
        }
    }
}

template <class Arch, class Act>
using inplace_kernel_fn = void (*)(std::size_t, const float*, std::size_t, const float*, float*,
                                   std::size_t, std::size_t, const float*, float, const tile_ops&);

// [NV - 1][NRW - 1]: a short last slab of W rows, a last panel of at most 16 rows of A.
template <class Arch, class Act>
constexpr auto inplace_kernel_table() {
    return []<std::size_t... I>(std::index_sequence<I...>) {
        return std::array<std::array<inplace_kernel_fn<Arch, Act>, 14>, 2>{
            std::array<inplace_kernel_fn<Arch, Act>, 14>{&inplace_kernel<I + 1, 1, Arch, Act>...},
            std::array<inplace_kernel_fn<Arch, Act>, 14>{&inplace_kernel<I + 1, 2, Arch, Act>...}};
    }(std::make_index_sequence<14>{});
}

// The k block of the in-place path: A^T (m rounded up to 32, x kc) within `budget` bytes so it
// stays in L2 while every W slab passes it; a multiple of 16 (the packer's transpose), and
// all of k when the epilogue cannot be split (non-linear activation and accumulate).
template <class Act>
std::size_t inplace_k_block(const epilogue<Act>& ep, std::size_t m, std::size_t k, std::size_t budget) {
    if (!Act::is_identity && ep.accumulate) return k;
    const std::size_t panel_bytes = (m + 31) / 32 * 32 * sizeof(float);
    const std::size_t kc_max = std::max<std::size_t>(16, budget / panel_bytes / 16 * 16);
    const std::size_t blocks = (k + kc_max - 1) / kc_max;
    return std::min(k, ((k + blocks - 1) / blocks + 15) / 16 * 16);
}

// A^T for the in-place path, 32-row panels [q0, q1): k block pc at at + pc * m32, panel q of it at
// + q * 32 * kc (pack_w's layout: kc x 32, zero-padded past m).
template <class Arch>
void inplace_pack_a(const float* a, std::size_t lda, std::size_t m, std::size_t k, std::size_t kc_max,
                    std::size_t q0, std::size_t q1, float* at) {
    const std::size_t m32 = (m + 31) / 32 * 32;
    const weight_ref<float> rows = weight_nk(a, m, k, lda);
    for (std::size_t pc = 0; pc < k; pc += kc_max) {
        const std::size_t kc = std::min(kc_max, k - pc);
        for (std::size_t q = q0; q < q1; ++q)
            pack_w<Arch, 32>(rows, q * 32, std::min<std::size_t>(32, m - q * 32), pc, kc, at + pc * m32 + q * 32 * kc);
    }
}

// Columns [n0, n1) of C from A^T (inplace_pack_a) and W read in place.
template <class Arch, class Act>
void inplace_columns(const float* at, std::size_t m, const weight_ref<float>& w, float* c,
                     std::size_t ldc, const epilogue<Act>& ep, std::size_t kc_max, std::size_t n0,
                     std::size_t n1) {
    static constexpr auto kernels = inplace_kernel_table<Arch, Act>();
    const std::size_t k = w.k, m32 = (m + 31) / 32 * 32;
    for (std::size_t pc = 0; pc < k; pc += kc_max) {
        const std::size_t kc = std::min(kc_max, k - pc);
        const bool first = pc == 0, last = pc + kc == k;
        const tile_ops ops = block_ops(ep, first, last);
        const float* block = at + pc * m32;
        // W rows outside, A panels inside: a 14 x kc slab of W comes from L3/DRAM once and from
        // L1/L2 for the other panels; the A^T block stays in L2.
        for (std::size_t j = n0; j < n1; j += 14) {
            const std::size_t nrw = std::min<std::size_t>(14, n1 - j);
            const float* wj = w.data + j * w.ld + pc;
            const float* bias = ep.bias ? ep.bias + j : nullptr;
            for (std::size_t q = 0; q < m; q += 32) {
                const std::size_t rows = std::min<std::size_t>(32, m - q);
                kernels[rows > 16 ? 1 : 0][nrw - 1](kc, wj, w.ld, block + q * kc, c + q * ldc + j, ldc, rows, bias, ep.alpha, ops);
            }
        }
    }
}
#endif

}  // namespace detail

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
void pack_a_blocks(const float* a, std::size_t lda, std::size_t m, std::size_t k, std::size_t kc_max,
                   std::size_t r0, std::size_t r1, float* dst) {
    for (std::size_t pc = 0; pc < k; pc += kc_max) {
        const std::size_t kc = std::min(kc_max, k - pc);
        pack_a<MR>(a + r0 * lda + pc, lda, r1 - r0, kc, dst + pc * m + r0 * kc);
    }
}

// One thread's share: rows [m0, m1), columns [n0, n1). `packed_a`: all rows already packed by
// pack_a_blocks (then m0 = 0, m1 = m), or null to pack them here.
template <class Arch, class Act, class T>
void gemm_block(const float* a, std::size_t lda, const weight_ref<T>& w, float* c,
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
    if constexpr (std::is_same_v<T, float>)
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
        if (!packed_a) pack_a<MR>(a + m0 * lda + pc, lda, rows, kc, own_a);
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
    // bf16 weights with a bf16-product engine (AMX tiles, AVX512-BF16): amx.hpp, A rounded to bf16.
    if constexpr (std::is_same_v<T, bf16>)
        if (amx::enabled())
            return amx::gemm_bf16(m, a, lda, w, c, ldc, ep, exec, tiling.chunks_per_thread, tiling.parallel_min_macs);
    using tiling_t = gemm_tiling<Arch>;
    if (tiling.kc == 0 || tiling.nc == 0)
        throw value_error(core::describe("bad GEMM blocking", "gemm", "kc, nc > 0", 0));
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
        const std::size_t kc_max = detail::k_block(ep, tiling, w.k);
        float* ap = detail::gemm_scratch(2, m * w.k);
        exec.run(parts, [&](std::size_t t) {
            const core::range r = core::split(m, parts, t, tiling_t::mr);
            if (r.begin < r.end) detail::pack_a_blocks<tiling_t::mr>(a, lda, m, w.k, kc_max, r.begin, r.end, ap);
        });
        const std::size_t chunks = std::min(n_panels, parts * std::max<std::size_t>(1, tiling.chunks_per_thread));
        exec.run(chunks, [&](std::size_t t) {
            const core::range r = core::split(w.n, chunks, t, tiling_t::nr);
            if (r.begin < r.end) detail::gemm_block(a, lda, w, c, ldc, ep, tiling, 0, m, r.begin, r.end, ap);
        });
        return;
    }
    exec.run(parts, [&](std::size_t t) {
        if (split_n) {
            const core::range r = core::split(w.n, parts, t, tiling_t::nr);
            if (r.begin < r.end) detail::gemm_block(a, lda, w, c, ldc, ep, tiling, 0, m, r.begin, r.end);
        } else {
            const core::range r = core::split(m, parts, t, tiling_t::mr);
            if (r.begin < r.end) detail::gemm_block(a, lda, w, c, ldc, ep, tiling, r.begin, r.end, 0, w.n);
        }
    });
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
