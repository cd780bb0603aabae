#include <array>

#include <catch2/catch.hpp>

#include "pali3/core/error.hpp"
#include "pali3/core/tensor.hpp"

using namespace pali3;

TEST_CASE("views alias caller memory without copying", "[core][tensor]") {
    std::vector<float> mem(2 * 3 * 5);
    for (std::size_t i = 0; i < mem.size(); ++i) mem[i] = static_cast<float>(i) + 0.5f;
    auto v = view(mem.data(), std::array<std::size_t, 3>{2, 3, 5});
    CHECK(v(1, 2, 4) == mem[1 * 15 + 2 * 5 + 4]);
    v(0, 1, 1) = -7.f;
    CHECK(mem[6] == -7.f);
    tensor<2> owned = xt::zeros<float>(std::array<std::size_t, 2>{4, 3});
    CHECK(owned.size() == 12);
}

TEST_CASE("shape errors name the place, the expected and the found shape", "[core][tensor]") {
    tensor<2> t = xt::ones<float>(std::array<std::size_t, 2>{4, 3});
    CHECK_NOTHROW(require_shape(t, std::array<std::size_t, 2>{4, 3}, "x"));
    CHECK_THROWS_AS(require_shape(t, std::array<std::size_t, 2>{3, 4}, "x"), shape_error);
    CHECK_THROWS_WITH(require_shape(t, std::array<std::size_t, 3>{1, 4, 3}, "encoder.block.0.q"),
                      "wrong tensor shape (at encoder.block.0.q): expected (1, 4, 3), found (4, 3)");
    CHECK(shape_string({}) == "()");
    CHECK(shape_size(std::array<std::size_t, 3>{2, 3, 7}) == 42);
}
