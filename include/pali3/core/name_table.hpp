// Tables of names for enums (model kinds, activations, resize methods): one table per enum is
// the only place a name is written; lookups both ways and the "expected" list of error
// messages come from it, so a new entry cannot be missing from either.
//
//     inline constexpr std::pair<colour, std::string_view> colours[] = {{colour::red, "red"}, ...};
//     core::name_in(colours, colour::red)            -> "red" (or nullopt)
//     core::value_in(colours, "red")                 -> colour::red (or nullopt)
//     core::names_list(colours)                      -> "red, green or blue"
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace pali3::core {

template <class E, std::size_t N>
constexpr std::optional<std::string_view> name_in(const std::pair<E, std::string_view> (&table)[N], E value) noexcept {
    for (const auto& entry : table)
        if (entry.first == value) return entry.second;
    return std::nullopt;
}

template <class E, std::size_t N>
constexpr std::optional<E> value_in(const std::pair<E, std::string_view> (&table)[N], std::string_view name) noexcept {
    for (const auto& entry : table)
        if (entry.second == name) return entry.first;
    return std::nullopt;
}

// "a, b or c": the table's names in its order, for an error's "expected".
template <class E, std::size_t N>
std::string names_list(const std::pair<E, std::string_view> (&table)[N]) {
    std::string out;
    for (std::size_t i = 0; i < N; ++i) {
        if (i) out += i + 1 == N ? " or " : ", ";
        out += table[i].second;
    }
    return out;
}

}  // namespace pali3::core
