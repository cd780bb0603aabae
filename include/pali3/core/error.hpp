// pali3 error hierarchy. Every failure the library reports is a pali3::error; the message says
// what went wrong, where (tensor path, file offset, kernel argument), what was expected and what
// was found, so a user can act on it without a debugger.
#pragma once

#include <cmath>
#include <cstddef>
#include <span>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>

namespace pali3 {

class error : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

// A tensor or argument with the wrong shape or size.
class shape_error : public error {
public:
    using error::error;
};

// A configuration whose parts do not fit together (widths, heads, vocabulary...).
class config_error : public error {
public:
    using error::error;
};

// A malformed or unreadable file (checkpoint, image, tokenizer model).
class format_error : public error {
public:
    using error::error;
};

// A value outside its allowed range (token id, thread count, resolution...).
class value_error : public error {
public:
    using error::error;
};

namespace core {

// `s` safe to print: control characters (a terminal's escape sequences) as \xHH, and cut after
// `max` bytes with the count of the rest (a 50 MB config string is not echoed whole).
inline std::string printable(std::string_view s, std::size_t max = 300) {
    std::string out;
    const std::size_t n = s.size() < max ? s.size() : max;
    out.reserve(n + 32);
    for (std::size_t i = 0; i < n; ++i) {
        const auto c = static_cast<unsigned char>(s[i]);
        if (c < 0x20 || c == 0x7f) {
            static constexpr char hex[] = "0123456789abcdef";
            out += "\\x";
            out += hex[c >> 4];
            out += hex[c & 15];
        } else {
            out += static_cast<char>(c);
        }
    }
    if (s.size() > max) out += "... (" + std::to_string(s.size() - max) + " more bytes)";
    return out;
}

// Builds "what (at where): expected E, found F" - the one message format of the library. Where,
// expected and found may come from input files: they are made printable and cut.
template <class Expected, class Found>
std::string describe(std::string_view what, std::string_view where, const Expected& expected,
                     const Found& found) {
    std::ostringstream e, f;
    e << expected;
    f << found;
    std::string out(what);
    if (!where.empty()) out += " (at " + printable(where, 1000) + ")";
    out += ": expected " + printable(e.str()) + ", found " + printable(f.str());
    return out;
}

// Throws E with the standard message when `ok` is false.
template <class E = error, class Expected, class Found>
void require(bool ok, std::string_view what, std::string_view where, const Expected& expected,
             const Found& found) {
    if (!ok) throw E(describe(what, where, expected, found));
}

// Size arithmetic that cannot wrap: the product / sum of element counts, or a value_error naming
// `where` with the factors ("size overflow (at KV cache): expected a product below 2^64, found
// 288230376151711745 x 64 x 8"). Every size computed from input (a config, a flag, a file
// header) goes through these before anything is allocated or indexed with it.
namespace detail {
template <class... T>
std::string joined(std::string_view sep, std::size_t first, T... rest) {
    std::string out = std::to_string(first);
    ((out += std::string(sep) + std::to_string(static_cast<std::size_t>(rest))), ...);
    return out;
}
}  // namespace detail

template <class... T>
std::size_t checked_mul(std::string_view where, std::size_t first, T... rest) {
    std::size_t out = first;
    bool wrapped = false;
    ((wrapped = __builtin_mul_overflow(out, static_cast<std::size_t>(rest), &out) || wrapped), ...);
    if (wrapped) throw value_error(describe("size overflow", where, "a product below 2^64", detail::joined(" x ", first, rest...)));
    return out;
}

template <class... T>
std::size_t checked_add(std::string_view where, std::size_t first, T... rest) {
    std::size_t out = first;
    bool wrapped = false;
    ((wrapped = __builtin_add_overflow(out, static_cast<std::size_t>(rest), &out) || wrapped), ...);
    if (wrapped) throw value_error(describe("size overflow", where, "a sum below 2^64", detail::joined(" + ", first, rest...)));
    return out;
}

// NaN or Inf in activations at a stage boundary (weights loaded with --allow-nonfinite, or an
// overflow) would reach the output as an empty caption or a constant embedding: a value_error
// naming the stage and the first bad value's row and column (rows of `width` values) instead.
inline void require_finite(std::span<const float> x, std::size_t width, std::string_view stage) {
    for (std::size_t i = 0; i < x.size(); ++i)
        if (!std::isfinite(x[i])) {
            const std::size_t w = width ? width : x.size();
            throw value_error(describe("non-finite activations", stage, "finite values",
                                       std::string(std::isnan(x[i]) ? "NaN" : "Inf") + " at row " + std::to_string(i / w) +
                                           ", column " + std::to_string(i % w) +
                                           " (an overflow, or weights loaded with --allow-nonfinite)"));
        }
}

}  // namespace core
}  // namespace pali3
