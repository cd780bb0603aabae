// A source that answers in our names while reading another naming (HF, big_vision...).
// Rules are data: pairs of patterns where each "{}" matches a non-empty run of characters
// (shortest first) and is substituted, in order, into the other side:
//     {"vision.blocks.{}.attn.q.weight", "vision_model.encoder.layers.{}.self_attn.q_proj.weight"}
// The first rule that matches wins; a name no rule matches passes through unchanged, or is
// rejected when the source is strict. Errors name both our name and the file's name.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "pali3/weights/source.hpp"

namespace pali3::weights {

struct rename_rule {
    std::string ours;
    std::string theirs;
};

namespace detail {
// Matches `name` against `pattern` ("{}" = non-empty wildcard); returns the captures.
inline bool match_pattern(std::string_view pattern, std::string_view name,
                          std::vector<std::string_view>& captures) {
    const auto star = pattern.find("{}");
    if (star == std::string_view::npos) return pattern == name;
    if (name.substr(0, star) != pattern.substr(0, star)) return false;
    const std::string_view rest_pattern = pattern.substr(star + 2);
    const std::string_view rest_name = name.substr(star);
    for (std::size_t len = 1; len <= rest_name.size(); ++len) {
        captures.push_back(rest_name.substr(0, len));
        if (match_pattern(rest_pattern, rest_name.substr(len), captures)) return true;
        captures.pop_back();
    }
    return false;
}

// Number of "{}" wildcards in a pattern (both sides of a rule must have the same).
inline std::size_t count_wildcards(std::string_view s) {
    std::size_t n = 0;
    for (auto p = s.find("{}"); p != std::string_view::npos; p = s.find("{}", p + 2)) ++n;
    return n;
}

inline std::string substitute(std::string_view pattern, const std::vector<std::string_view>& captures) {
    std::string out;
    std::size_t next = 0;
    for (std::size_t i = 0; i < pattern.size(); ++i) {
        if (pattern.compare(i, 2, "{}") == 0 && next < captures.size()) {
            out.append(captures[next++]);
            ++i;
        } else {
            out.push_back(pattern[i]);
        }
    }
    return out;
}
}  // namespace detail

template <weight_source S>
class renaming_source {
public:
    renaming_source(const S& inner, std::vector<rename_rule> rules, bool strict = false)
        : inner_(&inner), rules_(std::move(rules)), strict_(strict) {
        for (const auto& r : rules_)
            if (detail::count_wildcards(r.ours) != detail::count_wildcards(r.theirs))
                throw config_error(core::describe("rename rule with unbalanced wildcards", r.ours + " -> " + r.theirs,
                                                  std::to_string(detail::count_wildcards(r.ours)) + " '{}' on each side",
                                                  std::to_string(detail::count_wildcards(r.theirs)) + " on the right"));
    }

    // The name the inner source uses for our `name` (nullopt: no rule and strict).
    std::optional<std::string> translate(const std::string& name) const {
        for (const auto& r : rules_) {
            std::vector<std::string_view> captures;
            if (detail::match_pattern(r.ours, name, captures)) return detail::substitute(r.theirs, captures);
        }
        if (strict_) return std::nullopt;
        return name;
    }

    bool contains(const std::string& name) const {
        const auto theirs = translate(name);
        return theirs && inner_->contains(*theirs);
    }

    tensor_data get(const std::string& name, const shape_t& expected) const {
        const auto theirs = translate(name);
        if (!theirs)
            throw format_error(core::describe("no rename rule for tensor", name, "a rule mapping it", "none"));
        try {
            return inner_->get(*theirs, expected);
        } catch (const shape_error& e) {
            throw shape_error(std::string(e.what()) + " [our name: " + name + "]");
        } catch (const error& e) {
            throw format_error(std::string(e.what()) + " [our name: " + name + "]");
        }
    }

private:
    const S* inner_;
    std::vector<rename_rule> rules_;
    bool strict_;
};

}  // namespace pali3::weights
