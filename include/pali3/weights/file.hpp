// Bytes of a checkpoint: a read-only memory map of a file (zero copy, pages loaded on use) or a
// buffer already in memory (tests, fuzzers). Readers take a `byte_buffer` and never read outside
// [data, data + size); the shared owner keeps the mapping alive for every tensor view handed out.
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
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

// Files mapped by map_file(), for the SIGBUS guard below: a fixed table written with atomics (the
// signal handler may only read it), 64 slots; a mapping that finds no free slot is simply not
// named in the guard's message (it then gets the default SIGBUS).
namespace mapping_table {
struct slot {
    std::atomic<int> state{0};  // 0 free, 1 being written, 2 live
    const std::uint8_t* base = nullptr;
    std::size_t size = 0;
    char name[240] = {};
};
inline slot slots[64];
inline struct sigaction previous {};
inline std::atomic<bool> guarded{false};

inline slot* add(const void* base, std::size_t size, const std::string& name) {
    for (auto& s : slots) {
        int free = 0;
        if (!s.state.compare_exchange_strong(free, 1)) continue;
        s.base = static_cast<const std::uint8_t*>(base);
        s.size = size;
        const std::size_t n = std::min(name.size(), sizeof s.name - 1);
        std::memcpy(s.name, name.data(), n);
        s.name[n] = 0;
        s.state.store(2);
        return &s;
    }
    return nullptr;
}
inline void remove(slot* s) {
    if (s) s->state.store(0);
}

// Async-signal-safe: write(2) and _exit only.
inline void put(const char* s) {
    const std::size_t n = std::strlen(s);
    if (::write(2, s, n) < 0) return;
}
inline void put_number(std::size_t v) {
    char buf[24];
    char* p = buf + sizeof buf;
    *--p = 0;
    do *--p = static_cast<char>('0' + v % 10);
    while ((v /= 10) != 0);
    put(p);
}
inline void on_sigbus(int sig, siginfo_t* info, void* context) {
    const auto* addr = static_cast<const std::uint8_t*>(info ? info->si_addr : nullptr);
    for (auto& s : slots) {
        if (s.state.load() != 2 || addr < s.base || addr >= s.base + s.size) continue;
        put("pali3: error: file changed while in use (at ");
        put(s.name);
        put("): expected the bytes mapped when it was opened, found the file truncated (read at offset ");
        put_number(static_cast<std::size_t>(addr - s.base));
        put(" of ");
        put_number(s.size);
        put(" bytes); another program rewrote it in place: let it finish, or write to a new file and rename\n");
        ::_exit(1);
    }
    // Not one of our mappings: what was there before (by default, the fault's core dump).
    if (previous.sa_flags & SA_SIGINFO) {
        if (previous.sa_sigaction) return previous.sa_sigaction(sig, info, context);
    } else if (previous.sa_handler != SIG_DFL && previous.sa_handler != SIG_IGN && previous.sa_handler) {
        return previous.sa_handler(sig);
    }
    ::signal(SIGBUS, SIG_DFL);  // returning re-runs the faulting read, which now takes the default action
}
}  // namespace mapping_table

// A mapped checkpoint that another program truncates in place while we read it faults with SIGBUS
// on the next read of a lost page (the kernel has no bytes to give; no library can turn that into
// an exception). Programs may opt in to a clear exit instead: this installs a SIGBUS handler that,
// for an address inside a file mapped by map_file(), prints which file changed and exits with
// status 1; other faults keep the previous handler. The `pali3` command line calls it at start.
// Idempotent; process-wide (a signal handler), so a library never installs it on its own.
inline void guard_mapped_files() {
    if (mapping_table::guarded.exchange(true)) return;
    struct sigaction sa {};
    sa.sa_sigaction = mapping_table::on_sigbus;
    sa.sa_flags = SA_SIGINFO;
    sigemptyset(&sa.sa_mask);
    ::sigaction(SIGBUS, &sa, &mapping_table::previous);
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
    auto* named = mapping_table::add(p, size, path);
    b.owner = std::shared_ptr<const void>(p, [size, named](const void* q) {
        mapping_table::remove(named);
        ::munmap(const_cast<void*>(q), size);
    });
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
