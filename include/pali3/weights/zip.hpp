// Zip archives as checkpoints use them (numpy's .npz): the central directory with ZIP64 records,
// every range validated against the file (a hostile archive gets a format_error naming the entry,
// never an out-of-bounds read); CRC-32; and a writer of stored entries.
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

inline constexpr std::uint64_t max_inflated = INT_MAX;  // the decoder's int sizes

struct zip_entry {
    std::string name;  // without ".npy"
    std::uint16_t method = 0;
    std::uint32_t crc = 0;
    std::uint64_t compressed = 0, uncompressed = 0;
    std::uint64_t data_offset = 0;  // of the entry's bytes in the archive
};

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

// A zip (stored entries, ZIP64 records when offsets pass 4 GiB, or always with `force_zip64`)
// of named byte strings.
inline std::string zip_stored(const std::vector<std::pair<std::string, std::string>>& files, bool force_zip64 = false) {
    std::string out, central;
    for (const auto& [name, bytes] : files) {
        const std::uint64_t offset = out.size();
        const auto crc = crc32(reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size());
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

}  // namespace pali3::weights
