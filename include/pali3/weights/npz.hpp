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
// Lazy: an entry is inflated only when a model asks for it; listing inflates headers only.
#pragma once

#include <stb_image.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "pali3/core/error.hpp"
#include "pali3/weights/file.hpp"
#include "pali3/weights/memory_source.hpp"
#include "pali3/weights/npy.hpp"
#include "pali3/weights/source.hpp"
#include "pali3/weights/zip.hpp"

namespace pali3::weights {

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
        descr_size(d, &loadable);
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

    // Every entry's dtype and shape. A deflate entry is inflated only as far as its npy header
    // (at most ~1 MB), so listing a file costs nothing like its inflated size.
    std::vector<tensor_info> list() const {
        std::vector<tensor_info> out;
        for (const auto& [n, i] : index_) {
            const auto array = header_of(entries_[i]);
            out.push_back({n, array.descr, array.shape, array.bytes});
        }
        return out;
    }

    const std::string& path() const { return bytes_.name; }

private:
    explicit npz_source(byte_buffer bytes) : bytes_(std::move(bytes)) {
        entries_ = parse_zip(bytes_);
        for (std::size_t i = 0; i < entries_.size(); ++i) {
            if (!index_.emplace(entries_[i].name, i).second)
                throw format_error(core::describe("duplicate array name", bytes_.name + ": " + entries_[i].name, "unique names", "twice"));
            if (entries_[i].method == 0) array_of(entries_[i]);  // validate stored arrays up front
        }
    }

    // The npy header of an entry (data null for a deflate entry): a stored entry is parsed in
    // place; a deflate entry is inflated into a buffer of the header's maximum size. The decoder
    // stops with an error when that buffer is full, after writing it: the header is then parsed
    // from the prefix, checked against the entry's declared size. A stream corrupt within the
    // prefix gives a malformed header; one corrupt later is found by get() (length and CRC-32).
    npy_array header_of(const zip_entry& e) const {
        const std::size_t prefix_max = max_npy_header + 16;
        if (e.method == 0 || e.uncompressed <= prefix_max) return array_of(e).first;
        const std::string at = bytes_.name + ": " + e.name;
        std::vector<char> out(prefix_max, '\0');
        const std::size_t feed = static_cast<std::size_t>(std::min<std::uint64_t>(e.compressed, prefix_max * 4 + 4096));
        std::vector<char> in(feed + 64, '\0');
        std::memcpy(in.data(), bytes_.data + e.data_offset, feed);
        (void)stbi_zlib_decode_noheader_buffer(out.data(), static_cast<int>(out.size()), in.data(), static_cast<int>(in.size()));
        return parse_npy(reinterpret_cast<const std::uint8_t*>(out.data()), out.size(), at, static_cast<std::size_t>(e.uncompressed));
    }

    // The npy array of an entry, plus the owner of its bytes (the map, or an inflated buffer).
    std::pair<npy_array, std::shared_ptr<const void>> array_of(const zip_entry& e) const {
        const std::string at = bytes_.name + ": " + e.name;
        const std::uint8_t* src = bytes_.data + e.data_offset;
        if (e.method == 0)
            return {parse_npy(src, static_cast<std::size_t>(e.uncompressed), at), bytes_.owner};
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
        if (crc32(out->data(), out->size()) != e.crc)
            throw format_error(core::describe("CRC-32 mismatch", at, e.crc, crc32(out->data(), out->size())));
        auto array = parse_npy(out->data(), out->size(), at);
        return {array, std::move(out)};
    }

    byte_buffer bytes_;
    std::vector<zip_entry> entries_;
    std::map<std::string, std::size_t> index_;
};

static_assert(weight_source<npz_source>);

// Writes every tensor of a memory source as `name.npy` entries of one `.npz` (np.savez layout).
inline void write_npz(const std::string& path, const memory_source& src) {
    std::vector<std::pair<std::string, std::string>> files;
    for (const auto& name : src.names()) files.emplace_back(name + ".npy", npy_bytes(*src.find(name)));
    write_file(path, zip_stored(files));
}


}  // namespace pali3::weights
