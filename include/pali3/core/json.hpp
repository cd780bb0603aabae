// A small, strict JSON reader and writer for checkpoint headers, index files and configs.
// Strict means: UTF-8 is validated, duplicate object keys are rejected, nesting is bounded,
// numbers keep their text so 64-bit offsets round-trip exactly, and trailing bytes are an error.
// Every failure is a pali3::format_error naming the byte offset and what was found there.
#pragma once

#include <charconv>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <set>
#include <memory>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "pali3/core/error.hpp"

namespace pali3::json {

class value {
public:
    enum class kind { null, boolean, number, string, array, object };

    value() = default;
    static value make_bool(bool b) { value v; v.kind_ = kind::boolean; v.bool_ = b; return v; }
    static value make_number(std::string text) { value v; v.kind_ = kind::number; v.text_ = std::move(text); return v; }
    static value make_string(std::string s) { value v; v.kind_ = kind::string; v.text_ = std::move(s); return v; }
    static value make_array() { value v; v.kind_ = kind::array; return v; }
    static value make_object() { value v; v.kind_ = kind::object; return v; }

    kind type() const { return kind_; }
    bool is_null() const { return kind_ == kind::null; }
    bool is_object() const { return kind_ == kind::object; }
    bool is_array() const { return kind_ == kind::array; }
    bool is_string() const { return kind_ == kind::string; }
    bool is_number() const { return kind_ == kind::number; }
    bool is_bool() const { return kind_ == kind::boolean; }

    // Accessors throw format_error naming `where` when the kind does not match.
    const std::string& as_string(std::string_view where = {}) const { expect(kind::string, where); return text_; }
    bool as_bool(std::string_view where = {}) const { expect(kind::boolean, where); return bool_; }
    double as_double(std::string_view where = {}) const {
        expect(kind::number, where);
        // from_chars: locale-independent, and "1e999" is an error here, not std::out_of_range
        double v = 0;
        const auto [end, ec] = std::from_chars(text_.data(), text_.data() + text_.size(), v);
        if (ec == std::errc::result_out_of_range || (ec == std::errc{} && !std::isfinite(v)))
            throw format_error(core::describe("number out of range", where, "a finite double", text_));
        if (ec != std::errc{} || end != text_.data() + text_.size())
            throw format_error(core::describe("not a number", where, "a JSON number", text_));
        return v;
    }
    // A non-negative integer that fits in 64 bits (offsets, shapes, sizes).
    std::uint64_t as_u64(std::string_view where = {}) const {
        expect(kind::number, where);
        std::uint64_t v = 0;
        if (text_.empty() || text_[0] == '-' || text_.find_first_of(".eE") != std::string::npos)
            throw format_error(core::describe("not a non-negative integer", where, "digits", text_));
        for (char c : text_) {
            const std::uint64_t d = static_cast<std::uint64_t>(c - '0');
            if (v > (std::numeric_limits<std::uint64_t>::max() - d) / 10)
                throw format_error(core::describe("integer out of range", where, "< 2^64", text_));
            v = v * 10 + d;
        }
        return v;
    }
    const std::vector<value>& items(std::string_view where = {}) const { expect(kind::array, where); return items_; }
    const std::vector<std::pair<std::string, value>>& members(std::string_view where = {}) const {
        expect(kind::object, where);
        return members_;
    }
    const std::string& number_text() const { return text_; }

    // Object lookup: null when absent (or when this is not an object).
    const value* find(std::string_view key) const {
        if (kind_ != kind::object) return nullptr;
        for (const auto& [k, v] : members_)
            if (k == key) return &v;
        return nullptr;
    }
    const value& at(std::string_view key, std::string_view where = {}) const {
        expect(kind::object, where);
        if (const value* v = find(key)) return *v;
        throw format_error(core::describe("missing key", where, "\"" + std::string(key) + "\"", "none"));
    }

    // Building (writer side).
    value& push(value v) { expect(kind::array, "json array"); items_.push_back(std::move(v)); return items_.back(); }
    value& set(std::string key, value v) {
        expect(kind::object, "json object");
        for (auto& [k, old] : members_)
            if (k == key) { old = std::move(v); return old; }
        members_.emplace_back(std::move(key), std::move(v));
        return members_.back().second;
    }

    static std::string kind_name(kind k) {
        switch (k) {
            case kind::null: return "null";
            case kind::boolean: return "a boolean";
            case kind::number: return "a number";
            case kind::string: return "a string";
            case kind::array: return "an array";
            case kind::object: return "an object";
        }
        return "?";
    }

private:
    friend class parser;
    void expect(kind k, std::string_view where) const {
        if (kind_ != k) throw format_error(core::describe("wrong JSON type", where, kind_name(k), kind_name(kind_)));
    }

    kind kind_ = kind::null;
    bool bool_ = false;
    std::string text_;
    std::vector<value> items_;
    std::vector<std::pair<std::string, value>> members_;
};

inline value number(std::uint64_t v) { return value::make_number(std::to_string(v)); }
inline value number(double v) {
    char buf[64];
    const int n = std::snprintf(buf, sizeof buf, "%.9g", v);
    return value::make_number(std::string(buf, static_cast<std::size_t>(n)));
}
inline value string(std::string s) { return value::make_string(std::move(s)); }

// Checks that `s` is well-formed UTF-8 (no overlongs, no surrogates, <= U+10FFFF).
// Returns the offset of the first bad byte, or npos.
inline std::size_t find_invalid_utf8(std::string_view s) {
    std::size_t i = 0;
    while (i < s.size()) {
        const auto c = static_cast<unsigned char>(s[i]);
        std::size_t len = 0;
        std::uint32_t cp = 0;
        if (c < 0x80) { ++i; continue; }
        if ((c & 0xE0) == 0xC0) { len = 2; cp = c & 0x1F; }
        else if ((c & 0xF0) == 0xE0) { len = 3; cp = c & 0x0F; }
        else if ((c & 0xF8) == 0xF0) { len = 4; cp = c & 0x07; }
        else return i;
        if (i + len > s.size()) return i;
        for (std::size_t k = 1; k < len; ++k) {
            const auto d = static_cast<unsigned char>(s[i + k]);
            if ((d & 0xC0) != 0x80) return i;
            cp = (cp << 6) | (d & 0x3F);
        }
        if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) || cp > 0x10FFFF ||
            (cp >= 0xD800 && cp <= 0xDFFF))
            return i;
        i += len;
    }
    return std::string_view::npos;
}

class parser {
public:
    static constexpr int max_depth = 64;

    explicit parser(std::string_view text, std::string where) : s_(text), where_(std::move(where)) {}

    value parse_document() {
        if (const auto bad = find_invalid_utf8(s_); bad != std::string_view::npos)
            fail(bad, "valid UTF-8", "byte 0x" + hex(static_cast<unsigned char>(s_[bad])));
        skip_ws();
        value v = parse_value(0);
        skip_ws();
        if (pos_ != s_.size()) fail(pos_, "end of JSON", "trailing '" + std::string(1, s_[pos_]) + "'");
        return v;
    }

private:
    static std::string hex(unsigned v) {
        const char* d = "0123456789abcdef";
        return std::string{d[(v >> 4) & 15], d[v & 15]};
    }
    [[noreturn]] void fail(std::size_t at, std::string_view expected, std::string_view found) const {
        throw format_error(core::describe("invalid JSON", where_ + " byte " + std::to_string(at), expected, found));
    }
    std::string found_here() const {
        if (pos_ >= s_.size()) return "end of input";
        return "'" + std::string(1, s_[pos_]) + "'";
    }
    void skip_ws() {
        while (pos_ < s_.size() && (s_[pos_] == ' ' || s_[pos_] == '\n' || s_[pos_] == '\r' || s_[pos_] == '\t')) ++pos_;
    }
    bool eat(char c) {
        if (pos_ < s_.size() && s_[pos_] == c) { ++pos_; return true; }
        return false;
    }
    void literal(std::string_view word) {
        if (s_.substr(pos_, word.size()) != word) fail(pos_, word, found_here());
        pos_ += word.size();
    }

    value parse_value(int depth) {
        if (depth > max_depth) fail(pos_, "nesting depth <= 64", "deeper");
        if (pos_ >= s_.size()) fail(pos_, "a value", "end of input");
        const char c = s_[pos_];
        if (c == '{') return parse_object(depth);
        if (c == '[') return parse_array(depth);
        if (c == '"') return value::make_string(parse_string());
        if (c == 't') { literal("true"); return value::make_bool(true); }
        if (c == 'f') { literal("false"); return value::make_bool(false); }
        if (c == 'n') { literal("null"); return value{}; }
        if (c == '-' || (c >= '0' && c <= '9')) return parse_number();
        fail(pos_, "a value", found_here());
    }

    value parse_object(int depth) {
        ++pos_;
        value v = value::make_object();
        std::set<std::string> seen;
        skip_ws();
        if (eat('}')) return v;
        for (;;) {
            skip_ws();
            if (pos_ >= s_.size() || s_[pos_] != '"') fail(pos_, "a string key", found_here());
            const std::size_t key_at = pos_;
            std::string key = parse_string();
            if (!seen.insert(key).second) fail(key_at, "unique keys", "duplicate key \"" + key + "\"");
            skip_ws();
            if (!eat(':')) fail(pos_, "':'", found_here());
            skip_ws();
            value item = parse_value(depth + 1);
            v.members_.emplace_back(std::move(key), std::move(item));
            skip_ws();
            if (eat('}')) return v;
            if (!eat(',')) fail(pos_, "',' or '}'", found_here());
        }
    }

    value parse_array(int depth) {
        ++pos_;
        value v = value::make_array();
        skip_ws();
        if (eat(']')) return v;
        for (;;) {
            skip_ws();
            v.items_.push_back(parse_value(depth + 1));
            skip_ws();
            if (eat(']')) return v;
            if (!eat(',')) fail(pos_, "',' or ']'", found_here());
        }
    }

    value parse_number() {
        const std::size_t start = pos_;
        eat('-');
        if (eat('0')) {
        } else if (pos_ < s_.size() && s_[pos_] >= '1' && s_[pos_] <= '9') {
            while (pos_ < s_.size() && s_[pos_] >= '0' && s_[pos_] <= '9') ++pos_;
        } else {
            fail(pos_, "a digit", found_here());
        }
        if (eat('.')) {
            if (pos_ >= s_.size() || s_[pos_] < '0' || s_[pos_] > '9') fail(pos_, "a digit after '.'", found_here());
            while (pos_ < s_.size() && s_[pos_] >= '0' && s_[pos_] <= '9') ++pos_;
        }
        if (pos_ < s_.size() && (s_[pos_] == 'e' || s_[pos_] == 'E')) {
            ++pos_;
            if (!eat('+')) eat('-');
            if (pos_ >= s_.size() || s_[pos_] < '0' || s_[pos_] > '9') fail(pos_, "an exponent digit", found_here());
            while (pos_ < s_.size() && s_[pos_] >= '0' && s_[pos_] <= '9') ++pos_;
        }
        return value::make_number(std::string(s_.substr(start, pos_ - start)));
    }

    unsigned hex4() {
        if (pos_ + 4 > s_.size()) fail(pos_, "4 hex digits", "end of input");
        unsigned v = 0;
        for (int i = 0; i < 4; ++i) {
            const char c = s_[pos_++];
            v <<= 4;
            if (c >= '0' && c <= '9') v |= static_cast<unsigned>(c - '0');
            else if (c >= 'a' && c <= 'f') v |= static_cast<unsigned>(c - 'a' + 10);
            else if (c >= 'A' && c <= 'F') v |= static_cast<unsigned>(c - 'A' + 10);
            else fail(pos_ - 1, "a hex digit", "'" + std::string(1, c) + "'");
        }
        return v;
    }

    static void append_utf8(std::string& out, std::uint32_t cp) {
        if (cp < 0x80) out.push_back(static_cast<char>(cp));
        else if (cp < 0x800) {
            out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
            out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
        } else if (cp < 0x10000) {
            out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
            out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
            out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
        } else {
            out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
            out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
            out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
            out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
        }
    }

    std::string parse_string() {
        ++pos_;  // opening quote
        std::string out;
        for (;;) {
            if (pos_ >= s_.size()) fail(pos_, "closing '\"'", "end of input");
            const char c = s_[pos_++];
            if (c == '"') return out;
            if (static_cast<unsigned char>(c) < 0x20) fail(pos_ - 1, "no control characters in strings", "byte 0x" + hex(static_cast<unsigned char>(c)));
            if (c != '\\') { out.push_back(c); continue; }
            if (pos_ >= s_.size()) fail(pos_, "an escape", "end of input");
            const char e = s_[pos_++];
            switch (e) {
                case '"': out.push_back('"'); break;
                case '\\': out.push_back('\\'); break;
                case '/': out.push_back('/'); break;
                case 'b': out.push_back('\b'); break;
                case 'f': out.push_back('\f'); break;
                case 'n': out.push_back('\n'); break;
                case 'r': out.push_back('\r'); break;
                case 't': out.push_back('\t'); break;
                case 'u': {
                    std::uint32_t cp = hex4();
                    if (cp >= 0xD800 && cp <= 0xDBFF) {
                        if (s_.substr(pos_, 2) != "\\u") fail(pos_, "a low surrogate", found_here());
                        pos_ += 2;
                        const std::uint32_t lo = hex4();
                        if (lo < 0xDC00 || lo > 0xDFFF) fail(pos_ - 4, "a low surrogate", "another code unit");
                        cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                    } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
                        fail(pos_ - 4, "a high surrogate first", "a lone low surrogate");
                    }
                    append_utf8(out, cp);
                    break;
                }
                default: fail(pos_ - 1, "a valid escape", "'\\" + std::string(1, e) + "'");
            }
        }
    }

    std::string_view s_;
    std::string where_;
    std::size_t pos_ = 0;
};

// Parses a whole document; `where` names the file or header in error messages.
inline value parse(std::string_view text, std::string where = "json") { return parser(text, std::move(where)).parse_document(); }

inline void write_string(std::string& out, std::string_view s) {
    out.push_back('"');
    for (const char c : s) {
        const auto u = static_cast<unsigned char>(c);
        if (c == '"') out += "\\\"";
        else if (c == '\\') out += "\\\\";
        else if (c == '\n') out += "\\n";
        else if (c == '\t') out += "\\t";
        else if (c == '\r') out += "\\r";
        else if (u < 0x20) {
            char buf[8];
            std::snprintf(buf, sizeof buf, "\\u%04x", u);
            out += buf;
        } else out.push_back(c);
    }
    out.push_back('"');
}

// Compact serialisation (no spaces), members in insertion order.
inline void write(std::string& out, const value& v) {
    switch (v.type()) {
        case value::kind::null: out += "null"; break;
        case value::kind::boolean: out += v.as_bool() ? "true" : "false"; break;
        case value::kind::number: out += v.number_text(); break;
        case value::kind::string: write_string(out, v.as_string()); break;
        case value::kind::array: {
            out.push_back('[');
            bool first = true;
            for (const auto& item : v.items()) {
                if (!first) out.push_back(',');
                first = false;
                write(out, item);
            }
            out.push_back(']');
            break;
        }
        case value::kind::object: {
            out.push_back('{');
            bool first = true;
            for (const auto& [k, item] : v.members()) {
                if (!first) out.push_back(',');
                first = false;
                write_string(out, k);
                out.push_back(':');
                write(out, item);
            }
            out.push_back('}');
            break;
        }
    }
}

inline std::string dump(const value& v) {
    std::string out;
    write(out, v);
    return out;
}

}  // namespace pali3::json
