// Normalisation layers as policy types: layer_norm (ViT/SigLIP: "weight" + "bias", eps 1e-6)
// and rms_norm (T5/UL2: "weight" only). Both have the same interface, so blocks take the norm
// as a template parameter. Gains and biases are f32.
#pragma once

#include <cstddef>
#include <string>

#include "pali3/kernels/backward.hpp"
#include "pali3/kernels/norm.hpp"
#include "pali3/layers/module.hpp"

namespace pali3::layers {

struct norm_config {
    std::size_t width = 0;
    float eps = 1e-6f;
};

inline void check(const norm_config& c, std::string_view kind) {
    if (c.width == 0 || !(c.eps > 0.f))
        throw config_error(core::describe("bad normalisation config", kind, "width > 0 and eps > 0",
                                          "width=" + std::to_string(c.width) + ", eps=" + std::to_string(c.eps)));
}

class layer_norm {
public:
    static constexpr std::string_view name = "layer_norm";

    explicit layer_norm(const norm_config& c) : cfg_(c) { check(c, name); }
    template <weights::weight_source S>
    layer_norm(const norm_config& c, const weights::cursor<S>& cur) : layer_norm(c) {
        load(*this, cur);
    }

    template <class V>
    void visit(V& v) {
        v.tensor("weight", gain_, {cfg_.width});
        v.tensor("bias", bias_, {cfg_.width});
    }

    std::size_t width() const { return cfg_.width; }
    const norm_config& config() const { return cfg_; }

    // y (rows, width) = LN(x); y may alias x.
    void forward(const float* x, std::size_t ldx, std::size_t rows, float* y, std::size_t ldy) const {
        if (!gain_.data) throw value_error(core::describe("layer_norm used before loading", name, "loaded weights", "none"));
        kernels::layer_norm(x, ldx, y, ldy, rows, cfg_.width, gain_.data, bias_.data, cfg_.eps);
    }

    // Backward of forward(x): dx (rows, width) from dy (added to dx when accumulate); the
    // statistics are recomputed from x. Gain and bias gradients go to g.
    template <gradient_sink G>
    void backward(const float* x, std::size_t ldx, std::size_t rows, const float* dy, std::size_t lddy, float* dx,
                  std::size_t lddx, G& g, bool accumulate = false) const {
        if (!gain_.data) throw value_error(core::describe("layer_norm used before loading", name, "loaded weights", "none"));
        kernels::layer_norm_backward(x, ldx, dy, lddy, dx, lddx, rows, cfg_.width, gain_.data, cfg_.eps, g.grad(gain_),
                                     g.grad(bias_), accumulate);
    }

private:
    norm_config cfg_;
    param<float> gain_, bias_;
};

class rms_norm {
public:
    static constexpr std::string_view name = "rms_norm";

    explicit rms_norm(const norm_config& c) : cfg_(c) { check(c, name); }
    template <weights::weight_source S>
    rms_norm(const norm_config& c, const weights::cursor<S>& cur) : rms_norm(c) {
        load(*this, cur);
    }

    template <class V>
    void visit(V& v) {
        v.tensor("weight", gain_, {cfg_.width});
    }

    std::size_t width() const { return cfg_.width; }
    const norm_config& config() const { return cfg_; }

    void forward(const float* x, std::size_t ldx, std::size_t rows, float* y, std::size_t ldy) const {
        if (!gain_.data) throw value_error(core::describe("rms_norm used before loading", name, "loaded weights", "none"));
        kernels::rms_norm(x, ldx, y, ldy, rows, cfg_.width, gain_.data, cfg_.eps);
    }

    template <gradient_sink G>
    void backward(const float* x, std::size_t ldx, std::size_t rows, const float* dy, std::size_t lddy, float* dx,
                  std::size_t lddx, G& g, bool accumulate = false) const {
        if (!gain_.data) throw value_error(core::describe("rms_norm used before loading", name, "loaded weights", "none"));
        kernels::rms_norm_backward(x, ldx, dy, lddy, dx, lddx, rows, cfg_.width, gain_.data, cfg_.eps, g.grad(gain_),
                                   accumulate);
    }

private:
    norm_config cfg_;
    param<float> gain_;
};

}  // namespace pali3::layers
