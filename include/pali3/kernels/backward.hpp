// Kernels of the backward pass: the transposed products of a linear layer's gradients, bias
// and activation gradients, the norms' backward, one attention head's backward (tiled, memory
// bounded like the forward), and the token cross-entropy with its gradient. Every product runs
// on the forward GEMM (kernels/gemm.hpp): a gradient is a GEMM with the other layout of W, or
// with one operand transposed into a scratch panel first.
//
//   y = x W^T + b:  dx = dy W          (W read in the other layout: no copy)
//                   dW += dy^T x       (one GEMM whose packer reads dy^T from dy's rows)
//                   db += colsum(dy)
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <vector>

#include "pali3/kernels/attention.hpp"
#include "pali3/kernels/gemm.hpp"

namespace pali3::kernels {

namespace detail {
inline std::vector<float>& backward_scratch(int which) {
    thread_local std::vector<float> buffers[4];
    return buffers[which];
}
inline float* backward_buffer(int which, std::size_t n) {
    auto& b = backward_scratch(which);
    if (b.size() < n) b.resize(n);
    return b.data();
}
}  // namespace detail

// dst (cols, rows) = src (rows, cols)^T; rows of src are lds apart, of dst ldd apart.
inline void transpose(const float* src, std::size_t lds, std::size_t rows, std::size_t cols, float* dst,
                      std::size_t ldd) noexcept {
    constexpr std::size_t tile = 16;
    for (std::size_t i0 = 0; i0 < rows; i0 += tile)
        for (std::size_t j0 = 0; j0 < cols; j0 += tile) {
            const std::size_t i1 = std::min(rows, i0 + tile), j1 = std::min(cols, j0 + tile);
            for (std::size_t i = i0; i < i1; ++i)
                for (std::size_t j = j0; j < j1; ++j) dst[j * ldd + i] = src[i * lds + j];
        }
}

// dW (n, k) += dY^T . X: dY (m, n) rows lddy apart, X (m, k) rows ldx apart, dW rows lddw apart.
// The weight gradient of y = x W^T, W stored (n, k) (for W stored (k, n) pass the transposed
// roles: weight_grad(m, x, ldx, k, dy, lddy, n, dW)).
template <core::executor E = core::sequential>
void weight_grad(std::size_t m, const float* dy, std::size_t lddy, std::size_t n, const float* x, std::size_t ldx,
                 std::size_t k, float* dw, std::size_t lddw, E&& exec = E{}) {
    if (m == 0) return;
    epilogue<> ep{nullptr, 1.f, true};
    if (n > gemv_max_rows) {  // dY^T packed from dY's rows as the GEMM goes: no transpose pass
        gemm_transposed_a(n, dy, lddy, weight_kn(x, k, m, ldx), dw, lddw, ep, exec);
        return;
    }
    float* dyt = detail::backward_buffer(0, n * m);  // (n, m), for the GEMV path
    transpose(dy, lddy, m, n, dyt, m);
    gemm(n, dyt, m, weight_kn(x, k, m, ldx), dw, lddw, ep, exec);
}

// dX (m, k) [+]= dY (m, n) . W: the input gradient of y = x W^T for W (logical (n, k), either layout).
template <weight_storage T, core::executor E = core::sequential>
void input_grad(std::size_t m, const float* dy, std::size_t lddy, const weight_ref<T>& w, float* dx, std::size_t lddx,
                bool accumulate, E&& exec = E{}) {
    if (m == 0) return;
    // W^T as a weight of logical shape (k, n): the same memory read in the other layout.
    const weight_ref<T> wt = w.layout == weight_layout::nk ? weight_kn(w.data, w.k, w.n, w.ld)
                                                           : weight_nk(w.data, w.k, w.n, w.ld);
    epilogue<> ep{nullptr, 1.f, accumulate};
    gemm(m, dy, lddy, wt, dx, lddx, ep, exec);
}

// db[j] += sum_i dy[i, j].
inline void bias_grad(std::size_t m, std::size_t n, const float* dy, std::size_t lddy, float* db) noexcept {
    for (std::size_t i = 0; i < m; ++i) {
        const float* row = dy + i * lddy;
        for (std::size_t j = 0; j < n; ++j) db[j] += row[j];
    }
}

// dpre[i] = dh[i] * Act'(pre[i]); dpre may alias dh.
template <differentiable_activation Act, class Arch = default_arch>
void activation_backward(const float* pre, const float* dh, float* dpre, std::size_t n) noexcept {
    using B = fbatch<Arch>;
    std::size_t i = 0;
    for (; i + B::size <= n; i += B::size)
        (B::load_unaligned(dh + i) * Act::template derivative<Arch>(B::load_unaligned(pre + i))).store_unaligned(dpre + i);
    for (; i < n; ++i) dpre[i] = dh[i] * Act::derivative(pre[i]);
}

// h = Act(g) * u:  dg = dh * u * Act'(g),  du = dh * Act(g). dg may alias g, du may alias u.
template <differentiable_activation Act, class Arch = default_arch>
void gated_activation_backward(const float* g, const float* u, const float* dh, float* dg, float* du,
                               std::size_t n) noexcept {
    using B = fbatch<Arch>;
    std::size_t i = 0;
    for (; i + B::size <= n; i += B::size) {
        const B vg = B::load_unaligned(g + i), vu = B::load_unaligned(u + i), vd = B::load_unaligned(dh + i);
        const B a = Act::template apply<Arch>(vg), da = Act::template derivative<Arch>(vg);
        (vd * vu * da).store_unaligned(dg + i);
        (vd * a).store_unaligned(du + i);
    }
    for (; i < n; ++i) {
        const float vg = g[i], vu = u[i], vd = dh[i];
        dg[i] = vd * vu * Act::derivative(vg);
        du[i] = vd * Act::apply(vg);
    }
}

// LayerNorm backward for y = (x - mean) rstd gamma + beta, rows of `width`:
//   dx [+]= rstd (a - mean(a) - xhat mean(a xhat)),  a = dy gamma;  dgamma += dy xhat;  dbeta += dy.
// dgamma / dbeta may be null (frozen). Statistics are recomputed from x (cheap, O(width)).
template <weight_storage T>
void layer_norm_backward(const float* x, std::size_t ldx, const float* dy, std::size_t lddy, float* dx, std::size_t lddx,
                         std::size_t rows, std::size_t width, const T* gamma, float eps, float* dgamma, float* dbeta,
                         bool accumulate) {
    std::vector<float> xhat(width), a(width);
    const double inv_w = 1.0 / static_cast<double>(width);
    for (std::size_t r = 0; r < rows; ++r) {
        const float* xr = x + r * ldx;
        const float* dyr = dy + r * lddy;
        double mean = 0, var = 0;
        for (std::size_t i = 0; i < width; ++i) mean += xr[i];
        mean *= inv_w;
        for (std::size_t i = 0; i < width; ++i) var += (xr[i] - mean) * (xr[i] - mean);
        var *= inv_w;
        const float rstd = static_cast<float>(1.0 / std::sqrt(var + eps));
        double sa = 0, sax = 0;
        for (std::size_t i = 0; i < width; ++i) {
            xhat[i] = static_cast<float>((xr[i] - mean) * rstd);
            a[i] = dyr[i] * to_float(gamma[i]);
            sa += a[i];
            sax += static_cast<double>(a[i]) * xhat[i];
        }
        const float ma = static_cast<float>(sa * inv_w), max = static_cast<float>(sax * inv_w);
        float* dxr = dx + r * lddx;
        for (std::size_t i = 0; i < width; ++i) {
            const float g = rstd * (a[i] - ma - xhat[i] * max);
            dxr[i] = accumulate ? dxr[i] + g : g;
        }
        if (dgamma)
            for (std::size_t i = 0; i < width; ++i) dgamma[i] += dyr[i] * xhat[i];
        if (dbeta)
            for (std::size_t i = 0; i < width; ++i) dbeta[i] += dyr[i];
    }
}

// RMSNorm backward for y = x r w, r = (mean(x^2) + eps)^-1/2:
//   dx [+]= r (a - x r^2 mean(a x)),  a = dy w;  dw += dy x r.
template <weight_storage T>
void rms_norm_backward(const float* x, std::size_t ldx, const float* dy, std::size_t lddy, float* dx, std::size_t lddx,
                       std::size_t rows, std::size_t width, const T* w, float eps, float* dw, bool accumulate) {
    const double inv_w = 1.0 / static_cast<double>(width);
    for (std::size_t r = 0; r < rows; ++r) {
        const float* xr = x + r * ldx;
        const float* dyr = dy + r * lddy;
        double ms = 0, sax = 0;
        for (std::size_t i = 0; i < width; ++i) {
            ms += static_cast<double>(xr[i]) * xr[i];
            sax += static_cast<double>(dyr[i]) * to_float(w[i]) * xr[i];
        }
        ms *= inv_w;
        const double rr = 1.0 / std::sqrt(ms + eps);
        const float rs = static_cast<float>(rr), c = static_cast<float>(rr * rr * rr * sax * inv_w);
        float* dxr = dx + r * lddx;
        for (std::size_t i = 0; i < width; ++i) {
            const float g = rs * dyr[i] * to_float(w[i]) - xr[i] * c;
            dxr[i] = accumulate ? dxr[i] + g : g;
        }
        if (dw)
            for (std::size_t i = 0; i < width; ++i) dw[i] += dyr[i] * xr[i] * rs;
    }
}

namespace detail {
// The largest of x[0..n) and `init` (vector max: a scalar chain is latency-bound).
template <class Arch = default_arch>
float row_max(const float* x, std::size_t n, float init) noexcept {
    using B = fbatch<Arch>;
    B vm(init);
    std::size_t j = 0;
    for (; j + B::size <= n; j += B::size) vm = xsimd::max(vm, B::load_unaligned(x + j));
    float m = hmax<Arch>(vm);
    for (; j < n; ++j) m = std::max(m, x[j]);
    return m;
}
// Sum of exp(x[j] - shift) over j < n (exp(-inf) = 0), vectorised as the forward's softmax.
template <class Arch = default_arch>
float sum_exp_shifted(const float* x, std::size_t n, float shift) noexcept {
    using B = fbatch<Arch>;
    const B vs(shift);
    B acc(0.f);
    std::size_t j = 0;
    for (; j + B::size <= n; j += B::size) acc += xsimd::exp(B::load_unaligned(x + j) - vs);
    float s = hsum<Arch>(acc);
    for (; j < n; ++j) s += std::exp(x[j] - shift);
    return s;
}
// x[j] <- exp(x[j] - shift) for j < n.
template <class Arch = default_arch>
void exp_shifted(float* x, std::size_t n, float shift) noexcept {
    using B = fbatch<Arch>;
    const B vs(shift);
    std::size_t j = 0;
    for (; j + B::size <= n; j += B::size) xsimd::exp(B::load_unaligned(x + j) - vs).store_unaligned(x + j);
    for (; j < n; ++j) x[j] = std::exp(x[j] - shift);
}
}  // namespace detail

// One head's attention backward, for out = softmax(scale q k^T + bias + mask) v (the forward of
// kernels/attention.hpp; o is that forward's output). Given d_out, accumulates
//   dq += scale dS k,  dk += scale dS^T q,  dv += P^T d_out,  d_bias[d] += sum of dS over distance d,
// with P recomputed tile by tile from q and k (two passes over the keys of a query block: the
// row log-sum-exp, then the gradients; one pass when the keys fit in one tile), and
// dS = P (d_out v^T - rowsum(d_out o)). Memory is O(block_q x block_k), like the forward.
// dq, dk, dv are accumulated into (zero them first); d_bias (may be null) is indexed like
// bias.by_distance.
struct attention_grads {
    float* dq = nullptr;
    std::size_t lddq = 0;
    float* dk = nullptr;
    std::size_t lddk = 0;
    float* dv = nullptr;
    std::size_t lddv = 0;
    float* d_bias = nullptr;  // by distance, same zero as the forward's bias
};

inline void attention_backward(std::size_t tq, std::size_t tk, std::size_t dh, const float* q, std::size_t ldq,
                               const float* k, std::size_t ldk, const float* v, std::size_t ldv, const float* o,
                               std::size_t ldo, const float* d_out, std::size_t lddo, float scale,
                               const attention_mask& mask, const distance_bias& bias, const attention_grads& g,
                               std::size_t block_q = 128, std::size_t block_k = 256) {
    if (tq == 0 || tk == 0) return;
    const std::size_t bq_max = std::min(block_q, tq), bk_max = std::min(block_k, tk);
    const bool one_tile = tk <= block_k;
    float* s = detail::backward_buffer(1, bq_max * (one_tile ? tk : bk_max));  // scores, then P, then dS
    float* dp = detail::backward_buffer(2, bq_max * bk_max);                     // d_out v^T
    float* t = detail::backward_buffer(3, bq_max * bk_max);                      // a transposed tile
    std::vector<float> lse(bq_max), dsum(bq_max);
    constexpr float neg_inf = -std::numeric_limits<float>::infinity();
    epilogue<> plain{}, acc{nullptr, 1.f, true}, acc_scaled{nullptr, scale, true};

    auto scores = [&](std::size_t i0, std::size_t bq, std::size_t j0, std::size_t bk, float* out) {
        epilogue<> ep{nullptr, scale, false};
        gemm(bq, q + i0 * ldq, ldq, weight_nk(k + j0 * ldk, bk, dh, ldk), out, bk, ep);
        for (std::size_t i = 0; i < bq; ++i)
            for (std::size_t j = 0; j < bk; ++j) {
                float& x = out[i * bk + j];
                if (!mask.visible(i0 + i, j0 + j)) {
                    x = neg_inf;
                    continue;
                }
                if (bias.by_distance) {
                    const std::ptrdiff_t d = static_cast<std::ptrdiff_t>(j0 + j) -
                                             static_cast<std::ptrdiff_t>(mask.q_offset + i0 + i);
                    x += bias.by_distance[d + bias.zero];
                }
            }
    };

    for (std::size_t i0 = 0; i0 < tq; i0 += block_q) {
        const std::size_t bq = std::min(block_q, tq - i0);
        // Pass 1: the row log-sum-exp over every key.
        std::vector<float> m(bq, neg_inf), l(bq, 0.f);
        for (std::size_t j0 = 0; j0 < tk; j0 += block_k) {
            const std::size_t bk = std::min(block_k, tk - j0);
            scores(i0, bq, j0, bk, s);
            for (std::size_t i = 0; i < bq; ++i) {
                const float* row = s + i * bk;
                const float mx = detail::row_max(row, bk, m[i]);
                if (mx == neg_inf) continue;
                l[i] = (m[i] == neg_inf ? 0.f : l[i] * std::exp(m[i] - mx)) + detail::sum_exp_shifted(row, bk, mx);
                m[i] = mx;
            }
        }
        for (std::size_t i = 0; i < bq; ++i) {
            lse[i] = m[i] == neg_inf ? neg_inf : m[i] + std::log(l[i]);
            double d = 0;
            for (std::size_t c = 0; c < dh; ++c)
                d += static_cast<double>(d_out[(i0 + i) * lddo + c]) * o[(i0 + i) * ldo + c];
            dsum[i] = static_cast<float>(d);
        }
        // Pass 2: P, then the gradients of this query block against every key block.
        for (std::size_t j0 = 0; j0 < tk; j0 += block_k) {
            const std::size_t bk = std::min(block_k, tk - j0);
            if (!one_tile) scores(i0, bq, j0, bk, s);
            for (std::size_t i = 0; i < bq; ++i) {  // a masked score (-inf) gives exp(-inf) = 0
                if (lse[i] == neg_inf) std::fill(s + i * bk, s + (i + 1) * bk, 0.f);
                else detail::exp_shifted(s + i * bk, bk, lse[i]);
            }
            // dv[j0:] += P^T d_out
            transpose(s, bk, bq, bk, t, bq);
            gemm(bk, t, bq, weight_kn(d_out + i0 * lddo, dh, bq, lddo), g.dv + j0 * g.lddv, g.lddv, acc);
            // dP = d_out v^T, dS = P (dP - dsum)
            gemm(bq, d_out + i0 * lddo, lddo, weight_nk(v + j0 * ldv, bk, dh, ldv), dp, bk, plain);
            for (std::size_t i = 0; i < bq; ++i)
                for (std::size_t j = 0; j < bk; ++j) s[i * bk + j] *= dp[i * bk + j] - dsum[i];
            if (g.d_bias)
                for (std::size_t i = 0; i < bq; ++i)
                    for (std::size_t j = 0; j < bk; ++j) {
                        const std::ptrdiff_t d = static_cast<std::ptrdiff_t>(j0 + j) -
                                                 static_cast<std::ptrdiff_t>(mask.q_offset + i0 + i);
                        g.d_bias[d + bias.zero] += s[i * bk + j];
                    }
            // dq += scale dS k;  dk += scale dS^T q
            gemm(bq, s, bk, weight_kn(k + j0 * ldk, dh, bk, ldk), g.dq + i0 * g.lddq, g.lddq, acc_scaled);
            transpose(s, bk, bq, bk, t, bq);
            gemm(bk, t, bq, weight_kn(q + i0 * ldq, dh, bq, ldq), g.dk + j0 * g.lddk, g.lddk, acc_scaled);
        }
    }
}

// Token cross-entropy over logits (rows, vocab), rows ld apart, with HF's conventions: a target
// of `ignore` (-100) contributes nothing; label smoothing eps mixes the one-hot target with the
// uniform distribution: loss = (1 - eps) (-log p_target) + eps mean_v(-log p_v). Writes
// d(loss_sum * grad_scale)/d(logits) into dlogits (may alias logits; ignored rows get zeros)
// and returns the summed loss and the number of counted rows.
struct cross_entropy_result {
    double loss_sum = 0;
    std::size_t count = 0;
};

inline cross_entropy_result cross_entropy(const float* logits, std::size_t ld, std::size_t rows, std::size_t vocab,
                                          const std::int32_t* targets, float* dlogits, std::size_t ldd,
                                          float grad_scale = 1.f, float smoothing = 0.f, std::int32_t ignore = -100) {
    if (!(smoothing >= 0.f && smoothing < 1.f))
        throw value_error(core::describe("label smoothing out of range", "cross_entropy", "0 <= eps < 1", smoothing));
    cross_entropy_result r;
    for (std::size_t i = 0; i < rows; ++i) {
        const float* z = logits + i * ld;
        float* dz = dlogits ? dlogits + i * ldd : nullptr;
        const std::int32_t t = targets[i];
        if (t == ignore) {
            if (dz) std::fill(dz, dz + vocab, 0.f);
            continue;
        }
        if (t < 0 || static_cast<std::size_t>(t) >= vocab)
            throw value_error(core::describe("target id out of range", "cross_entropy, row " + std::to_string(i),
                                             "0.." + std::to_string(vocab - 1) + " or " + std::to_string(ignore), t));
        float mx = z[0];
        for (std::size_t j = 1; j < vocab; ++j) mx = std::max(mx, z[j]);
        double sum = 0, mean_z = 0;
        for (std::size_t j = 0; j < vocab; ++j) {
            sum += std::exp(static_cast<double>(z[j] - mx));
            mean_z += z[j];
        }
        mean_z /= static_cast<double>(vocab);
        const double lse = mx + std::log(sum);
        r.loss_sum += (1.0 - smoothing) * (lse - z[t]) + smoothing * (lse - mean_z);
        ++r.count;
        if (dz) {
            const float inv = static_cast<float>(1.0 / sum), uniform = smoothing / static_cast<float>(vocab);
            for (std::size_t j = 0; j < vocab; ++j) dz[j] = (std::exp(z[j] - mx) * inv - uniform) * grad_scale;
            dz[t] -= (1.f - smoothing) * grad_scale;
        }
    }
    return r;
}

}  // namespace pali3::kernels
