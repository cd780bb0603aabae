// Bytes of a checkpoint: a read-only memory map of a file (zero copy, pages loaded on use) or a
// buffer already in memory (tests, fuzzers). Readers take a `byte_buffer` and never read outside
// [data, data + size); the shared owner keeps the mapping alive for every tensor view handed out.
#pragma once

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "pali3/core/error.hpp"
#include "pali3/core/files.hpp"

namespace pali3::weights {

struct byte_buffer {
    std::shared_ptr<const void> owner;
    const std::uint8_t* data = nullptr;
    std::size_t size = 0;
    std::string name;  // file path or a label, for messages

    std::string_view view(std::size_t offset, std::size_t count) const {
        return {reinterpret_cast<const char*>(data) + offset, count};
    }
};

// Copies `bytes` into an owned buffer.
inline byte_buffer buffer_from(std::vector<std::uint8_t> bytes, std::string name = "<memory>") {
    auto owned = std::make_shared<std::vector<std::uint8_t>>(std::move(bytes));
    byte_buffer b;
    b.data = owned->data();
    b.size = owned->size();
    b.owner = std::move(owned);
    b.name = std::move(name);
    return b;
}

// Maps `path` read-only. Throws format_error naming the path and the OS error.
inline byte_buffer map_file(const std::string& path) {
    core::require_regular_file(path, "cannot open file");  // before open(): a FIFO would block it
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) throw format_error(core::describe("cannot open file", path, "a readable file", std::strerror(errno)));
    struct stat st {};
    if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        const int err = errno;
        ::close(fd);
        throw format_error(core::describe("cannot read file", path, "a regular file", err ? std::strerror(err) : "not a regular file"));
    }
    byte_buffer b;
    b.name = path;
    b.size = static_cast<std::size_t>(st.st_size);
    if (b.size == 0) {
        ::close(fd);
        b.data = reinterpret_cast<const std::uint8_t*>("");
        return b;
    }
    void* p = ::mmap(nullptr, b.size, PROT_READ, MAP_PRIVATE, fd, 0);
    const int err = errno;
    ::close(fd);
    if (p == MAP_FAILED) throw format_error(core::describe("cannot map file", path, "mmap to succeed", std::strerror(err)));
    const std::size_t size = b.size;
    b.owner = std::shared_ptr<const void>(p, [size](const void* q) { ::munmap(const_cast<void*>(q), size); });
    b.data = static_cast<const std::uint8_t*>(p);
    return b;
}

// Writes `bytes` to `path` (truncating). Throws format_error on failure.
inline void write_file(const std::string& path, std::string_view bytes) { core::write_file_checked(path, bytes, "file"); }

// Little-endian loads from unaligned bytes.
inline std::uint64_t load_le(const std::uint8_t* p, std::size_t bytes) {
    std::uint64_t v = 0;
    for (std::size_t i = 0; i < bytes; ++i) v |= static_cast<std::uint64_t>(p[i]) << (8 * i);
    return v;
}
inline void store_le(std::string& out, std::uint64_t v, std::size_t bytes) {
    for (std::size_t i = 0; i < bytes; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xFF));
}

// Product of dims with overflow checking (element counts from untrusted headers).
inline bool checked_product(const std::vector<std::size_t>& dims, std::size_t scale, std::size_t& out) {
    std::size_t n = scale;
    for (const auto d : dims)
        if (__builtin_mul_overflow(n, d, &n)) return false;
    out = n;
    return true;
}

}  // namespace pali3::weights
