// Scaled dot-product attention for one head, tiled with an online softmax: memory is
// O(block_q x block_k + block_q x head_dim) whatever the sequence lengths (5776 image tokens at
// 1064 px never materialise a 5776 x 5776 score matrix). Masks (padding, causal, prefix-LM) and
// an additive bias indexed by relative distance (T5) are applied per tile; key blocks that a
// mask hides entirely are skipped.
//
//   out (tq, dh) = softmax(scale * q k^T + bias + mask) v
// q (tq, dh), k and v (tk, dh), each with its own row stride (heads interleaved in a row).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <vector>

#include "pali3/core/error.hpp"
#include "pali3/kernels/gemm.hpp"
#include "pali3/kernels/simd.hpp"

namespace pali3::kernels {

// Which keys a query sees. Query i sits at absolute position q_offset + i (q_offset > 0 when
// new tokens attend to a KV cache); keys are at 0..tk-1.
struct attention_mask {
    bool causal = false;
    std::size_t q_offset = 0;
    std::size_t key_len = std::numeric_limits<std::size_t>::max();  // keys >= key_len are padding
    std::size_t prefix = 0;  // with causal: keys < prefix are visible to every query (prefix-LM)

    bool visible(std::size_t qi, std::size_t kj) const {
        if (kj >= key_len) return false;
        return !causal || kj < prefix || kj <= q_offset + qi;
    }
};

// Additive bias as a function of the relative distance d = key - (q_offset + i):
// value = by_distance[d + zero], zero = index of distance 0. Null = no bias.
struct distance_bias {
    const float* by_distance = nullptr;
    std::ptrdiff_t zero = 0;
};

struct attention_tiling {
    std::size_t block_q = 256;
    std::size_t block_k = 256;
    // Compute q k^T and p v from bf16-rounded operands with f32 sums — on AMX tiles where
    // amx::enabled() (what bf16 models ask for: their GEMMs already round activations to bf16;
    // relative error ~1e-3). Ignored without AMX and for <= 4 query rows (the f32 GEMV path reads
    // K and V directly). Softmax and the running sums stay f32.
    bool bf16_products = false;
    // ... and only from this many keys on: the products of short sequences are too small for the
    // tiles to pay for the bf16 copies (measured, one head set of 1 thread: 196 keys x 12 heads of
    // 64 no faster than f32; 1024 keys x 16 heads of 96 1.6x faster; docs/benchmarks.md).
    std::size_t bf16_min_keys = 512;
};

template <class Arch>
inline void scale_row(float* x, float s, std::size_t n) {
    using B = fbatch<Arch>;
    std::size_t i = 0;
    for (; i + B::size <= n; i += B::size) (B::load_unaligned(x + i) * B(s)).store_unaligned(x + i);
    for (; i < n; ++i) x[i] *= s;
}

namespace detail {
inline float* attention_scratch(std::size_t n) {
    thread_local scratch_buffer buffer;
    return buffer.get(n);
}

// bf16 copies of K (tk, dh) and of V transposed (dh, tk rounded up to even), per thread.
inline bf16* attention_bf16_scratch(std::size_t n) {
    thread_local std::vector<bf16> buffer;
    if (buffer.size() < n) buffer.resize(n);
    return buffer.data();
}

inline bool attention_uses_bf16(std::size_t tq, std::size_t keys, const attention_tiling& t) {
    return t.bf16_products && tq > gemv_max_rows && keys >= t.bf16_min_keys && amx::enabled();
}
}  // namespace detail

// Floats of f32 scratch used per call (per thread): fixed by the tiles, whatever tq and tk.
inline std::size_t attention_scratch_floats(std::size_t dh, const attention_tiling& t = {}) {
    return t.block_q * t.block_k + t.block_q * dh + 2 * t.block_q;
}

// All scratch bytes of one call with tk keys (per thread), for memory budgets: the tiles, plus
// the bf16 copies of K and V (O(tk), never O(tk^2)) when bf16 products are on.
inline std::size_t attention_scratch_bytes(std::size_t dh, std::size_t tk, const attention_tiling& t = {}) {
    const std::size_t copies = t.bf16_products && tk >= t.bf16_min_keys ? (tk * dh + dh * (tk + 1) / 2 * 2) * sizeof(bf16) : 0;
    return attention_scratch_floats(dh, t) * sizeof(float) + copies;
}

template <class Arch = default_arch>
void attention(std::size_t tq, std::size_t tk, std::size_t dh, const float* q, std::size_t ldq,
               const float* k, std::size_t ldk, const float* v, std::size_t ldv, float* out,
               std::size_t ldo, float scale, const attention_mask& mask = {},
               const distance_bias& bias = {}, const attention_tiling& tiling = {}) {
    using B = fbatch<Arch>;
    constexpr float ninf = -std::numeric_limits<float>::infinity();
    if (tq == 0) return;
    if (dh == 0 || tiling.block_q == 0 || tiling.block_k == 0)
        throw value_error(core::describe("bad attention arguments", "attention", "dh, block_q, block_k > 0",
                                         "dh=" + std::to_string(dh)));
    if (!(scale > 0.f) || !std::isfinite(scale))
        throw value_error(core::describe("attention scale", "attention", "a positive finite value", scale));
    const std::size_t bq_max = std::min(tiling.block_q, tq), bk_max = std::min(tiling.block_k, std::max<std::size_t>(tk, 1));
    float* scratch = detail::attention_scratch(bq_max * bk_max + bq_max * dh + 2 * bq_max);
    float* s = scratch;                   // (bq, bk) scores, then probabilities
    float* o = s + bq_max * bk_max;       // (bq, dh) unnormalised output
    float* row_max = o + bq_max * dh;     // (bq)
    float* row_sum = row_max + bq_max;    // (bq)
    const std::size_t key_end = std::min(tk, mask.key_len);
    // bf16 operands: K as (tk, dh) rows, V transposed to (dh, tk) so both products read an (n, k)
    // matrix — the layout the AMX packer transposes in registers.
    const bool use_bf16 = detail::attention_uses_bf16(tq, key_end, tiling);
    const std::size_t ldvt = (key_end + 1) / 2 * 2;
    bf16* kb = nullptr;
    bf16* vt = nullptr;
    if (use_bf16) {
        kb = detail::attention_bf16_scratch(key_end * dh + dh * ldvt);
        vt = kb + key_end * dh;
        for (std::size_t j = 0; j < key_end; ++j) convert<Arch>(k + j * ldk, kb + j * dh, dh);
        for (std::size_t j = 0; j < key_end; ++j) {
            const float* vr = v + j * ldv;
            for (std::size_t d = 0; d < dh; ++d) vt[d * ldvt + j] = to_bf16(vr[d]);
        }
        if (ldvt > key_end)
            for (std::size_t d = 0; d < dh; ++d) vt[d * ldvt + key_end] = bf16{};
    }

    for (std::size_t q0 = 0; q0 < tq; q0 += bq_max) {
        const std::size_t bq = std::min(bq_max, tq - q0);
        std::fill(o, o + bq * dh, 0.f);
        std::fill(row_max, row_max + bq, ninf);
        std::fill(row_sum, row_sum + bq, 0.f);
        // Keys beyond the last query's causal horizon (and the prefix) are invisible to the block.
        std::size_t k_stop = key_end;
        if (mask.causal) k_stop = std::min(k_stop, std::max(mask.prefix, mask.q_offset + q0 + bq));
        for (std::size_t k0 = 0; k0 < k_stop; k0 += bk_max) {
            const std::size_t bk = std::min(bk_max, k_stop - k0);
            // s = scale * q_blk k_blk^T                                     (bq, bk)
            if (use_bf16)
                gemm<Arch>(bq, q + q0 * ldq, ldq, weight_nk(kb + k0 * dh, bk, dh), s, bk, epilogue<>{nullptr, scale, false});
            else
                gemm<Arch>(bq, q + q0 * ldq, ldq, weight_nk(k + k0 * ldk, bk, dh, ldk), s, bk,
                           epilogue<>{nullptr, scale, false});
            for (std::size_t i = 0; i < bq; ++i) {
                float* sr = s + i * bk;
                const std::size_t qi = q0 + i;
                if (bias.by_distance) {
                    const std::ptrdiff_t base = bias.zero + static_cast<std::ptrdiff_t>(k0) -
                                                static_cast<std::ptrdiff_t>(mask.q_offset + qi);
                    for (std::size_t j = 0; j < bk; ++j) sr[j] += bias.by_distance[base + static_cast<std::ptrdiff_t>(j)];
                }
                if (mask.causal)
                    for (std::size_t j = 0; j < bk; ++j)
                        if (!mask.visible(qi, k0 + j)) sr[j] = ninf;
                // Online softmax: rescale what was accumulated when the running max grows.
                // (Vector max: a scalar std::max chain is latency-bound, ~4 cycles per score.)
                B vmax_blk(ninf);
                std::size_t jm = 0;
                for (; jm + B::size <= bk; jm += B::size) vmax_blk = xsimd::max(vmax_blk, B::load_unaligned(sr + jm));
                float m_blk = hmax<Arch>(vmax_blk);
                for (; jm < bk; ++jm) m_blk = std::max(m_blk, sr[jm]);
                const float m_new = std::max(row_max[i], m_blk);
                if (m_new == ninf) {  // nothing visible yet in this row
                    std::fill(sr, sr + bk, 0.f);
                    continue;
                }
                const float corr = std::exp(row_max[i] - m_new);  // 0 on the first visible block
                row_max[i] = m_new;
                const B vm(m_new);
                B vsum(0.f);
                std::size_t j = 0;
                for (; j + B::size <= bk; j += B::size) {
                    const B e = xsimd::exp(B::load_unaligned(sr + j) - vm);
                    e.store_unaligned(sr + j);
                    vsum += e;
                }
                float sum = hsum<Arch>(vsum);
                for (; j < bk; ++j) sum += (sr[j] = std::exp(sr[j] - m_new));
                row_sum[i] = row_sum[i] * corr + sum;
                if (corr != 1.f) scale_row<Arch>(o + i * dh, corr, dh);
            }
            // o += p v_blk                                                  (bq, dh)
            if (use_bf16)
                gemm<Arch>(bq, s, bk, weight_nk(vt + k0, dh, bk, ldvt), o, dh, epilogue<>{nullptr, 1.f, true});
            else
                gemm<Arch>(bq, s, bk, weight_kn(v + k0 * ldv, dh, bk, ldv), o, dh, epilogue<>{nullptr, 1.f, true});
        }
        for (std::size_t i = 0; i < bq; ++i) {
            float* dst = out + (q0 + i) * ldo;
            if (row_sum[i] > 0.f) {
                const float inv = 1.f / row_sum[i];
                for (std::size_t d = 0; d < dh; ++d) dst[d] = o[i * dh + d] * inv;
            } else {
                std::fill(dst, dst + dh, 0.f);  // a query that sees no key attends to nothing
            }
        }
    }
}

}  // namespace pali3::kernels
