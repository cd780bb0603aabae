// Image preprocessing as big_vision does it for PaLI/SigLIP: resize to the model's square
// resolution (bilinear, half-pixel centres like tf.image.resize; optional antialias, a triangle
// filter widened by the downscale factor), then map [0, 255] to [-1, 1]. Output is (3, H, W).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "pali3/core/error.hpp"
#include "pali3/io/image.hpp"

namespace pali3::vision {

namespace detail {
// Weights of source samples for each destination sample along one axis.
struct axis_taps {
    std::vector<std::size_t> first;   // first source index per destination
    std::vector<std::vector<float>> w;
};

inline axis_taps taps(std::size_t src, std::size_t dst, bool antialias) {
    axis_taps t;
    t.first.resize(dst);
    t.w.resize(dst);
    const double scale = static_cast<double>(src) / static_cast<double>(dst);
    const double support = antialias && scale > 1 ? scale : 1.0;  // triangle half-width in source pixels
    for (std::size_t o = 0; o < dst; ++o) {
        const double centre = (static_cast<double>(o) + 0.5) * scale - 0.5;
        const auto lo = static_cast<long>(std::floor(centre - support)) + 1;
        const auto hi = static_cast<long>(std::ceil(centre + support)) - 1;
        std::vector<double> w;
        long first = -1;
        double sum = 0;
        for (long i = lo; i <= hi; ++i) {
            const double d = std::abs(static_cast<double>(i) - centre) / support;
            if (d >= 1) continue;
            const long clamped = std::clamp<long>(i, 0, static_cast<long>(src) - 1);
            if (first < 0) first = clamped;
            // Clamped taps fold onto the edge sample.
            const std::size_t slot = static_cast<std::size_t>(clamped - first);
            if (clamped < first) continue;  // cannot happen: taps are increasing
            if (w.size() <= slot) w.resize(slot + 1, 0.0);
            w[slot] += 1 - d;
            sum += 1 - d;
        }
        if (first < 0) {  // centre exactly between samples with zero weights: nearest
            first = std::clamp<long>(std::lround(centre), 0, static_cast<long>(src) - 1);
            w = {1.0};
            sum = 1;
        }
        t.first[o] = static_cast<std::size_t>(first);
        for (double x : w) t.w[o].push_back(static_cast<float>(x / sum));
    }
    return t;
}
}  // namespace detail

struct preprocess_options {
    std::size_t size = 224;   // output is size x size
    bool antialias = false;   // big_vision's pp `resize` default is plain bilinear
};

// (3, size, size) floats in [-1, 1] from an RGB image.
inline std::vector<float> preprocess(const io::image& img, preprocess_options o = {}) {
    if (img.width == 0 || img.height == 0 || img.rgb.size() != img.width * img.height * 3)
        throw shape_error(core::describe("bad image buffer", "vision::preprocess", "width * height * 3 bytes",
                                         std::to_string(img.rgb.size()) + " for " + std::to_string(img.width) + " x " + std::to_string(img.height)));
    if (o.size == 0 || o.size > 8192) throw value_error(core::describe("preprocess size", "vision::preprocess", "1..8192", o.size));
    const auto tx = detail::taps(img.width, o.size, o.antialias), ty = detail::taps(img.height, o.size, o.antialias);
    const std::size_t n = o.size;
    std::vector<float> rows(img.height * n * 3);  // horizontal pass: (H, n, 3)
    for (std::size_t y = 0; y < img.height; ++y)
        for (std::size_t x = 0; x < n; ++x)
            for (std::size_t c = 0; c < 3; ++c) {
                float acc = 0;
                for (std::size_t k = 0; k < tx.w[x].size(); ++k) acc += tx.w[x][k] * img.at(y, tx.first[x] + k)[c];
                rows[(y * n + x) * 3 + c] = acc;
            }
    std::vector<float> out(3 * n * n);
    for (std::size_t y = 0; y < n; ++y)
        for (std::size_t x = 0; x < n; ++x)
            for (std::size_t c = 0; c < 3; ++c) {
                float acc = 0;
                for (std::size_t k = 0; k < ty.w[y].size(); ++k) acc += ty.w[y][k] * rows[((ty.first[y] + k) * n + x) * 3 + c];
                out[(c * n + y) * n + x] = acc / 127.5f - 1.f;
            }
    return out;
}

// Bilinear resize of a single-channel float map (half-pixel centres), e.g. a 64x64 mask to a box.
inline std::vector<float> resize_map(const float* src, std::size_t sh, std::size_t sw, std::size_t dh, std::size_t dw) {
    const auto tx = detail::taps(sw, dw, false), ty = detail::taps(sh, dh, false);
    std::vector<float> out(dh * dw);
    for (std::size_t y = 0; y < dh; ++y)
        for (std::size_t x = 0; x < dw; ++x) {
            float acc = 0;
            for (std::size_t a = 0; a < ty.w[y].size(); ++a)
                for (std::size_t b = 0; b < tx.w[x].size(); ++b)
                    acc += ty.w[y][a] * tx.w[x][b] * src[(ty.first[y] + a) * sw + tx.first[x] + b];
            out[y * dw + x] = acc;
        }
    return out;
}

}  // namespace pali3::vision
