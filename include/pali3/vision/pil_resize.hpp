// Resampling as Pillow (PIL) does it for 8-bit images, `Image.resize(size, BILINEAR | BICUBIC)`:
// the resize HF's image processors run (SigLIP and PaliGemma: BICUBIC, `resample: 3`).
// Separable, horizontal pass then vertical pass. Each output sample is a normalised filter over
// the source samples whose centres fall in its support; when downscaling the support is widened
// by the scale factor (antialiasing). The weights are 22-bit fixed point and each pass rounds to
// uint8, as Pillow's Resample.c does, so the bytes are Pillow's, not only close to them
// (tests/vision: equal to python3-pil 9.4's output at several sizes and ratios).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "pali3/core/error.hpp"
#include "pali3/io/image.hpp"

namespace pali3::vision {

enum class pil_filter { bilinear, bicubic };

namespace detail {
inline constexpr int pil_precision_bits = 32 - 8 - 2;  // Pillow's PRECISION_BITS for 8-bit images

inline double pil_support(pil_filter f) { return f == pil_filter::bicubic ? 2.0 : 1.0; }

inline double pil_kernel(pil_filter f, double x) {
    x = std::abs(x);
    if (f == pil_filter::bilinear) return x < 1.0 ? 1.0 - x : 0.0;
    constexpr double a = -0.5;  // Pillow's bicubic (Keys, a = -0.5)
    if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0;
    if (x < 2.0) return (((x - 5.0) * x + 8.0) * x - 4.0) * a;
    return 0.0;
}

// For each output sample along one axis: the first source sample, how many, and their weights
// in fixed point (`ksize` slots per output sample).
struct pil_taps {
    std::size_t ksize = 0;
    std::vector<std::size_t> first, count;
    std::vector<std::int32_t> k;
};

inline pil_taps pil_coefficients(std::size_t in, std::size_t out, pil_filter f) {
    const double scale = static_cast<double>(in) / static_cast<double>(out);
    const double filterscale = std::max(scale, 1.0);
    const double support = pil_support(f) * filterscale;
    pil_taps t;
    t.ksize = static_cast<std::size_t>(std::ceil(support)) * 2 + 1;
    t.first.resize(out);
    t.count.resize(out);
    t.k.assign(out * t.ksize, 0);
    std::vector<double> w(t.ksize);
    for (std::size_t o = 0; o < out; ++o) {
        const double centre = (static_cast<double>(o) + 0.5) * scale;
        // (int) casts truncate toward zero, as in C; then clamped to the image.
        long lo = static_cast<long>(centre - support + 0.5);
        long hi = static_cast<long>(centre + support + 0.5);
        lo = std::max(lo, 0L);
        hi = std::min(hi, static_cast<long>(in));
        const std::size_t n = static_cast<std::size_t>(std::max(hi - lo, 0L));
        double sum = 0;
        for (std::size_t i = 0; i < n; ++i) {
            w[i] = pil_kernel(f, (static_cast<double>(i) + static_cast<double>(lo) - centre + 0.5) / filterscale);
            sum += w[i];
        }
        for (std::size_t i = 0; i < n; ++i) {
            const double v = sum != 0.0 ? w[i] / sum : w[i];
            const double fixed = v * static_cast<double>(1 << pil_precision_bits);
            t.k[o * t.ksize + i] = static_cast<std::int32_t>(v < 0 ? fixed - 0.5 : fixed + 0.5);  // trunc toward zero
        }
        t.first[o] = static_cast<std::size_t>(lo);
        t.count[o] = n;
    }
    return t;
}

inline std::uint8_t pil_clip8(std::int64_t v) {
    v >>= pil_precision_bits;  // arithmetic: floor, as Pillow's lookup of v >> PRECISION_BITS
    return static_cast<std::uint8_t>(std::clamp<std::int64_t>(v, 0, 255));
}
}  // namespace detail

// (oh, ow, channels) bytes from (h, w, channels) bytes, as Pillow's Image.resize((ow, oh), filter).
inline std::vector<std::uint8_t> pil_resize(const std::uint8_t* src, std::size_t w, std::size_t h, std::size_t channels,
                                            std::size_t ow, std::size_t oh, pil_filter f) {
    constexpr std::size_t max_side = 1u << 15;
    if (w == 0 || h == 0 || channels == 0 || channels > 4 || w > max_side || h > max_side)
        throw shape_error(core::describe("bad image for resize", "vision::pil_resize", "1..32768 x 1..32768 pixels of 1..4 channels",
                                         std::to_string(w) + " x " + std::to_string(h) + " x " + std::to_string(channels)));
    if (ow == 0 || oh == 0 || ow > max_side || oh > max_side)
        throw value_error(core::describe("resize target", "vision::pil_resize", "1..32768 x 1..32768",
                                         std::to_string(ow) + " x " + std::to_string(oh)));
    const std::int64_t half = std::int64_t{1} << (detail::pil_precision_bits - 1);
    std::vector<std::uint8_t> cur(src, src + w * h * channels);
    std::size_t cw = w;
    if (ow != w) {  // horizontal pass: (h, ow)
        const auto t = detail::pil_coefficients(w, ow, f);
        std::vector<std::uint8_t> next(h * ow * channels);
        for (std::size_t y = 0; y < h; ++y)
            for (std::size_t x = 0; x < ow; ++x) {
                const std::int32_t* k = t.k.data() + x * t.ksize;
                for (std::size_t c = 0; c < channels; ++c) {
                    std::int64_t s = half;
                    for (std::size_t i = 0; i < t.count[x]; ++i) s += std::int64_t{cur[(y * w + t.first[x] + i) * channels + c]} * k[i];
                    next[(y * ow + x) * channels + c] = detail::pil_clip8(s);
                }
            }
        cur.swap(next);
        cw = ow;
    }
    if (oh != h) {  // vertical pass: (oh, ow)
        const auto t = detail::pil_coefficients(h, oh, f);
        std::vector<std::uint8_t> next(oh * cw * channels);
        for (std::size_t y = 0; y < oh; ++y) {
            const std::int32_t* k = t.k.data() + y * t.ksize;
            for (std::size_t x = 0; x < cw; ++x)
                for (std::size_t c = 0; c < channels; ++c) {
                    std::int64_t s = half;
                    for (std::size_t i = 0; i < t.count[y]; ++i) s += std::int64_t{cur[((t.first[y] + i) * cw + x) * channels + c]} * k[i];
                    next[(y * cw + x) * channels + c] = detail::pil_clip8(s);
                }
        }
        cur.swap(next);
    }
    return cur;
}

inline io::image pil_resize(const io::image& img, std::size_t ow, std::size_t oh, pil_filter f) {
    if (img.rgb.size() != img.width * img.height * 3)
        throw shape_error(core::describe("bad image buffer", "vision::pil_resize", "width * height * 3 bytes", img.rgb.size()));
    io::image out;
    out.width = ow;
    out.height = oh;
    out.rgb = pil_resize(img.rgb.data(), img.width, img.height, 3, ow, oh, f);
    return out;
}

}  // namespace pali3::vision
