// big_vision / numpy `.npz` checkpoints: a zip archive of `.npy` arrays, keys joined with '/'
// (`img/Transformer/encoderblock_3/MlpBlock_0/Dense_0/kernel`).
//
// Zip: end-of-central-directory and ZIP64 records, stored (method 0, zero copy from the map) and
// deflate (method 8, inflated by the deflate decoder of Debian's libstb into a buffer of exactly
// the declared size, CRC-32 checked) entries; encrypted or other methods are rejected.
// npy: versions 1-3, little-endian '<f4' '<f2' '<f8' (converted to f32), and the void '|V2' that
// big_vision writes for bfloat16 (ml_dtypes has no numpy descr); other dtypes are listed but not
// loadable as weights; Fortran order is rejected.
// Bounds: every offset is checked against the file, npy headers are <= 1 MiB, a deflate entry may
// expand at most 1032x (the format's limit) and to < 2 GiB, names are unique — a hostile file gets a
// pali3::format_error naming the entry, never an out-of-bounds read or an unbounded allocation.
#pragma once

#include <stb_image.h>

#include <array>
#include <climits>
#include <cstdint>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "pali3/core/error.hpp"
#include "pali3/weights/file.hpp"
#include "pali3/weights/memory_source.hpp"
#include "pali3/weights/source.hpp"

namespace pali3::weights {

namespace npz_detail {

inline std::uint32_t crc32(const std::uint8_t* p, std::size_t n, std::uint32_t crc = 0) {
    static const auto table = [] {
        std::array<std::uint32_t, 256> t{};
        for (std::uint32_t i = 0; i < 256; ++i) {
            std::uint32_t c = i;
            for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
            t[i] = c;
        }
        return t;
    }();
    crc = ~crc;
    for (std::size_t i = 0; i < n; ++i) crc = table[(crc ^ p[i]) & 0xFF] ^ (crc >> 8);
    return ~crc;
}

inline constexpr std::size_t max_npy_header = 1 << 20;
inline constexpr std::uint64_t max_inflated = INT_MAX;  // the decoder's int sizes

struct zip_entry {
    std::string name;  // without ".npy"
    std::uint16_t method = 0;
    std::uint32_t crc = 0;
    std::uint64_t compressed = 0, uncompressed = 0;
    std::uint64_t data_offset = 0;  // of the entry's bytes in the archive
};

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
inline npy_array parse_npy(const std::uint8_t* p, std::size_t n, const std::string& where) {
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
    if (!checked_product(a.shape, esize, nbytes) || nbytes != n - start - header_len)
        throw format_error(core::describe("npy data size does not match its shape and dtype", where,
                                          shape_string(a.shape) + " x " + std::to_string(esize) + " bytes",
                                          std::to_string(n - start - header_len) + " bytes"));
    a.data = p + start + header_len;
    a.bytes = nbytes;
    return a;
}

// Reads the zip central directory (with ZIP64 records) into entries; validates every range.
inline std::vector<zip_entry> parse_zip(const byte_buffer& b) {
    const std::string& where = b.name;
    const std::uint8_t* p = b.data;
    const std::size_t n = b.size;
    if (n < 22) throw format_error(core::describe("truncated zip archive", where, ">= 22 bytes", n));
    // End of central directory: the last signature within the final 64 KiB + 22 bytes.
    std::size_t eocd = std::string::npos;
    const std::size_t lowest = n > 22 + 65535 ? n - 22 - 65535 : 0;
    for (std::size_t i = n - 22 + 1; i-- > lowest;)
        if (load_le(p + i, 4) == 0x06054b50) { eocd = i; break; }
    if (eocd == std::string::npos)
        throw format_error(core::describe("not a zip archive", where, "an end-of-central-directory record", "none"));
    std::uint64_t count = load_le(p + eocd + 10, 2);
    std::uint64_t cd_size = load_le(p + eocd + 12, 4);
    std::uint64_t cd_offset = load_le(p + eocd + 16, 4);
    if ((count == 0xFFFF || cd_size == 0xFFFFFFFF || cd_offset == 0xFFFFFFFF) && eocd >= 20 &&
        load_le(p + eocd - 20, 4) == 0x07064b50) {
        const std::uint64_t z64 = load_le(p + eocd - 20 + 8, 8);
        if (z64 > n - 56 || n < 56 || load_le(p + z64, 4) != 0x06064b50)
            throw format_error(core::describe("bad ZIP64 end record", where, "a record inside the file", z64));
        count = load_le(p + z64 + 32, 8);
        cd_size = load_le(p + z64 + 40, 8);
        cd_offset = load_le(p + z64 + 48, 8);
    }
    if (cd_offset > n || cd_size > n - cd_offset)
        throw format_error(core::describe("central directory outside the file", where,
                                          "offset + size <= " + std::to_string(n), std::to_string(cd_offset) + " + " + std::to_string(cd_size)));
    if (count > cd_size / 46)
        throw format_error(core::describe("entry count does not fit the central directory", where,
                                          "<= " + std::to_string(cd_size / 46), count));
    std::vector<zip_entry> out;
    std::size_t pos = static_cast<std::size_t>(cd_offset);
    const std::size_t cd_end = static_cast<std::size_t>(cd_offset + cd_size);
    for (std::uint64_t k = 0; k < count; ++k) {
        if (cd_end - pos < 46 || load_le(p + pos, 4) != 0x02014b50)
            throw format_error(core::describe("bad central directory entry", where + " entry " + std::to_string(k),
                                              "signature PK\\1\\2", "other bytes"));
        zip_entry e;
        const auto flags = load_le(p + pos + 8, 2);
        e.method = static_cast<std::uint16_t>(load_le(p + pos + 10, 2));
        e.crc = static_cast<std::uint32_t>(load_le(p + pos + 16, 4));
        e.compressed = load_le(p + pos + 20, 4);
        e.uncompressed = load_le(p + pos + 24, 4);
        const std::size_t name_len = load_le(p + pos + 28, 2), extra_len = load_le(p + pos + 30, 2),
                          comment_len = load_le(p + pos + 32, 2);
        std::uint64_t local = load_le(p + pos + 42, 4);
        if (cd_end - pos - 46 < name_len + extra_len + comment_len)
            throw format_error(core::describe("central directory entry runs past its end", where + " entry " + std::to_string(k),
                                              "name and extra fields inside", "overrun"));
        std::string name(reinterpret_cast<const char*>(p + pos + 46), name_len);
        // ZIP64 extra field: the 8-byte values whose 4-byte fields are saturated, in order.
        for (std::size_t x = pos + 46 + name_len, xe = x + extra_len; x + 4 <= xe;) {
            const auto id = load_le(p + x, 2), len = load_le(p + x + 2, 2);
            if (x + 4 + len > xe) break;
            if (id == 0x0001) {
                std::size_t f = x + 4;
                const auto take = [&](std::uint64_t& v) {
                    if (f + 8 > x + 4 + len)
                        throw format_error(core::describe("short ZIP64 extra field", where + ": " + name, "8 more bytes", "end of field"));
                    v = load_le(p + f, 8);
                    f += 8;
                };
                if (e.uncompressed == 0xFFFFFFFF) take(e.uncompressed);
                if (e.compressed == 0xFFFFFFFF) take(e.compressed);
                if (local == 0xFFFFFFFF) take(local);
            }
            x += 4 + len;
        }
        pos += 46 + name_len + extra_len + comment_len;
        if (name.size() >= 1 && name.back() == '/') continue;  // a directory entry
        const std::string at = where + ": " + name;
        if (flags & 1) throw format_error(core::describe("encrypted zip entry", at, "no encryption", "flag bit 0 set"));
        if (e.method != 0 && e.method != 8)
            throw format_error(core::describe("unsupported zip compression", at, "stored (0) or deflate (8)", e.method));
        if (local > n || n - local < 30 || load_le(p + local, 4) != 0x04034b50)
            throw format_error(core::describe("bad local header", at, "signature PK\\3\\4 inside the file", local));
        const std::uint64_t data = local + 30 + load_le(p + local + 26, 2) + load_le(p + local + 28, 2);
        if (data > n || e.compressed > n - data)
            throw format_error(core::describe("zip entry data outside the file", at,
                                              "end <= " + std::to_string(n), std::to_string(data) + " + " + std::to_string(e.compressed)));
        if (e.method == 0 && e.compressed != e.uncompressed)
            throw format_error(core::describe("stored zip entry with different sizes", at, e.compressed, e.uncompressed));
        if (e.method == 8 && (e.uncompressed > max_inflated || e.uncompressed > e.compressed * 1032 + 64))
            throw format_error(core::describe("implausible deflate expansion (zip bomb?)", at,
                                              "<= 1032x the compressed size and < 2 GiB",
                                              std::to_string(e.compressed) + " -> " + std::to_string(e.uncompressed) + " bytes"));
        e.data_offset = data;
        if (name.size() > 4 && name.compare(name.size() - 4, 4, ".npy") == 0) name.resize(name.size() - 4);
        e.name = std::move(name);
        out.push_back(std::move(e));
    }
    return out;
}

}  // namespace npz_detail

class npz_source {
public:
    static npz_source open(const std::string& path) { return npz_source(map_file(path)); }
    static npz_source from_buffer(byte_buffer bytes) { return npz_source(std::move(bytes)); }

    bool contains(const std::string& name) const { return index_.count(name) != 0; }

    tensor_data get(const std::string& name, const shape_t& expected) const {
        if (!contains(name))
            throw format_error(core::describe("missing tensor", name, "a tensor of shape " + shape_string(expected),
                                              "no such name in " + bytes_.name));
        tensor_data t = get_raw(name);
        check_shape(t, name, expected);
        return t;
    }

    // The array as stored (f64 converted to f32), whatever its shape.
    tensor_data get_raw(const std::string& name) const {
        const auto it = index_.find(name);
        if (it == index_.end())
            throw format_error(core::describe("missing tensor", name, "a tensor", "no such name in " + bytes_.name));
        auto [array, keep] = array_of(entries_[it->second]);
        tensor_data t;
        t.shape = array.shape;
        const std::string& d = array.descr;
        const std::size_t n = shape_size(array.shape);
        bool loadable = false;
        npz_detail::descr_size(d, &loadable);
        if (!loadable)
            throw format_error(core::describe("array dtype cannot be loaded as a weight", name, "<f4, <f2, <f8 or |V2 (bfloat16)", d));
        if (d == "<f8") t.set_from_f64(array.data, n);
        else t.set_stored(d == "<f4" ? dtype::f32 : d == "<f2" ? dtype::f16 : dtype::bf16, array.data, array.bytes, keep);
        return t;
    }

    std::vector<std::string> names() const {
        std::vector<std::string> out;
        for (const auto& [n, _] : index_) out.push_back(n);
        return out;
    }

    // Every entry's dtype and shape (inflates deflate entries one at a time).
    std::vector<tensor_info> list() const {
        std::vector<tensor_info> out;
        for (const auto& [n, i] : index_) {
            const auto array = array_of(entries_[i]).first;
            out.push_back({n, array.descr, array.shape, array.bytes});
        }
        return out;
    }

    const std::string& path() const { return bytes_.name; }

private:
    explicit npz_source(byte_buffer bytes) : bytes_(std::move(bytes)) {
        entries_ = npz_detail::parse_zip(bytes_);
        for (std::size_t i = 0; i < entries_.size(); ++i) {
            if (!index_.emplace(entries_[i].name, i).second)
                throw format_error(core::describe("duplicate array name", bytes_.name + ": " + entries_[i].name, "unique names", "twice"));
            if (entries_[i].method == 0) array_of(entries_[i]);  // validate stored arrays up front
        }
    }

    // The npy array of an entry, plus the owner of its bytes (the map, or an inflated buffer).
    std::pair<npz_detail::npy_array, std::shared_ptr<const void>> array_of(const npz_detail::zip_entry& e) const {
        const std::string at = bytes_.name + ": " + e.name;
        const std::uint8_t* src = bytes_.data + e.data_offset;
        if (e.method == 0)
            return {npz_detail::parse_npy(src, static_cast<std::size_t>(e.uncompressed), at), bytes_.owner};
        auto out = std::make_shared<std::vector<std::uint8_t>>(static_cast<std::size_t>(e.uncompressed));
        // The decoder may look a few bytes past the end of the stream: give it a zero-padded copy.
        int got = -1;
        if (e.compressed <= static_cast<std::uint64_t>(INT_MAX) - 64) {
            std::vector<char> in(static_cast<std::size_t>(e.compressed) + 64, '\0');
            std::memcpy(in.data(), src, static_cast<std::size_t>(e.compressed));
            got = stbi_zlib_decode_noheader_buffer(reinterpret_cast<char*>(out->data()), static_cast<int>(out->size()), in.data(),
                                                   static_cast<int>(in.size()));
        }
        if (got < 0 || static_cast<std::uint64_t>(got) != e.uncompressed)
            throw format_error(core::describe("corrupt deflate data", at, std::to_string(e.uncompressed) + " inflated bytes",
                                              got < 0 ? std::string("a decoding error") : std::to_string(got) + " bytes"));
        if (npz_detail::crc32(out->data(), out->size()) != e.crc)
            throw format_error(core::describe("CRC-32 mismatch", at, e.crc, npz_detail::crc32(out->data(), out->size())));
        auto array = npz_detail::parse_npy(out->data(), out->size(), at);
        return {array, std::move(out)};
    }

    byte_buffer bytes_;
    std::vector<npz_detail::zip_entry> entries_;
    std::map<std::string, std::size_t> index_;
};

static_assert(weight_source<npz_source>);

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
    const std::string_view descr = t.type == dtype::f32 ? "<f4" : t.type == dtype::f16 ? "<f2" : "|V2";
    return npy_bytes(descr, t.shape, t.data, t.size() * dtype_size(t.type));
}

// A zip (stored entries, ZIP64 records when offsets pass 4 GiB, or always with `force_zip64`)
// of named byte strings.
inline std::string zip_stored(const std::vector<std::pair<std::string, std::string>>& files, bool force_zip64 = false) {
    std::string out, central;
    for (const auto& [name, bytes] : files) {
        const std::uint64_t offset = out.size();
        const auto crc = npz_detail::crc32(reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size());
        const bool big = force_zip64 || bytes.size() >= 0xFFFFFFFFull || offset >= 0xFFFFFFFFull;
        std::string extra;
        if (big) {
            store_le(extra, 0x0001, 2);
            store_le(extra, 24, 2);
            store_le(extra, bytes.size(), 8);
            store_le(extra, bytes.size(), 8);
            store_le(extra, offset, 8);
        }
        const std::uint64_t size32 = big ? 0xFFFFFFFFull : bytes.size();
        store_le(out, 0x04034b50, 4);
        store_le(out, big ? 45 : 20, 2);
        store_le(out, 0, 2);
        store_le(out, 0, 2);
        store_le(out, 0, 4);  // time, date
        store_le(out, crc, 4);
        store_le(out, size32, 4);
        store_le(out, size32, 4);
        store_le(out, name.size(), 2);
        store_le(out, big ? 20 : 0, 2);
        out += name;
        if (big) {
            store_le(out, 0x0001, 2);
            store_le(out, 16, 2);
            store_le(out, bytes.size(), 8);
            store_le(out, bytes.size(), 8);
        }
        out += bytes;
        store_le(central, 0x02014b50, 4);
        store_le(central, 45, 2);
        store_le(central, big ? 45 : 20, 2);
        store_le(central, 0, 2);
        store_le(central, 0, 2);
        store_le(central, 0, 4);
        store_le(central, crc, 4);
        store_le(central, size32, 4);
        store_le(central, size32, 4);
        store_le(central, name.size(), 2);
        store_le(central, extra.size(), 2);
        store_le(central, 0, 2);
        store_le(central, 0, 2);
        store_le(central, 0, 2);
        store_le(central, 0, 4);
        store_le(central, big ? 0xFFFFFFFFull : offset, 4);
        central += name;
        central += extra;
    }
    const std::uint64_t cd_offset = out.size();
    out += central;
    const bool z64 = force_zip64 || cd_offset >= 0xFFFFFFFFull || files.size() >= 0xFFFF;
    if (z64) {
        const std::uint64_t rec = out.size();
        store_le(out, 0x06064b50, 4);
        store_le(out, 44, 8);
        store_le(out, 45, 2);
        store_le(out, 45, 2);
        store_le(out, 0, 4);
        store_le(out, 0, 4);
        store_le(out, files.size(), 8);
        store_le(out, files.size(), 8);
        store_le(out, central.size(), 8);
        store_le(out, cd_offset, 8);
        store_le(out, 0x07064b50, 4);
        store_le(out, 0, 4);
        store_le(out, rec, 8);
        store_le(out, 1, 4);
    }
    store_le(out, 0x06054b50, 4);
    store_le(out, 0, 2);
    store_le(out, 0, 2);
    store_le(out, z64 ? 0xFFFF : files.size(), 2);
    store_le(out, z64 ? 0xFFFF : files.size(), 2);
    store_le(out, z64 ? 0xFFFFFFFFull : central.size(), 4);
    store_le(out, z64 ? 0xFFFFFFFFull : cd_offset, 4);
    store_le(out, 0, 2);
    return out;
}

// Writes every tensor of a memory source as `name.npy` entries of one `.npz` (np.savez layout).
inline void write_npz(const std::string& path, const memory_source& src) {
    std::vector<std::pair<std::string, std::string>> files;
    for (const auto& name : src.names()) files.emplace_back(name + ".npy", npy_bytes(*src.find(name)));
    write_file(path, zip_stored(files));
}

}  // namespace pali3::weights
