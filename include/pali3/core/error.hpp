// pali3 error hierarchy. Every failure the library reports is a pali3::error; the message says
// what went wrong, where (tensor path, file offset, kernel argument), what was expected and what
// was found, so a user can act on it without a debugger.
#pragma once

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

// Builds "what (at where): expected E, found F" - the one message format of the library.
template <class Expected, class Found>
std::string describe(std::string_view what, std::string_view where, const Expected& expected,
                     const Found& found) {
    std::ostringstream os;
    os << what;
    if (!where.empty()) os << " (at " << where << ")";
    os << ": expected " << expected << ", found " << found;
    return os.str();
}

// Throws E with the standard message when `ok` is false.
template <class E = error, class Expected, class Found>
void require(bool ok, std::string_view what, std::string_view where, const Expected& expected,
             const Found& found) {
    if (!ok) throw E(describe(what, where, expected, found));
}

}  // namespace core
}  // namespace pali3
