// Files the library reads and writes: only regular files are opened for reading (a FIFO with no
// writer would block forever, a directory reads as a huge or empty stream), and writes are
// checked to the end, with the system's reason in the message.
#pragma once

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>
#include <string_view>

#include "pali3/core/error.hpp"

namespace pali3::core {

// What a path is, in words ("a regular file", "a directory", "a FIFO", ..., or the reason stat failed).
inline std::string file_kind(const std::string& path) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) return std::strerror(errno);
    if (S_ISREG(st.st_mode)) return "a regular file";
    if (S_ISDIR(st.st_mode)) return "a directory";
    if (S_ISFIFO(st.st_mode)) return "a FIFO";
    if (S_ISSOCK(st.st_mode)) return "a socket";
    if (S_ISCHR(st.st_mode)) return "a character device";
    if (S_ISBLK(st.st_mode)) return "a block device";
    return "not a regular file";
}

// Throws format_error("<failure> (at path): expected a regular file, found a directory") unless
// `path` is a regular file (links followed). Checked before opening: opening a FIFO blocks.
inline void require_regular_file(const std::string& path, std::string_view failure) {
    struct stat st {};
    if (::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode)) return;
    throw format_error(describe(failure, path, "a regular file", file_kind(path)));
}

// Writes `bytes` to `path`; every write and the close are checked, and a failure names the
// system's reason (a full disk, /dev/full, a read-only directory...). A regular file (or a new
// one) is written whole to a temporary file beside it, then renamed over it: a program that
// has the old file memory-mapped (a caption running while `convert` or training rewrites the
// checkpoint) keeps reading the old bytes instead of dying of SIGBUS on a truncated map, and a
// failed write leaves the old file as it was. Devices and FIFOs are written in place.
inline void write_file_checked(const std::string& path, std::string_view bytes, std::string_view what) {
    struct stat st {};
    const bool exists = ::stat(path.c_str(), &st) == 0;
    const bool replace = !exists || S_ISREG(st.st_mode);
    const std::string target = replace ? path + ".pali3-tmp-" + std::to_string(::getpid()) : path;
    std::FILE* f = std::fopen(target.c_str(), "wb");
    if (!f) throw format_error(describe(std::string("cannot create ") + std::string(what), path, "a writable path", std::strerror(errno)));
    const std::size_t put = bytes.empty() ? 0 : std::fwrite(bytes.data(), 1, bytes.size(), f);
    int err = put == bytes.size() ? 0 : errno;
    if (std::fflush(f) != 0 && err == 0) err = errno ? errno : EIO;
    if (std::fclose(f) != 0 && err == 0) err = errno ? errno : EIO;
    if (err == 0 && replace && std::rename(target.c_str(), path.c_str()) != 0) err = errno ? errno : EIO;
    if (err != 0) {
        if (replace) std::remove(target.c_str());
        throw format_error(describe(std::string("cannot write ") + std::string(what), path,
                                    std::to_string(bytes.size()) + " bytes written", std::strerror(err)));
    }
}

}  // namespace pali3::core
