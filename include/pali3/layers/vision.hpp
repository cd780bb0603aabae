// Vision-tower parts: patch embedding (patchify + GEMM), learned position embeddings with
// resampling to another grid, fixed sin-cos 2-D position embeddings, and the MAP head
// (attention pooling with a learned probe) of SigLIP.
#pragma once

#include <cmath>
#include <cstddef>
#include <string>
#include <vector>

#include "pali3/core/workspace.hpp"
#include "pali3/layers/attention.hpp"
#include "pali3/layers/mlp.hpp"
#include "pali3/layers/norm.hpp"

namespace pali3::layers {

enum class image_layout { nchw, nhwc };

struct patch_config {
    std::size_t channels = 3;
    std::size_t patch = 14;
    std::size_t width = 0;
};

// Conv with kernel = stride = patch, VALID padding == patchify + matmul. The weight is held as
// (width, channels, patch, patch) - the PyTorch/HF conv layout - and used as a (width, c*p*p)
// matrix; patches are flattened in (channel, row, column) order to match. Images need not be
// square, but each side must be a multiple of the patch size.
template <weight_storage Storage = float>
class patch_embedding {
public:
    explicit patch_embedding(const patch_config& c) : cfg_(c) {
        if (c.channels == 0 || c.patch == 0 || c.width == 0)
            throw config_error(core::describe("bad patch embedding config", "patch_embedding",
                                              "channels, patch, width > 0",
                                              std::to_string(c.channels) + ", " + std::to_string(c.patch) + ", " +
                                                  std::to_string(c.width)));
    }
    template <weights::weight_source S>
    patch_embedding(const patch_config& c, const weights::cursor<S>& cur) : patch_embedding(c) {
        load(*this, cur);
    }

    template <class V>
    void visit(V& v) {
        v.tensor("weight", weight_, {cfg_.width, cfg_.channels, cfg_.patch, cfg_.patch});
        v.tensor("bias", bias_, {cfg_.width});
    }

    const patch_config& config() const { return cfg_; }

    // Grid of patches for an image of h x w pixels; throws when a side is not a multiple.
    std::pair<std::size_t, std::size_t> grid(std::size_t h, std::size_t w) const {
        if (h == 0 || w == 0 || h % cfg_.patch || w % cfg_.patch)
            throw shape_error(core::describe("image size is not a multiple of the patch size", "patch_embedding",
                                             "sides divisible by " + std::to_string(cfg_.patch),
                                             std::to_string(h) + " x " + std::to_string(w)));
        return {h / cfg_.patch, w / cfg_.patch};
    }

    static std::size_t workspace_floats(const patch_config& c, std::size_t batch, std::size_t h, std::size_t w) {
        return core::workspace::padded(batch * h * w * c.channels);
    }

    // out (batch, gh*gw, width) from images (batch, C, h, w) or (batch, h, w, C).
    template <core::executor E = core::sequential>
    void forward(const float* images, std::size_t batch, std::size_t h, std::size_t w, image_layout layout,
                 float* out, core::workspace& ws, E&& exec = E{}) const {
        const auto [gh, gw] = grid(h, w);
        const std::size_t k = cfg_.channels * cfg_.patch * cfg_.patch, n = gh * gw;
        core::workspace::scope scope(ws);
        float* patches = ws.alloc(batch * n * k).data();  // (batch*n, c*p*p)
        patchify(images, batch, h, w, layout, patches);
        if (!weight_.data) throw value_error(core::describe("patch embedding used before loading", "patch_embedding", "loaded weights", "none"));
        kernels::gemm(batch * n, patches, k, kernels::weight_nk(weight_.data, cfg_.width, k), out, cfg_.width,
                      kernels::epilogue<>{bias_.data}, exec);
    }

    // Backward of forward(): the weight and bias gradients from d_out (batch, gh*gw, width).
    // Pixels are inputs, so no image gradient is formed.
    template <gradient_sink G, core::executor E = core::sequential>
    void backward(const float* images, std::size_t batch, std::size_t h, std::size_t w, image_layout layout,
                  const float* d_out, G& g, E&& exec = E{}) const {
        const auto [gh, gw] = grid(h, w);
        const std::size_t k = cfg_.channels * cfg_.patch * cfg_.patch, rows = batch * gh * gw;
        if (float* dw = g.grad(weight_)) {
            core::buffer patches(rows * k);
            patchify(images, batch, h, w, layout, patches.data());
            kernels::weight_grad(rows, d_out, cfg_.width, cfg_.width, patches.data(), k, k, dw, k, exec);
        }
        if (float* db = g.grad(bias_)) kernels::bias_grad(rows, cfg_.width, d_out, cfg_.width, db);
    }

    // patches (batch * gh*gw, c*p*p), flattened in (channel, row, column) order.
    void patchify(const float* images, std::size_t batch, std::size_t h, std::size_t w, image_layout layout,
                  float* patches) const {
        const auto [gh, gw] = grid(h, w);
        const std::size_t p = cfg_.patch, c = cfg_.channels, k = c * p * p;
        for (std::size_t b = 0; b < batch; ++b)
            for (std::size_t py = 0; py < gh; ++py)
                for (std::size_t px = 0; px < gw; ++px) {
                    float* dst = patches + ((b * gh + py) * gw + px) * k;
                    for (std::size_t ch = 0; ch < c; ++ch)
                        for (std::size_t y = 0; y < p; ++y)
                            for (std::size_t x = 0; x < p; ++x) {
                                const std::size_t iy = py * p + y, ix = px * p + x;
                                dst[(ch * p + y) * p + x] = layout == image_layout::nchw
                                                                ? images[((b * c + ch) * h + iy) * w + ix]
                                                                : images[((b * h + iy) * w + ix) * c + ch];
                            }
                }
    }

private:
    patch_config cfg_;
    param<Storage> weight_;
    param<float> bias_;
};

namespace detail {
struct grid_tap {
    std::size_t i0, i1;  // the two input positions
    double w;            // weight of i1 (1 - w on i0)
};
// Output position o of `out` reads input o * (in - 1) / (out - 1) of `in` (corners aligned).
inline grid_tap grid_taps(std::size_t o, std::size_t in, std::size_t out) {
    const double f = out == 1 ? 0.0 : static_cast<double>(o) * static_cast<double>(in - 1) / static_cast<double>(out - 1);
    const std::size_t i0 = std::min(static_cast<std::size_t>(f), in - 1);
    return {i0, std::min(i0 + 1, in - 1), f - static_cast<double>(i0)};
}
}  // namespace detail

// Resamples a (gh0 x gw0, width) grid of embeddings to (gh x gw) by separable linear
// interpolation with corners aligned - what big_vision does with scipy.ndimage.zoom(order=1):
// output index o maps to input o * (in - 1) / (out - 1).
inline std::vector<float> resample_grid(const float* src, std::size_t gh0, std::size_t gw0, std::size_t gh,
                                        std::size_t gw, std::size_t width) {
    if (gh0 == 0 || gw0 == 0 || gh == 0 || gw == 0)
        throw shape_error(core::describe("empty position grid", "resample_grid", "non-empty grids",
                                         std::to_string(gh0) + "x" + std::to_string(gw0) + " -> " +
                                             std::to_string(gh) + "x" + std::to_string(gw)));
    std::vector<float> dst(gh * gw * width);
    for (std::size_t y = 0; y < gh; ++y) {
        const auto [y0, y1, wy] = detail::grid_taps(y, gh0, gh);
        for (std::size_t x = 0; x < gw; ++x) {
            const auto [x0, x1, wx] = detail::grid_taps(x, gw0, gw);
            const float* a = src + (y0 * gw0 + x0) * width;
            const float* b = src + (y0 * gw0 + x1) * width;
            const float* c = src + (y1 * gw0 + x0) * width;
            const float* d = src + (y1 * gw0 + x1) * width;
            float* o = dst.data() + (y * gw + x) * width;
            for (std::size_t i = 0; i < width; ++i)
                o[i] = static_cast<float>((1 - wy) * ((1 - wx) * a[i] + wx * b[i]) + wy * ((1 - wx) * c[i] + wx * d[i]));
        }
    }
    return dst;
}

// The transpose of resample_grid: d_src (gh0 x gw0, width) += the gradient of d_dst (gh x gw,
// width) through the interpolation (each output spreads its gradient back to its four inputs).
inline void resample_grid_backward(const float* d_dst, std::size_t gh0, std::size_t gw0, std::size_t gh, std::size_t gw,
                                   std::size_t width, float* d_src) {
    for (std::size_t y = 0; y < gh; ++y) {
        const auto [y0, y1, wy] = detail::grid_taps(y, gh0, gh);
        for (std::size_t x = 0; x < gw; ++x) {
            const auto [x0, x1, wx] = detail::grid_taps(x, gw0, gw);
            const float* o = d_dst + (y * gw + x) * width;
            const float ca = static_cast<float>((1 - wy) * (1 - wx)), cb = static_cast<float>((1 - wy) * wx),
                        cc = static_cast<float>(wy * (1 - wx)), cd = static_cast<float>(wy * wx);
            float* a = d_src + (y0 * gw0 + x0) * width;
            float* b = d_src + (y0 * gw0 + x1) * width;
            float* c = d_src + (y1 * gw0 + x0) * width;
            float* d = d_src + (y1 * gw0 + x1) * width;
            for (std::size_t i = 0; i < width; ++i) {
                a[i] += ca * o[i];
                b[i] += cb * o[i];
                c[i] += cc * o[i];
                d[i] += cd * o[i];
            }
        }
    }
}

// big_vision posemb_sincos_2d: for a (h x w) grid and width % 4 == 0,
// [sin(x w_d), cos(x w_d), sin(y w_d), cos(y w_d)], w_d = temperature^(-d / (width/4 - 1)).
inline std::vector<float> sincos_2d(std::size_t h, std::size_t w, std::size_t width, double temperature = 10000.0) {
    if (width % 4 != 0 || width < 8)
        throw config_error(core::describe("sincos position embedding width", "sincos_2d", "a multiple of 4, >= 8", width));
    const std::size_t q = width / 4;
    std::vector<float> out(h * w * width);
    for (std::size_t y = 0; y < h; ++y)
        for (std::size_t x = 0; x < w; ++x) {
            float* o = out.data() + (y * w + x) * width;
            for (std::size_t d = 0; d < q; ++d) {
                const double omega = 1.0 / std::pow(temperature, static_cast<double>(d) / static_cast<double>(q - 1));
                o[d] = static_cast<float>(std::sin(static_cast<double>(x) * omega));
                o[q + d] = static_cast<float>(std::cos(static_cast<double>(x) * omega));
                o[2 * q + d] = static_cast<float>(std::sin(static_cast<double>(y) * omega));
                o[3 * q + d] = static_cast<float>(std::cos(static_cast<double>(y) * omega));
            }
        }
    return out;
}

struct position_embedding_config {
    std::size_t grid_h = 0, grid_w = 0;  // the grid the checkpoint was trained at
    std::size_t width = 0;
};

// Learned position embedding "weight" (grid_h * grid_w, width), added once after patchify.
// Another grid (another resolution) gets the table resampled.
class learned_position_embedding {
public:
    explicit learned_position_embedding(const position_embedding_config& c) : cfg_(c) {
        if (c.grid_h == 0 || c.grid_w == 0 || c.width == 0)
            throw config_error(core::describe("empty position embedding", "learned_position_embedding",
                                              "grid and width > 0", std::to_string(c.grid_h) + "x" + std::to_string(c.grid_w)));
    }
    template <weights::weight_source S>
    learned_position_embedding(const position_embedding_config& c, const weights::cursor<S>& cur)
        : learned_position_embedding(c) {
        load(*this, cur);
    }

    template <class V>
    void visit(V& v) {
        v.tensor("weight", table_, {cfg_.grid_h * cfg_.grid_w, cfg_.width});
    }

    const position_embedding_config& config() const { return cfg_; }

    // The table for a (gh x gw) grid: the stored one, or resampled.
    std::vector<float> for_grid(std::size_t gh, std::size_t gw) const {
        if (!table_.data) throw value_error(core::describe("position embedding used before loading", "learned_position_embedding", "loaded weights", "none"));
        if (gh == cfg_.grid_h && gw == cfg_.grid_w) return {table_.data, table_.data + table_.size()};
        return resample_grid(table_.data, cfg_.grid_h, cfg_.grid_w, gh, gw, cfg_.width);
    }

    // tokens (batch, gh*gw, width) += table for that grid.
    void add_to(float* tokens, std::size_t batch, std::size_t gh, std::size_t gw) const {
        const std::size_t n = gh * gw * cfg_.width;
        if (!table_.data) throw value_error(core::describe("position embedding used before loading", "learned_position_embedding", "loaded weights", "none"));
        if (gh == cfg_.grid_h && gw == cfg_.grid_w) {
            for (std::size_t b = 0; b < batch; ++b) kernels::add(tokens + b * n, table_.data, tokens + b * n, n);
            return;
        }
        const auto table = for_grid(gh, gw);
        for (std::size_t b = 0; b < batch; ++b) kernels::add(tokens + b * n, table.data(), tokens + b * n, n);
    }

    // Backward of add_to(): the table's gradient is d_tokens summed over the batch (through the
    // resampling's transpose for another grid).
    template <gradient_sink G>
    void backward(const float* d_tokens, std::size_t batch, std::size_t gh, std::size_t gw, G& g) const {
        float* dt = g.grad(table_);
        if (!dt) return;
        const std::size_t n = gh * gw * cfg_.width;
        if (gh == cfg_.grid_h && gw == cfg_.grid_w) {
            for (std::size_t b = 0; b < batch; ++b) kernels::add(dt, d_tokens + b * n, dt, n);
            return;
        }
        std::vector<float> sum(n, 0.f);
        for (std::size_t b = 0; b < batch; ++b) kernels::add(sum.data(), d_tokens + b * n, sum.data(), n);
        resample_grid_backward(sum.data(), cfg_.grid_h, cfg_.grid_w, gh, gw, cfg_.width, dt);
    }

private:
    position_embedding_config cfg_;
    param<float> table_;
};

struct map_head_config {
    std::size_t width = 0;
    std::size_t heads = 0;
    std::size_t mlp_hidden = 0;
    float eps = 1e-6f;                                                     // the LayerNorm's
    kernels::activation_id activation = kernels::activation_id::of_type;  // the MLP's (of_type: tanh GELU)
};

// Multihead attention pooling: a learned probe (1, 1, width) attends to all tokens (no
// residual), then x + MLP(LN(x)). Output: one vector per image. ("probe", "attn", "norm", "mlp")
template <weight_storage Storage = float>
class map_head {
public:
    using mlp_type = mlp<kernels::act::by_config<kernels::act::gelu_tanh>, Storage>;

    explicit map_head(const map_head_config& c)
        : cfg_(c), attn_({c.width, c.heads, 0, true}), norm_({c.width, c.eps}),
          mlp_({c.width, c.mlp_hidden, true, c.activation}) {}
    template <weights::weight_source S>
    map_head(const map_head_config& c, const weights::cursor<S>& cur) : map_head(c) {
        load(*this, cur);
    }

    template <class V>
    void visit(V& v) {
        v.tensor("probe", probe_, {1, 1, cfg_.width});
        v.child("attn", attn_);
        v.child("norm", norm_);
        v.child("mlp", mlp_);
    }

    const map_head_config& config() const { return cfg_; }

    static std::size_t workspace_floats(const map_head_config& c, std::size_t batch, std::size_t t) {
        return 2 * core::workspace::padded(batch * c.width) +
               std::max(attention<attn::inv_sqrt_dim, Storage>::workspace_floats({c.width, c.heads, 0, true}, batch, batch * t),
                        mlp_type::workspace_floats({c.width, c.mlp_hidden, true}, batch));
    }

    // out (batch, width) from tokens (batch*t, width).
    template <core::executor E = core::sequential>
    void forward(const float* tokens, std::size_t batch, std::size_t t, float* out, core::workspace& ws,
                 E&& exec = E{}, const trace& tr = {}) const {
        const std::size_t w = cfg_.width;
        core::workspace::scope scope(ws);
        float* probes = ws.alloc(batch * w).data();  // (batch, width): the probe for every image
        float* h = ws.alloc(batch * w).data();
        for (std::size_t b = 0; b < batch; ++b) std::copy_n(probe_.data, w, probes + b * w);
        attn_.forward_cross(probes, batch, 1, tokens, t, out, ws, exec, {}, {}, nullptr, false, tr.child("attn"));
        norm_.forward(out, w, batch, h, w);
        mlp_.forward(h, batch, out, ws, exec, /*accumulate=*/true, tr.child("mlp"));
        tr("out", out, {batch, w});
    }

    // ---- training ----
    struct saved {
        core::buffer probes, pooled;  // the probe per image; attention output (pre-residual x)
        typename attention<attn::inv_sqrt_dim, Storage>::saved attn;
        typename mlp_type::saved mlp;
    };

    template <core::executor E = core::sequential>
    void forward_train(const float* tokens, std::size_t batch, std::size_t t, float* out, saved& s, E&& exec = E{}) const {
        const std::size_t w = cfg_.width;
        if (!probe_.data) throw value_error(core::describe("MAP head used before loading", "map_head", "loaded weights", "none"));
        s.probes.resize(batch * w);
        for (std::size_t b = 0; b < batch; ++b) std::copy_n(probe_.data, w, s.probes.data() + b * w);
        attn_.forward_train(s.probes.data(), batch, 1, tokens, t, out, s.attn, exec);
        s.pooled.assign(out, out + batch * w);
        core::buffer h(batch * w);
        norm_.forward(out, w, batch, h.data(), w);
        mlp_.forward_train(h.data(), batch, out, s.mlp, exec, /*accumulate=*/true);
    }

    // d_out (batch, width) -> d_tokens (batch*t, width), added to; parameter gradients into g.
    template <gradient_sink G, core::executor E = core::sequential>
    void backward(const float* tokens, std::size_t batch, std::size_t t, const saved& s, const float* d_out,
                  float* d_tokens, G& g, E&& exec = E{}) const {
        const std::size_t w = cfg_.width;
        core::buffer dx(d_out, d_out + batch * w), h(batch * w), dh(batch * w);
        norm_.forward(s.pooled.data(), w, batch, h.data(), w);
        mlp_.backward(h.data(), batch, s.mlp, dx.data(), dh.data(), g, exec);
        norm_.backward(s.pooled.data(), w, batch, dh.data(), w, dx.data(), w, g, /*accumulate=*/true);
        core::buffer dprobes(batch * w, 0.f);
        attn_.backward(s.probes.data(), batch, 1, tokens, t, s.attn, dx.data(), dprobes.data(), d_tokens, g, exec, {},
                       /*accumulate=*/true);
        if (float* dp = g.grad(probe_))
            for (std::size_t b = 0; b < batch; ++b) kernels::add(dp, dprobes.data() + b * w, dp, w);
    }

    void release_prepacked() {
        attn_.release_prepacked();
        mlp_.release_prepacked();
    }

private:
    map_head_config cfg_;
    param<float> probe_;
    attention<attn::inv_sqrt_dim, Storage> attn_;
    layer_norm norm_;
    mlp_type mlp_;
};

}  // namespace pali3::layers
