// Scaled dot-product attention for one head, tiled with an online softmax: memory is
// O(block_q x block_k + block_q x head_dim) whatever the sequence lengths (5776 image tokens at
// 1064 px never materialise a 5776 x 5776 score matrix). Masks (padding, causal, prefix-LM, any
// 0/1 pattern of kept keys) and an additive bias indexed by relative distance (T5) are applied
// per tile; key blocks beyond the padding or the causal horizon are skipped.
//
//   out (tq, dh) = softmax(scale * q k^T + bias + mask) v
// q (tq, dh), k and v (tk, dh), each with its own row stride (heads interleaved in a row).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <optional>
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
    // Any pattern of hidden keys (HF's 0/1 attention_mask): key j is hidden when keep[j] == 0.
    // Null: every key below key_len is kept. Holds at least min(tk, key_len) entries.
    const std::uint8_t* keep = nullptr;

    bool visible(std::size_t qi, std::size_t kj) const {
        if (kj >= key_len) return false;
        if (keep && !keep[kj]) return false;
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
    // Compute q k^T and p v from bf16-rounded operands with f32 sums (AMX tiles or AVX512-BF16),
    // where an engine is enabled (what bf16 models ask for: their GEMMs already round activations to bf16;
    // relative error ~1e-3 per product, ~1e-5 NMSE on the output). Ignored without an engine, for <= 4
    // query rows (the f32 GEMV path reads K and V directly) and when block_k is not a multiple of
    // 32 (the tile width). K and V are packed into the tile layout once per call, each query
    // block once; softmax and the running sums stay f32.
    bool bf16_products = false;
    // ... and only from this many keys on (measured, 12 heads of 64, 1 thread: 1.0x at 8 keys,
    // 1.2x at 16, 1.7–1.9x from 64 to 262, 2.4x at 1024; docs/benchmarks.md).
    std::size_t bf16_min_keys = 16;
    // The engine of those products on this call (none: f32 products); unset: the process's choice.
    std::optional<bf16_products::backend> bf16_engine{};
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

inline bf16_products::backend attention_engine(const attention_tiling& t) {
    const auto engine = t.bf16_engine.value_or(bf16_products::backend_in_use());
    if (engine != bf16_products::backend::none) bf16_products::require(engine, "attention");
    return engine;
}

inline bool attention_uses_bf16(std::size_t tq, std::size_t keys, const attention_tiling& t) {
    return t.bf16_products && tq > gemv_max_rows && keys >= t.bf16_min_keys && t.block_k % 32 == 0 &&
           attention_engine(t) != bf16_products::backend::none;
}

// The bf16 tile operands of one call with bf16 products (elements of 2 bytes), per thread: K and
// V packed once for all query blocks (O(tk)), one query block and one probability block.
struct attention_bf16_layout {
    std::size_t dh_pad, keys_pad, bq_pad, bk_pad;
    std::size_t k_packed, v_packed, q_block, p_block;

    attention_bf16_layout(std::size_t dh, std::size_t tq, std::size_t tk, const attention_tiling& t)
        : dh_pad((dh + 31) / 32 * 32),
          keys_pad((tk + 31) / 32 * 32),
          bq_pad((std::min(t.block_q, tq) + 31) / 32 * 32),
          bk_pad((std::min(t.block_k, std::max<std::size_t>(tk, 1)) + 31) / 32 * 32),
          k_packed((tk + 15) / 16 * 16 * dh_pad),
          v_packed((dh + 15) / 16 * 16 * keys_pad),
          q_block(bq_pad * dh_pad),
          p_block(bq_pad * bk_pad) {}
    std::size_t elements() const { return k_packed + v_packed + q_block + p_block; }
};

inline std::uint16_t* attention_bf16_scratch(std::size_t n) {
    thread_local std::vector<std::uint16_t> buffer;
    if (buffer.size() < n) buffer.resize(n);
    return buffer.data();
}
}  // namespace detail

// Floats of f32 scratch used per call (per thread): fixed by the tiles, whatever tq and tk.
inline std::size_t attention_scratch_floats(std::size_t dh, const attention_tiling& t = {}) {
    return t.block_q * t.block_k + t.block_q * dh + 2 * t.block_q;
}

// All scratch bytes of one call with tk keys (per thread, at most block_q queries), for memory
// budgets: the tiles, plus the bf16 tile operands (O(tk), never O(tk^2)) when bf16 products are on.
inline std::size_t attention_scratch_bytes(std::size_t dh, std::size_t tk, const attention_tiling& t = {}) {
    std::size_t bytes = attention_scratch_floats(dh, t) * sizeof(float);
    if (t.bf16_products && tk >= t.bf16_min_keys && t.block_k % 32 == 0)
        bytes += detail::attention_bf16_layout(dh, t.block_q, tk, t).elements() * sizeof(std::uint16_t);
    return bytes;
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
    // bf16 operands (bf16_products.hpp engines): K and V packed once per call into the tile layout, each query
    // block once, each probability block once; products summed in f32 in the tiles.
    const bool use_bf16 = detail::attention_uses_bf16(tq, key_end, tiling);
#if PALI3_HAVE_AMX_CODE
    std::uint16_t *kp = nullptr, *vp = nullptr, *qp = nullptr, *pp = nullptr;
    const detail::attention_bf16_layout lay(dh, tq, key_end, tiling);
    if (use_bf16) {
        kp = detail::attention_bf16_scratch(lay.elements());
        vp = kp + lay.k_packed;
        qp = vp + lay.v_packed;
        pp = qp + lay.q_block;
        bf16_products::detail::pack_nk_f32(k, ldk, key_end, dh, lay.dh_pad, kp);
        bf16_products::detail::pack_kn_f32(v, ldv, key_end, dh, lay.keys_pad, vp);
    }
    // The tile state (AMX) configured for this call and left as we found it on every exit.
    const bf16_products::backend engine = use_bf16 ? detail::attention_engine(tiling) : bf16_products::backend::none;
    const bf16_products::detail::engine_scope scope(engine);
#else
    (void)use_bf16;
#endif

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
#if PALI3_HAVE_AMX_CODE
            if (use_bf16) {
                if (k0 == 0) bf16_products::detail::pack_a(q + q0 * ldq, ldq, bq, dh, lay.dh_pad, qp);
                bf16_products::detail::tile_product<false>(engine, qp, bq, lay.dh_pad, kp + k0 * lay.dh_pad, lay.dh_pad * 16, bk, s, bk,
                                                 scale);
            } else
#endif
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
                if (mask.causal) {
                    for (std::size_t j = 0; j < bk; ++j)
                        if (!mask.visible(qi, k0 + j)) sr[j] = ninf;
                } else if (mask.keep) {  // a select per score (vectorised), not visible()'s branches
                    const std::uint8_t* kept = mask.keep + k0;
                    for (std::size_t j = 0; j < bk; ++j) sr[j] = kept[j] ? sr[j] : ninf;
                }
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
#if PALI3_HAVE_AMX_CODE
            if (use_bf16) {
                const std::size_t bk_pad = (bk + 31) / 32 * 32;  // zero columns meet zero (or next-block) V rows
                bf16_products::detail::pack_a(s, bk, bq, bk, bk_pad, pp);
                bf16_products::detail::tile_product<true>(engine, pp, bq, bk_pad, vp + k0 * 16, lay.keys_pad * 16, dh, o, dh, 1.f);
            } else
#endif
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
