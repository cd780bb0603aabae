// Image preprocessing: resize to the model's square resolution, then (x * rescale - mean) / std
// per channel. Output is (3, H, W). The default is big_vision's for PaLI/SigLIP: bilinear with
// half-pixel centres like tf.image.resize (optional antialias, a triangle filter widened by the
// downscale factor), [0, 255] -> [-1, 1]. HF's processors resize with Pillow (bilinear or bicubic,
// vision/pil_resize.hpp, byte for byte) and name their own rescale, mean and std
// (pipeline/preprocessing.hpp reads them from preprocessor_config.json).
#pragma once

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "pali3/core/error.hpp"
#include "pali3/core/name_table.hpp"
#include "pali3/io/image.hpp"
#include "pali3/vision/pil_resize.hpp"

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

// tf_bilinear: big_vision's (tf.image.resize, float); pil_*: Pillow's Image.resize on the bytes.
enum class resize_method { tf_bilinear, pil_bilinear, pil_bicubic };

inline constexpr std::pair<resize_method, std::string_view> resize_methods[] = {
    {resize_method::tf_bilinear, "bilinear"}, {resize_method::pil_bilinear, "pil-bilinear"}, {resize_method::pil_bicubic, "bicubic"}};

inline std::string_view resize_name(resize_method m) { return core::name_in(resize_methods, m).value_or("?"); }
inline resize_method resize_from_name(std::string_view name, std::string_view where) {
    if (const auto k = core::value_in(resize_methods, name)) return *k;
    throw value_error(core::describe("unknown resize", where,
                                     core::names_list(resize_methods) + " (bilinear: tf, big_vision's; the others: Pillow's, HF's)", name));
}

struct preprocess_options {
    std::size_t size = 224;   // output is size x size
    bool antialias = false;   // tf_bilinear only; big_vision's pp `resize` default is plain bilinear
    resize_method resize = resize_method::tf_bilinear;
    bool do_resize = true;    // false: the image must already be size x size
    float rescale = 1.f / 255.f;
    std::array<float, 3> mean{0.5f, 0.5f, 0.5f}, std{0.5f, 0.5f, 0.5f};  // on rescaled values
};

// Values a preprocessing can run with: finite, std > 0, sizes in range.
inline void check(const preprocess_options& o, std::string_view where) {
    if (o.size == 0 || o.size > 8192) throw value_error(core::describe("preprocess size", where, "1..8192", o.size));
    if (!std::isfinite(o.rescale) || o.rescale <= 0.f)
        throw value_error(core::describe("rescale factor", where, "a finite number > 0", o.rescale));
    for (std::size_t c = 0; c < 3; ++c) {
        if (!std::isfinite(o.mean[c])) throw value_error(core::describe("image mean", where, "finite values", o.mean[c]));
        if (!std::isfinite(o.std[c]) || !(o.std[c] > 0.f))
            throw value_error(core::describe("image std", where, "finite values > 0", o.std[c]));
    }
    if (o.antialias && o.resize != resize_method::tf_bilinear)
        throw value_error(core::describe("antialias", where, "the tf bilinear resize (Pillow's filters always antialias)", resize_name(o.resize)));
}

// (3, size, size) floats from an RGB image: resized, then (x * rescale - mean) / std per channel
// (the defaults: [-1, 1]).
inline std::vector<float> preprocess(const io::image& img, preprocess_options o = {}) {
    if (img.width == 0 || img.height == 0 || img.rgb.size() != img.width * img.height * 3)
        throw shape_error(core::describe("bad image buffer", "vision::preprocess", "width * height * 3 bytes",
                                         std::to_string(img.rgb.size()) + " for " + std::to_string(img.width) + " x " + std::to_string(img.height)));
    check(o, "vision::preprocess");
    const std::size_t n = o.size;
    std::array<double, 3> scale{}, shift{};  // x * scale + shift = (x * rescale - mean) / std
    for (std::size_t c = 0; c < 3; ++c) {
        scale[c] = static_cast<double>(o.rescale) / o.std[c];
        shift[c] = -static_cast<double>(o.mean[c]) / o.std[c];
    }
    std::vector<float> out(3 * n * n);
    const auto normalise_bytes = [&](const io::image& sized) {
        for (std::size_t y = 0; y < n; ++y)
            for (std::size_t x = 0; x < n; ++x)
                for (std::size_t c = 0; c < 3; ++c)
                    out[(c * n + y) * n + x] = static_cast<float>(sized.at(y, x)[c] * scale[c] + shift[c]);
    };
    if (!o.do_resize) {
        if (img.width != n || img.height != n)
            throw shape_error(core::describe("image size without resizing", "vision::preprocess (do_resize false)",
                                             std::to_string(n) + " x " + std::to_string(n),
                                             std::to_string(img.width) + " x " + std::to_string(img.height)));
        normalise_bytes(img);
        return out;
    }
    if (o.resize != resize_method::tf_bilinear) {
        normalise_bytes(pil_resize(img, n, n, o.resize == resize_method::pil_bicubic ? pil_filter::bicubic : pil_filter::bilinear));
        return out;
    }
    const auto tx = detail::taps(img.width, o.size, o.antialias), ty = detail::taps(img.height, o.size, o.antialias);
    std::vector<float> rows(img.height * n * 3);  // horizontal pass: (H, n, 3)
    for (std::size_t y = 0; y < img.height; ++y)
        for (std::size_t x = 0; x < n; ++x)
            for (std::size_t c = 0; c < 3; ++c) {
                float acc = 0;
                for (std::size_t k = 0; k < tx.w[x].size(); ++k) acc += tx.w[x][k] * img.at(y, tx.first[x] + k)[c];
                rows[(y * n + x) * 3 + c] = acc;
            }
    const bool big_vision = o.rescale == 1.f / 255.f && o.mean == std::array<float, 3>{0.5f, 0.5f, 0.5f} &&
                            o.std == std::array<float, 3>{0.5f, 0.5f, 0.5f};
    for (std::size_t y = 0; y < n; ++y)
        for (std::size_t x = 0; x < n; ++x)
            for (std::size_t c = 0; c < 3; ++c) {
                float acc = 0;
                for (std::size_t k = 0; k < ty.w[y].size(); ++k) acc += ty.w[y][k] * rows[((ty.first[y] + k) * n + x) * 3 + c];
                // big_vision's value_range(-1, 1) as it always ran here; others by the formula
                out[(c * n + y) * n + x] = big_vision ? acc / 127.5f - 1.f : static_cast<float>(acc * scale[c] + shift[c]);
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
