// The parts of the f32 GEMM (gemm.hpp): the register tile and cache blocking of an architecture
// (`gemm_tiling`, which callers tune per call), per-thread scratch, the paced prefetch of
// prepacked W, the MR x NR micro-kernels with their fused epilogue, the packers of A and W
// (converting W's storage — bf16, f16, int8 with its scales — transposing (n, k) W in 16 x 16
// register blocks), and the kernels of
// the in-place path (f32 W stored (n, k) read without packing, AVX-512).
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>
#include <optional>
#include <type_traits>
#include <utility>

#include "pali3/core/threading.hpp"
#include "pali3/kernels/bf16_blocks.hpp"
#include "pali3/kernels/elementwise.hpp"
#include "pali3/kernels/int8_matrix.hpp"
#include "pali3/kernels/int8_products.hpp"
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
    // The bf16-product engine for bf16 weights on this call (none: the portable path); unset: the
    // process's choice (bf16_products::backend_in_use()). An engine this CPU cannot run throws.
    std::optional<bf16_products::backend> bf16_engine{};
    // The integer-product engine for int8 weights (one scale per row) on this call (none: the
    // portable path, f32 products on W dequantised while packed); unset: the process's choice
    // (int8_products::backend_in_use()). An engine this CPU cannot run throws.
    std::optional<int8_products::backend> int8_engine{};
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

// The activation of one value computed as a batch lane: bit-identical to the vector epilogue, so
// where a column falls (a full tile or a tile's tail, which moves with the thread count's column
// chunks) cannot change its value. A policy's scalar apply() (std::exp) may differ in the last bit.
template <class Arch, class Act>
float act_as_lane(float x) {
    return Act::template apply<Arch>(fbatch<Arch>(x)).get(0);
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
                                                      bias ? bias[j] : 0.f, ops, &act_as_lane<Arch, Act>);
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
#elif defined(__AVX__)
            if constexpr (MR >= 4 && MR <= 8) {
                // 8 k at a time: MR rows (zero-padded to 8) transposed in registers, each column
                // stored as MR floats — the scalar gather below took ~8 % of a shapes PaLI-3
                // training step on AVX2 (bench train_pali3_step). Columns are stored whole, in
                // order, each overwriting the previous one's 8 - MR padding lanes; the last one
                // goes through a buffer (Zen 3's masked stores cost more than the gather saved).
                __m256 rows[8], cols[8];
                alignas(32) float last[8];
                for (std::size_t i = MR; i < 8; ++i) rows[i] = _mm256_setzero_ps();
                for (; p + 8 <= kc; p += 8) {
                    for (std::size_t i = 0; i < MR; ++i) rows[i] = _mm256_loadu_ps(a + (i0 + i) * lda + p);
                    transpose_8x8_registers(rows, cols);
                    for (std::size_t q = 0; q < 7; ++q) _mm256_storeu_ps(dst + (p + q) * MR, cols[q]);
                    _mm256_store_ps(last, cols[7]);
                    std::memcpy(dst + (p + 7) * MR, last, MR * sizeof(float));
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

// The same panels from A given transposed: at (kc, mc) rows ldt apart holds A^T, so each panel's
// MR values for one k are contiguous (a weight gradient's dY read in place, no transpose pass).
template <std::size_t MR>
void pack_a_transposed(const float* at, std::size_t ldt, std::size_t mc, std::size_t kc, float* dst) {
    for (std::size_t i0 = 0; i0 < mc; i0 += MR) {
        const std::size_t mr = std::min(MR, mc - i0);
        if (mr == MR) {
            for (std::size_t p = 0; p < kc; ++p)
                for (std::size_t i = 0; i < MR; ++i) dst[p * MR + i] = at[p * ldt + i0 + i];
        } else {
            for (std::size_t p = 0; p < kc; ++p)
                for (std::size_t i = 0; i < mr; ++i) dst[p * mr + i] = at[p * ldt + i0 + i];
        }
        dst += mr * kc;
    }
}

// The A operand of the packed GEMM: A (m, k) with rows `ld` apart or, `transposed`, A^T stored
// (k, m) with rows `ld` apart. pack packs rows [r0, r0 + rows) x k [p0, p0 + kc) as pack_a does.
struct a_operand {
    const float* data = nullptr;
    std::size_t ld = 0;
    bool transposed = false;
    template <std::size_t MR>
    void pack(std::size_t r0, std::size_t rows, std::size_t p0, std::size_t kc, float* dst) const {
        if (transposed) pack_a_transposed<MR>(data + p0 * ld + r0, ld, rows, kc, dst);
        else pack_a<MR>(data + r0 * ld + p0, ld, rows, kc, dst);
    }
};

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
#if defined(__AVX__)
                    if constexpr (W == 8) {  // AVX2: 8 x 8 in registers instead of the staged gather below
                        __m256 rows8[8], cols8[8];
                        for (; p + 8 <= kc; p += 8) {
                            for (std::size_t j = 0; j < 8; ++j) rows8[j] = load_as_float<Arch>(src + j * w.ld + p);
                            transpose_8x8_registers(rows8, cols8);
                            for (std::size_t q = 0; q < 8; ++q) _mm256_store_ps(dst + (p + q) * NR + jv, cols8[q]);
                        }
                    }
#endif
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

// Packs int8 W(j0 .. j0+nc, p0 .. p0+kc) as pack_w packs (n, k) storage, dequantising on the
// way (scale(j, i) * q): each group of vector-width W rows is converted 64 k at a time into an L1
// stage, then gathered into columns. The f32 GEMM then runs on int8 weights with no f32 copy of
// W: one conversion per weight and call, against m multiply-adds per weight.
template <class Arch, std::size_t NR>
void pack_w(const int8_matrix& w, std::size_t j0, std::size_t nc, std::size_t p0, std::size_t kc, float* dst) {
    constexpr std::size_t W = fbatch<Arch>::size;
    alignas(64) float stage[W * 64];
    for (std::size_t jp = 0; jp < nc; jp += NR) {
        const std::size_t nr = std::min(NR, nc - jp);
        for (std::size_t jv = 0; jv < NR; jv += W) {
            const std::size_t rows = jv < nr ? std::min(W, nr - jv) : 0;
            for (std::size_t pb = 0; pb < kc; pb += 64) {
                const std::size_t len = std::min<std::size_t>(64, kc - pb);
                for (std::size_t j = 0; j < W; ++j) {
                    if (j < rows) dequantize_int8_row(w, j0 + jp + jv + j, p0 + pb, p0 + pb + len, stage + j * 64);
                    else std::fill(stage + j * 64, stage + j * 64 + len, 0.f);
                }
                gather_columns<Arch>(stage, 64, len, dst + pb * NR + jv, NR);
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

}  // namespace pali3::kernels
