// Tensor vocabulary. The public API speaks xtensor: owning `tensor<N>` (f32, fixed rank) and
// zero-copy `view`s of memory the library does not own (mapped checkpoints, caller buffers).
// Hot loops never go through xtensor expressions; kernels take raw pointers from these.
#pragma once

#include <array>
#include <cstddef>
#include <span>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include <xtensor/xadapt.hpp>
#include <xtensor/xtensor.hpp>

#include "pali3/core/error.hpp"

namespace pali3 {

template <std::size_t N, class T = float>
using tensor = xt::xtensor<T, N>;

using shape_t = std::vector<std::size_t>;

// "(3, 224, 224)" - how every error prints a shape.
template <class Shape>
std::string shape_string(const Shape& shape) {
    std::ostringstream os;
    os << '(';
    bool first = true;
    for (auto d : shape) {
        if (!first) os << ", ";
        os << d;
        first = false;
    }
    os << ')';
    return os.str();
}

inline std::string shape_string(std::initializer_list<std::size_t> shape) {
    return shape_string(std::span<const std::size_t>(shape.begin(), shape.size()));
}

template <class Shape>
std::size_t shape_size(const Shape& shape) {
    std::size_t n = 1;
    for (auto d : shape) n *= static_cast<std::size_t>(d);
    return n;
}

// Zero-copy, non-owning row-major view of `data` with the given shape. The caller keeps the
// memory alive.
template <class T, std::size_t N>
auto view(T* data, const std::array<std::size_t, N>& shape) {
    return xt::adapt(data, shape_size(shape), xt::no_ownership(), shape);
}

// Throws shape_error unless `t` has exactly `expected` as its shape.
template <class Tensor, std::size_t N>
void require_shape(const Tensor& t, const std::array<std::size_t, N>& expected,
                   std::string_view where) {
    const auto& s = t.shape();
    bool ok = s.size() == N;
    for (std::size_t i = 0; ok && i < N; ++i) ok = static_cast<std::size_t>(s[i]) == expected[i];
    if (!ok) throw shape_error(core::describe("wrong tensor shape", where, shape_string(expected),
                                              shape_string(s)));
}

}  // namespace pali3
