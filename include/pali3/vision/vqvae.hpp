// The VQ-VAE mask decoder of PaLI/PaliGemma segmentation: 16 `<seg>` codes -> a 64x64 mask.
//
//   codes (4x4) -> codebook rows (E)         `_vq_vae._embedding` (128, E), E = 512 in vae-oid
//   conv 1x1 E -> 128, ReLU                   `decoder.0`
//   2 x ResBlock: conv3x3, ReLU, conv3x3, ReLU, conv1x1, + skip     `decoder.{2,3}.net.{0,2,4}`
//   4 x ConvTranspose(k4, s2, p1) + ReLU, 128 -> 128 -> 64 -> 32 -> 16, 4x4 -> 64x64
//                                             `decoder.{4,6,8,10}`
//   conv 1x1 16 -> 1                          `decoder.12`
// The parameter names and layouts are those of the published `vae-oid.npz` (PyTorch: Conv2d
// weight (out, in, kh, kw), ConvTranspose2d weight (in, out, kh, kw)), so that file loads as is.
// Output values are roughly in [-1, 1]; a pixel belongs to the mask when its value is > 0.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "pali3/core/error.hpp"
#include "pali3/layers/module.hpp"

namespace pali3::vision {

struct vqvae_config {
    std::size_t codebook = 128;   // number of codes (= <seg> tokens)
    std::size_t embed_dim = 512;  // code vector width
    std::size_t width = 128;      // channels after the first conv
};

namespace detail {

// Conv2d, stride 1, "same" zero padding (k odd), CHW layout. weight (co, ci, k, k).
inline void conv2d(const float* x, std::size_t ci, std::size_t h, std::size_t w, const float* weight, const float* bias,
                   std::size_t co, std::size_t k, float* y) {
    const long pad = static_cast<long>(k / 2);
    for (std::size_t o = 0; o < co; ++o)
        for (std::size_t i = 0; i < h; ++i)
            for (std::size_t j = 0; j < w; ++j) {
                float acc = bias[o];
                for (std::size_t c = 0; c < ci; ++c)
                    for (std::size_t ky = 0; ky < k; ++ky) {
                        const long yy = static_cast<long>(i + ky) - pad;
                        if (yy < 0 || yy >= static_cast<long>(h)) continue;
                        for (std::size_t kx = 0; kx < k; ++kx) {
                            const long xx = static_cast<long>(j + kx) - pad;
                            if (xx < 0 || xx >= static_cast<long>(w)) continue;
                            acc += weight[((o * ci + c) * k + ky) * k + kx] * x[(c * h + static_cast<std::size_t>(yy)) * w + static_cast<std::size_t>(xx)];
                        }
                    }
                y[(o * h + i) * w + j] = acc;
            }
}

// ConvTranspose2d(kernel 4, stride 2, padding 1): (ci, h, w) -> (co, 2h, 2w). weight (ci, co, 4, 4).
// out[o, y, x] = b[o] + sum_{c, iy, ix : y = 2 iy - 1 + ky, x = 2 ix - 1 + kx} in[c, iy, ix] w[c, o, ky, kx]
inline void conv_transpose_k4s2p1(const float* x, std::size_t ci, std::size_t h, std::size_t w, const float* weight,
                                  const float* bias, std::size_t co, float* y) {
    const std::size_t oh = 2 * h, ow = 2 * w;
    for (std::size_t o = 0; o < co; ++o) std::fill(y + o * oh * ow, y + (o + 1) * oh * ow, bias[o]);
    for (std::size_t c = 0; c < ci; ++c)
        for (std::size_t iy = 0; iy < h; ++iy)
            for (std::size_t ix = 0; ix < w; ++ix) {
                const float v = x[(c * h + iy) * w + ix];
                for (std::size_t ky = 0; ky < 4; ++ky) {
                    const long yy = 2 * static_cast<long>(iy) - 1 + static_cast<long>(ky);
                    if (yy < 0 || yy >= static_cast<long>(oh)) continue;
                    for (std::size_t kx = 0; kx < 4; ++kx) {
                        const long xx = 2 * static_cast<long>(ix) - 1 + static_cast<long>(kx);
                        if (xx < 0 || xx >= static_cast<long>(ow)) continue;
                        for (std::size_t o = 0; o < co; ++o)
                            y[(o * oh + static_cast<std::size_t>(yy)) * ow + static_cast<std::size_t>(xx)] +=
                                v * weight[((c * co + o) * 4 + ky) * 4 + kx];
                    }
                }
            }
}

inline void relu(std::span<float> v) {
    for (auto& x : v) x = std::max(x, 0.f);
}

struct conv {
    std::size_t in = 0, out = 0, k = 1;
    bool transposed = false;
    layers::param<float> weight{}, bias{};

    conv() = default;
    conv(std::size_t i, std::size_t o, std::size_t kernel, bool t = false) : in(i), out(o), k(kernel), transposed(t) {}

    template <class V>
    void visit(V& v) {
        v.tensor("weight", weight, transposed ? shape_t{in, out, k, k} : shape_t{out, in, k, k});
        v.tensor("bias", bias, {out});
    }
};

}  // namespace detail

class vqvae_decoder {
public:
    static constexpr std::size_t grid = 4, mask_size = 64;

    explicit vqvae_decoder(const vqvae_config& c = {}) : cfg_(c) {
        if (c.codebook == 0 || c.embed_dim == 0 || c.width < 8 || c.width % 8 != 0)
            throw config_error(core::describe("bad VQ-VAE config", "vqvae_config", "codebook, embed_dim > 0, width a multiple of 8",
                                              std::to_string(c.codebook) + ", " + std::to_string(c.embed_dim) + ", " + std::to_string(c.width)));
        in_ = detail::conv(c.embed_dim, c.width, 1);
        for (auto& rb : res_) {
            rb[0] = detail::conv(c.width, c.width, 3);
            rb[1] = detail::conv(c.width, c.width, 3);
            rb[2] = detail::conv(c.width, c.width, 1);
        }
        std::size_t ch = c.width;
        for (std::size_t i = 0; i < 4; ++i) {
            const std::size_t out = i == 0 ? ch : ch / 2;
            up_[i] = detail::conv(ch, out, 4, true);
            ch = out;
        }
        out_ = detail::conv(ch, 1, 1);
    }
    template <weights::weight_source S>
    vqvae_decoder(const vqvae_config& c, const weights::cursor<S>& cur) : vqvae_decoder(c) {
        layers::load(*this, cur);
    }

    template <class V>
    void visit(V& v) {
        v.tensor("_vq_vae._embedding", codebook_, {cfg_.codebook, cfg_.embed_dim});
        v.child("decoder.0", in_);
        for (std::size_t r = 0; r < 2; ++r)
            for (std::size_t i = 0; i < 3; ++i) v.child("decoder." + std::to_string(2 + r) + ".net." + std::to_string(2 * i), res_[r][i]);
        for (std::size_t i = 0; i < 4; ++i) v.child("decoder." + std::to_string(4 + 2 * i), up_[i]);
        v.child("decoder.12", out_);
    }

    const vqvae_config& config() const { return cfg_; }

    // 16 codes (row-major 4x4) -> 64x64 mask logits. Codes out of range throw.
    std::vector<float> decode(std::span<const int> codes) const {
        if (codes.size() != grid * grid)
            throw shape_error(core::describe("VQ-VAE needs 16 codes", "vqvae_decoder::decode", 16, codes.size()));
        const std::size_t e = cfg_.embed_dim, w = cfg_.width;
        std::vector<float> x(e * grid * grid);  // (E, 4, 4)
        for (std::size_t p = 0; p < grid * grid; ++p) {
            const int c = codes[p];
            if (c < 0 || static_cast<std::size_t>(c) >= cfg_.codebook)
                throw value_error(core::describe("VQ-VAE code out of range", "vqvae_decoder::decode", "0 <= code < " + std::to_string(cfg_.codebook), c));
            for (std::size_t k = 0; k < e; ++k) x[k * grid * grid + p] = codebook_.data[static_cast<std::size_t>(c) * e + k];
        }
        std::vector<float> h(w * grid * grid), t1(h.size()), t2(h.size());
        detail::conv2d(x.data(), e, grid, grid, in_.weight.data, in_.bias.data, w, 1, h.data());
        detail::relu(h);
        for (const auto& rb : res_) {
            detail::conv2d(h.data(), w, grid, grid, rb[0].weight.data, rb[0].bias.data, w, 3, t1.data());
            detail::relu(t1);
            detail::conv2d(t1.data(), w, grid, grid, rb[1].weight.data, rb[1].bias.data, w, 3, t2.data());
            detail::relu(t2);
            detail::conv2d(t2.data(), w, grid, grid, rb[2].weight.data, rb[2].bias.data, w, 1, t1.data());
            for (std::size_t i = 0; i < h.size(); ++i) h[i] += t1[i];
        }
        std::size_t side = grid;
        for (const auto& up : up_) {
            std::vector<float> next(up.out * 4 * side * side);
            detail::conv_transpose_k4s2p1(h.data(), up.in, side, side, up.weight.data, up.bias.data, up.out, next.data());
            detail::relu(next);
            h = std::move(next);
            side *= 2;
        }
        std::vector<float> mask(side * side);
        detail::conv2d(h.data(), out_.in, side, side, out_.weight.data, out_.bias.data, 1, 1, mask.data());
        return mask;
    }

private:
    vqvae_config cfg_;
    layers::param<float> codebook_;
    detail::conv in_;
    std::array<std::array<detail::conv, 3>, 2> res_;
    std::array<detail::conv, 4> up_;
    detail::conv out_;
};

}  // namespace pali3::vision
