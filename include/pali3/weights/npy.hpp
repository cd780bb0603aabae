// numpy .npy arrays: versions 1-3, little-endian '<f4' '<f2' '<f8', integer '<i4' '<i8', and the
// void '|V2' that big_vision writes for bfloat16; Fortran order rejected, headers <= 1 MiB, data
// size checked against shape and dtype. A reader into a view, and a writer.
#pragma once

#include <array>
#include <climits>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "pali3/core/error.hpp"
#include "pali3/weights/file.hpp"
#include "pali3/weights/source.hpp"

namespace pali3::weights {

inline constexpr std::size_t max_npy_header = 1 << 20;

// A parsed npy array: dtype descr, shape, where its data lives.
struct npy_array {
    std::string descr;
    shape_t shape;
    const std::uint8_t* data = nullptr;
    std::size_t bytes = 0;
};

// Element size for a descr, 0 for unknown; `loadable` says whether it can become a weight.
inline std::size_t descr_size(std::string_view d, bool* loadable = nullptr) {
    struct row { std::string_view d; std::size_t s; bool w; };
    static constexpr row rows[] = {{"<f4", 4, true}, {"<f2", 2, true}, {"<f8", 8, true}, {"|V2", 2, true},
                                   {"<V2", 2, true}, {"<i8", 8, false}, {"<i4", 4, false}, {"<i2", 2, false},
                                   {"|i1", 1, false}, {"|u1", 1, false}, {"|b1", 1, false}, {"<u4", 4, false},
                                   {"<u8", 8, false}, {"<u2", 2, false}, {">f4", 4, false}, {">f2", 2, false},
                                   {">f8", 8, false}};
    for (const auto& r : rows)
        if (r.d == d) {
            if (loadable) *loadable = r.w;
            return r.s;
        }
    if (loadable) *loadable = false;
    return 0;
}

// Parses the npy bytes of one entry (`where` names it in errors).
// `n` bytes at `p` hold the whole array; or, with `total` > 0, only the first `n` bytes of an
// array of `total` bytes (a compressed entry inflated only as far as its header): then the
// header is parsed and checked against `total`, and `data` is null.
inline npy_array parse_npy(const std::uint8_t* p, std::size_t n, const std::string& where, std::size_t total = 0) {
    static constexpr char magic[] = "\x93NUMPY";
    if (n < 10 || std::memcmp(p, magic, 6) != 0)
        throw format_error(core::describe("not an npy array", where, "the \\x93NUMPY magic", n < 10 ? "a truncated entry" : "other bytes"));
    const unsigned major = p[6];
    std::size_t header_len = 0, start = 0;
    if (major == 1) {
        header_len = static_cast<std::size_t>(load_le(p + 8, 2));
        start = 10;
    } else if (major == 2 || major == 3) {
        if (n < 12) throw format_error(core::describe("truncated npy header", where, ">= 12 bytes", n));
        header_len = static_cast<std::size_t>(load_le(p + 8, 4));
        start = 12;
    } else {
        throw format_error(core::describe("unsupported npy version", where, "1, 2 or 3", major));
    }
    if (header_len > max_npy_header)
        throw format_error(core::describe("npy header too large", where, "<= 1048576 bytes", header_len));
    if (header_len > n - start)
        throw format_error(core::describe("npy header runs past the entry", where, "<= " + std::to_string(n - start) + " bytes", header_len));
    const std::string_view h(reinterpret_cast<const char*>(p + start), header_len);

    // The header is a Python dict literal: {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }
    npy_array a;
    bool have_descr = false, have_order = false, have_shape = false;
    std::size_t i = 0;
    const auto fail = [&](std::string_view expected) -> void {
        throw format_error(core::describe("malformed npy header", where + " byte " + std::to_string(i), expected,
                                          "\"" + std::string(h.substr(0, 120)) + "\""));
    };
    const auto ws = [&] { while (i < h.size() && (h[i] == ' ' || h[i] == '\n')) ++i; };
    const auto quoted = [&]() -> std::string {
        ws();
        if (i >= h.size() || (h[i] != '\'' && h[i] != '"')) fail("a quoted string");
        const char q = h[i++];
        const std::size_t end = h.find(q, i);
        if (end == std::string_view::npos) fail("a closing quote");
        std::string s(h.substr(i, end - i));
        i = end + 1;
        return s;
    };
    const auto eat = [&](char c) {
        ws();
        if (i >= h.size() || h[i] != c) fail(std::string("'") + c + "'");
        ++i;
    };
    eat('{');
    for (;;) {
        ws();
        if (i < h.size() && h[i] == '}') break;
        const std::string key = quoted();
        eat(':');
        ws();
        if (key == "descr") {
            a.descr = quoted();
            have_descr = true;
        } else if (key == "fortran_order") {
            if (h.substr(i, 5) == "False") i += 5;
            else if (h.substr(i, 4) == "True")
                throw format_error(core::describe("Fortran-ordered npy arrays are not supported", where, "fortran_order False", "True"));
            else fail("True or False");
            have_order = true;
        } else if (key == "shape") {
            eat('(');
            for (;;) {
                ws();
                if (i < h.size() && h[i] == ')') { ++i; break; }
                std::uint64_t d = 0;
                const std::size_t digits_at = i;
                while (i < h.size() && h[i] >= '0' && h[i] <= '9') {
                    d = d * 10 + static_cast<std::uint64_t>(h[i] - '0');
                    if (d > (std::uint64_t{1} << 48)) fail("a dimension <= 2^48");
                    ++i;
                }
                if (i == digits_at) fail("a dimension");
                a.shape.push_back(static_cast<std::size_t>(d));
                ws();
                if (i < h.size() && h[i] == ',') ++i;
            }
            have_shape = true;
        } else {
            fail("keys descr, fortran_order, shape");
        }
        ws();
        if (i < h.size() && h[i] == ',') ++i;
    }
    if (!have_descr || !have_order || !have_shape) fail("descr, fortran_order and shape");
    const std::size_t esize = descr_size(a.descr);
    if (esize == 0) throw format_error(core::describe("unknown npy dtype", where, "<f4 <f2 <f8 |V2 or an integer type", a.descr));
    std::size_t nbytes = 0;
    const std::size_t full = total ? total : n;
    if (full < start + header_len || !checked_product(a.shape, esize, nbytes) || nbytes != full - start - header_len)
        throw format_error(core::describe("npy data size does not match its shape and dtype", where,
                                          shape_string(a.shape) + " x " + std::to_string(esize) + " bytes",
                                          std::to_string(full < start + header_len ? 0 : full - start - header_len) + " bytes"));
    a.data = total ? nullptr : p + start + header_len;
    a.bytes = nbytes;
    return a;
}

// Serialises arrays as an uncompressed `.npz` (what `np.savez` writes): one npy v1 entry per
// tensor, bf16 as '|V2' like big_vision. `extra` adds integer arrays ('<i8'), e.g. token ids.
inline std::string npy_bytes(std::string_view descr, const shape_t& shape, const void* data, std::size_t bytes) {
    std::string header = "{'descr': '" + std::string(descr) + "', 'fortran_order': False, 'shape': (";
    for (std::size_t i = 0; i < shape.size(); ++i) header += (i ? ", " : "") + std::to_string(shape[i]);
    if (shape.size() == 1) header += ",";
    header += "), }";
    while ((10 + header.size() + 1) % 64 != 0) header.push_back(' ');
    header.push_back('\n');
    std::string out("\x93NUMPY\x01\x00", 8);
    store_le(out, header.size(), 2);
    out += header;
    out.append(static_cast<const char*>(data), bytes);
    return out;
}

inline std::string npy_bytes(const tensor_data& t) {
    const std::string_view descr = t.type == dtype::f32 ? "<f4" : t.type == dtype::f16 ? "<f2" : t.type == dtype::i8 ? "|i1" : "|V2";
    return npy_bytes(descr, t.shape, t.data, t.size() * dtype_size(t.type));
}

}  // namespace pali3::weights
