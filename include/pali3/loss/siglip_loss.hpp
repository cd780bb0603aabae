// The SigLIP sigmoid loss (Zhai et al. 2023, arXiv 2303.15343), forward and gradients.
//   u_i = img_i / (|img_i| + eps),  v_j = txt_j / (|txt_j| + eps),  t = exp(log_t)
//   logit_ij = t <u_i, v_j> + b,     loss = -(1/n) sum_ij log sigmoid(s_ij logit_ij)
// with s_ij = +1 on the diagonal (the n positive pairs) and -1 elsewhere.
//   dL/dlogit_ij = (sigmoid(logit_ij) - [i = j]) / n;  dL/db = sum;  dL/dlog_t = sum g_ij (logit_ij - b)
//   dL/du = t G v,  dL/dv = t G^T u, then through the normalisation to the raw embeddings.
// The similarity matrix is processed in block x block tiles (SigLIP §3.3's chunking on one
// process): memory O(block^2 + n d) whatever n is; block = n is the direct computation.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <string>
#include <vector>

#include "pali3/core/error.hpp"
#include "pali3/kernels/gemm.hpp"

namespace pali3::loss {

struct siglip_result {
    double loss = 0;
    double d_log_t = 0;
    double d_bias = 0;
};

// Optional outputs (n, d) each; null ones are skipped.
struct siglip_grads {
    float* d_img = nullptr;       // w.r.t. the raw image embeddings
    float* d_txt = nullptr;       // w.r.t. the raw text embeddings
    float* d_img_unit = nullptr;  // w.r.t. the normalised image embeddings u
    float* d_txt_unit = nullptr;  // w.r.t. the normalised text embeddings v
};

// log sigmoid(x) without overflow: -(max(-x, 0) + log1p(exp(-|x|))).
inline double log_sigmoid(double x) { return -(std::max(-x, 0.0) + std::log1p(std::exp(-std::abs(x)))); }

namespace detail {

// Normalises the rows of x (n, d) into out; r gets the norms.
inline void normalise_rows(const float* x, std::size_t n, std::size_t d, float eps, float* out, float* r) {
    for (std::size_t i = 0; i < n; ++i) {
        double s = 0;
        for (std::size_t k = 0; k < d; ++k) s += double(x[i * d + k]) * x[i * d + k];
        r[i] = static_cast<float>(std::sqrt(s));
        const double inv = 1.0 / (std::sqrt(s) + eps);
        for (std::size_t k = 0; k < d; ++k) out[i * d + k] = static_cast<float>(x[i * d + k] * inv);
    }
}

// Through u = x / (r + eps):  dx = du / (r + eps) - x (x . du) / (r (r + eps)^2).
inline void through_norm(const float* x, const float* r, const float* dunit, std::size_t n, std::size_t d, float eps, float* dx) {
    for (std::size_t i = 0; i < n; ++i) {
        const double ri = r[i], re = ri + eps;
        double dot = 0;
        for (std::size_t k = 0; k < d; ++k) dot += double(x[i * d + k]) * dunit[i * d + k];
        const double c = ri > 0 ? dot / (ri * re * re) : 0.0;
        for (std::size_t k = 0; k < d; ++k) dx[i * d + k] = static_cast<float>(dunit[i * d + k] / re - x[i * d + k] * c);
    }
}

// Adds the terms of all pairs (i < ni, j < nj) of logit_ij = t <u_i, v_j> + b, in block x block
// tiles: loss, dL/db and dL/dlog_t into `res`, and (when non-null) t G v into du, t G^T u into dv.
// Positive pairs are those with j == i + diag; `diag < 0` means none (a block of another rank).
template <core::executor E>
void add_pairs(const float* u, std::size_t ni, const float* v, std::size_t nj, std::size_t d, double t, float bias, long diag,
               double inv_n, std::size_t block, siglip_result& res, float* du, float* dv, E& exec) {
    const std::size_t bs = std::max<std::size_t>(1, std::min(block ? block : std::max(ni, nj), std::max(ni, nj)));
    std::vector<float> tile(bs * bs), tile_t(bs * bs);  // logits, then dL/dlogit; and its transpose
    for (std::size_t i0 = 0; i0 < ni; i0 += bs) {
        const std::size_t bi = std::min(bs, ni - i0);
        for (std::size_t j0 = 0; j0 < nj; j0 += bs) {
            const std::size_t bj = std::min(bs, nj - j0);
            // tile = t u_blk v_blk^T                                        (bi, bj)
            kernels::gemm(bi, u + i0 * d, d, kernels::weight_nk(v + j0 * d, bj, d), tile.data(), bj,
                          kernels::epilogue<>{nullptr, static_cast<float>(t), false}, exec);
            for (std::size_t i = 0; i < bi; ++i)
                for (std::size_t j = 0; j < bj; ++j) {
                    const double logit = double(tile[i * bj + j]) + bias;
                    const bool positive = diag >= 0 && j0 + j == i0 + i + static_cast<std::size_t>(diag);
                    res.loss -= log_sigmoid(positive ? logit : -logit) * inv_n;
                    const double g = (1.0 / (1.0 + std::exp(-logit)) - (positive ? 1.0 : 0.0)) * inv_n;
                    res.d_bias += g;
                    res.d_log_t += g * (logit - bias);  // = g t <u, v>
                    tile[i * bj + j] = static_cast<float>(g);
                    tile_t[j * bi + i] = static_cast<float>(g);
                }
            // du_blk += t G v_blk ; dv_blk += t G^T u_blk                  (bi, d), (bj, d)
            if (du)
                kernels::gemm(bi, tile.data(), bj, kernels::weight_kn(v + j0 * d, d, bj), du + i0 * d, d,
                              kernels::epilogue<>{nullptr, static_cast<float>(t), true}, exec);
            if (dv)
                kernels::gemm(bj, tile_t.data(), bi, kernels::weight_kn(u + i0 * d, d, bi), dv + j0 * d, d,
                              kernels::epilogue<>{nullptr, static_cast<float>(t), true}, exec);
        }
    }
}

inline void check_inputs(std::size_t n, std::size_t d, float log_t, float bias, const char* where) {
    if (n == 0 || d == 0)
        throw shape_error(core::describe("empty SigLIP batch", where, "n > 0 and d > 0", std::to_string(n) + " x " + std::to_string(d)));
    if (!std::isfinite(log_t) || !std::isfinite(bias))
        throw value_error(core::describe("SigLIP temperature or bias", where, "finite values",
                                         std::to_string(log_t) + ", " + std::to_string(bias)));
}

}  // namespace detail

template <core::executor E = core::sequential>
siglip_result siglip_loss(const float* img, const float* txt, std::size_t n, std::size_t d, float log_t, float bias,
                          const siglip_grads& grads = {}, std::size_t block = 0, float eps = 1e-8f, E&& exec = E{}) {
    detail::check_inputs(n, d, log_t, bias, "siglip_loss");
    const double t = std::exp(static_cast<double>(log_t));
    const bool want_grads = grads.d_img || grads.d_txt || grads.d_img_unit || grads.d_txt_unit;
    std::vector<float> u(n * d), v(n * d), ru(n), rv(n);  // normalised embeddings and their norms
    detail::normalise_rows(img, n, d, eps, u.data(), ru.data());
    detail::normalise_rows(txt, n, d, eps, v.data(), rv.data());
    std::vector<float> du(want_grads ? n * d : 0, 0.f), dv(want_grads ? n * d : 0, 0.f);
    siglip_result res;
    detail::add_pairs(u.data(), n, v.data(), n, d, t, bias, 0, 1.0 / static_cast<double>(n), block, res,
                      want_grads ? du.data() : nullptr, want_grads ? dv.data() : nullptr, exec);
    if (!want_grads) return res;
    if (grads.d_img_unit) std::copy(du.begin(), du.end(), grads.d_img_unit);
    if (grads.d_txt_unit) std::copy(dv.begin(), dv.end(), grads.d_txt_unit);
    if (grads.d_img) detail::through_norm(img, ru.data(), du.data(), n, d, eps, grads.d_img);
    if (grads.d_txt) detail::through_norm(txt, rv.data(), dv.data(), n, d, eps, grads.d_txt);
    return res;
}

}  // namespace pali3::loss
