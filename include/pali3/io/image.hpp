// Image files in and out, through Debian's libstb (stb_image / stb_image_write).
// Decoding checks the header first: absurd dimensions are refused before any pixel memory is
// allocated (at most 16384 px a side and 64 Mpixels), and corrupt or truncated files give a
// format_error with stb's reason. Every image comes out 8-bit RGB (grey and RGBA converted).
#pragma once

#include <stb_image.h>
#include <stb_image_write.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>
#include <vector>

#include "pali3/core/error.hpp"
#include "pali3/core/files.hpp"

namespace pali3::io {

struct image {
    std::size_t width = 0, height = 0;
    std::vector<std::uint8_t> rgb;  // (height, width, 3)

    std::uint8_t* at(std::size_t y, std::size_t x) { return rgb.data() + (y * width + x) * 3; }
    const std::uint8_t* at(std::size_t y, std::size_t x) const { return rgb.data() + (y * width + x) * 3; }
};

struct image_limits {
    std::size_t max_side = 16384;
    std::size_t max_pixels = 64u << 20;
};

inline image decode_image(const std::uint8_t* bytes, std::size_t size, const std::string& name = "<memory>",
                          image_limits limits = {}) {
    if (size == 0) throw format_error(core::describe("empty image file", name, "JPEG, PNG or BMP data", "0 bytes"));
    if (size > static_cast<std::size_t>(INT32_MAX))
        throw format_error(core::describe("image file too large", name, "< 2 GiB", size));
    // Only the formats we name, by their magic (stb_image also parses PSD, HDR, PIC, PNM, GIF and
    // TGA: more parsers than any caller needs), and a PNG's chunk lengths checked against the file
    // before stb_image trusts them (it sizes its data buffer from a chunk's declared length).
    const bool png = size >= 8 && std::memcmp(bytes, "\x89PNG\r\n\x1a\n", 8) == 0;
    const bool jpeg = size >= 3 && bytes[0] == 0xFF && bytes[1] == 0xD8 && bytes[2] == 0xFF;
    const bool bmp = size >= 2 && bytes[0] == 'B' && bytes[1] == 'M';
    if (!png && !jpeg && !bmp)
        throw format_error(core::describe("unknown image type", name, "JPEG, PNG or BMP data (by its first bytes)",
                                          size >= 4 ? "other bytes" : "a truncated file"));
    if (png)
        for (std::size_t at = 8; at < size;) {
            if (size - at < 12)
                throw format_error(core::describe("truncated PNG chunk", name + " byte " + std::to_string(at), "12 bytes or more",
                                                  size - at));
            const std::size_t len = (std::size_t{bytes[at]} << 24) | (std::size_t{bytes[at + 1]} << 16) |
                                    (std::size_t{bytes[at + 2]} << 8) | std::size_t{bytes[at + 3]};
            if (len > size - at - 12)
                throw format_error(core::describe("PNG chunk runs past the end of the file", name + " byte " + std::to_string(at),
                                                  "<= " + std::to_string(size - at - 12) + " bytes", len));
            if (std::memcmp(bytes + at + 4, "IEND", 4) == 0) break;
            at += len + 12;
        }
    int w = 0, h = 0, c = 0;
    if (!stbi_info_from_memory(bytes, static_cast<int>(size), &w, &h, &c))
        throw format_error(core::describe("cannot read image header", name, "JPEG, PNG or BMP", stbi_failure_reason()));
    if (w <= 0 || h <= 0 || static_cast<std::size_t>(w) > limits.max_side || static_cast<std::size_t>(h) > limits.max_side ||
        static_cast<std::size_t>(w) * static_cast<std::size_t>(h) > limits.max_pixels)
        throw format_error(core::describe("image dimensions out of range", name,
                                          "<= " + std::to_string(limits.max_side) + " px a side and <= " +
                                              std::to_string(limits.max_pixels) + " pixels",
                                          std::to_string(w) + " x " + std::to_string(h)));
    std::unique_ptr<stbi_uc, void (*)(void*)> px(stbi_load_from_memory(bytes, static_cast<int>(size), &w, &h, &c, 3), stbi_image_free);
    if (!px) throw format_error(core::describe("cannot decode image", name, "a complete JPEG, PNG or BMP", stbi_failure_reason()));
    image img;
    img.width = static_cast<std::size_t>(w);
    img.height = static_cast<std::size_t>(h);
    img.rgb.assign(px.get(), px.get() + img.width * img.height * 3);
    return img;
}

inline image load_image(const std::string& path, image_limits limits = {}) {
    core::require_regular_file(path, "cannot open image");
    std::ifstream in(path, std::ios::binary);
    if (!in) throw format_error(core::describe("cannot open image", path, "a readable file", "no such file or no permission"));
    in.seekg(0, std::ios::end);
    const auto size = static_cast<std::size_t>(in.tellg());
    if (size > static_cast<std::size_t>(INT32_MAX)) throw format_error(core::describe("image file too large", path, "< 2 GiB", size));
    in.seekg(0);
    std::vector<std::uint8_t> bytes(size);
    in.read(reinterpret_cast<char*>(bytes.data()), static_cast<std::streamsize>(size));
    return decode_image(bytes.data(), bytes.size(), path, limits);
}

namespace detail {
// Encodes 8-bit pixels (channels 1, 3 or 4) with stb_image_write in memory, then writes the file
// with every write checked (a full disk or /dev/full is an error naming the reason, not a silent
// success). `what` is "PNG" or "JPEG"; `encode(append, ctx)` returns stb's status.
template <class Encode>
void write_encoded(const std::string& path, std::size_t width, std::size_t height, int channels, const char* what, Encode encode) {
    if (width == 0 || height == 0 || width > 65535 || height > 65535 || (channels != 1 && channels != 3 && channels != 4))
        throw value_error(core::describe(std::string(what) + " size", path, "1..65535 pixels a side, 1, 3 or 4 channels",
                                         std::to_string(width) + "x" + std::to_string(height) + "x" + std::to_string(channels)));
    std::string bytes;
    const auto append = [](void* ctx, void* chunk, int n) { static_cast<std::string*>(ctx)->append(static_cast<const char*>(chunk), static_cast<std::size_t>(n)); };
    if (!encode(+append, static_cast<void*>(&bytes)))
        throw format_error(core::describe(std::string("cannot encode ") + what, path, "an encodable image", "stb_image_write failed (out of memory)"));
    core::write_file_checked(path, bytes, what);
}
}  // namespace detail

// Writes 8-bit pixels (channels 1, 3 or 4) as PNG.
inline void write_png(const std::string& path, std::size_t width, std::size_t height, int channels, const std::uint8_t* data) {
    detail::write_encoded(path, width, height, channels, "PNG", [&](stbi_write_func* f, void* ctx) {
        return stbi_write_png_to_func(f, ctx, static_cast<int>(width), static_cast<int>(height), channels, data, static_cast<int>(width) * channels);
    });
}

// Writes 8-bit pixels (channels 1, 3 or 4; alpha is dropped) as baseline JPEG at `quality` 1..100
// (stb_image_write's encoder: 4:2:0 chroma up to quality 90, 4:4:4 above).
inline void write_jpeg(const std::string& path, std::size_t width, std::size_t height, int channels, const std::uint8_t* data, int quality) {
    if (quality < 1 || quality > 100) throw value_error(core::describe("JPEG quality", path, "1..100", quality));
    detail::write_encoded(path, width, height, channels, "JPEG", [&](stbi_write_func* f, void* ctx) {
        return stbi_write_jpg_to_func(f, ctx, static_cast<int>(width), static_cast<int>(height), channels, data, quality);
    });
}
inline void write_png(const std::string& path, const image& img) { write_png(path, img.width, img.height, 3, img.rgb.data()); }

}  // namespace pali3::io
