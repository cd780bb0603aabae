#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>

#include <catch2/catch.hpp>

#include "pali3/core/storage.hpp"
#include "pali3/kernels/elementwise.hpp"
#include "../common.hpp"

using namespace pali3;

namespace {
// Reference bf16 rounding through double arithmetic: the nearest bf16, ties to even.
float bf16_nearest(float x) {
    const std::uint32_t u = std::bit_cast<std::uint32_t>(x);
    const float lo = std::bit_cast<float>(u & 0xffff0000u);
    const float hi = std::bit_cast<float>((u & 0xffff0000u) + 0x10000u);
    const double dlo = std::abs(static_cast<double>(x) - lo), dhi = std::abs(static_cast<double>(hi) - x);
    if (dlo < dhi) return lo;
    if (dhi < dlo) return hi;
    return ((u >> 16) & 1u) ? hi : lo;
}
}  // namespace

TEST_CASE("bf16 rounds to nearest even", "[core][storage]") {
    CHECK(to_bf16(1.0f).bits == 0x3f80);
    // 1 + 2^-8 is exactly half way between 1 and 1 + 2^-7: ties to the even mantissa (1.0).
    CHECK(to_float(to_bf16(1.0f + 0x1p-8f)) == 1.0f);
    // 1 + 3*2^-8 is half way between 1+2^-7 (odd) and 1+2^-6 (even): rounds up.
    CHECK(to_float(to_bf16(1.0f + 3 * 0x1p-8f)) == 1.0f + 0x1p-6f);
    CHECK(to_float(to_bf16(1.0f + 0x1p-8f + 0x1p-20f)) == 1.0f + 0x1p-7f);
    CHECK(std::isinf(to_float(to_bf16(std::numeric_limits<float>::infinity()))));
    CHECK(std::isnan(to_float(to_bf16(std::numeric_limits<float>::quiet_NaN()))));
    // A signalling NaN whose payload sits only in the low bits must not become infinity.
    CHECK(std::isnan(to_float(to_bf16(std::bit_cast<float>(0x7f800001u)))));
    // Largest finite value rounds up to infinity, as in every bf16 implementation.
    CHECK(std::isinf(to_float(to_bf16(std::numeric_limits<float>::max()))));

    const auto v = test::random_vector(100000, 7, 3.f);
    for (float x : v) REQUIRE(to_float(to_bf16(x)) == bf16_nearest(x));
}

TEST_CASE("SIMD bf16 conversion equals the scalar one", "[core][storage]") {
    for (std::size_t n : {1u, 15u, 16u, 17u, 1001u}) {
        auto v = test::random_vector(n, 11 + static_cast<unsigned>(n), 5.f);
        v[0] = std::numeric_limits<float>::quiet_NaN();
        std::vector<bf16> out(n);
        kernels::convert(v.data(), out.data(), n);
        for (std::size_t i = 0; i < n; ++i) {
            const bf16 expect = to_bf16(v[i]);
            REQUIRE(out[i].bits == expect.bits);
        }
        std::vector<float> back(n);
        kernels::convert(out.data(), back.data(), n);
        for (std::size_t i = 0; i < n; ++i) REQUIRE(std::bit_cast<std::uint32_t>(back[i]) == (std::uint32_t(out[i].bits) << 16));
    }
}

TEST_CASE("f16 conversions are exact both ways", "[core][storage]") {
    // Every f16 bit pattern converts to f32 and back unchanged (NaNs stay NaN).
    for (std::uint32_t b = 0; b < 0x10000u; ++b) {
        const f16 h = f16::from_bits(static_cast<std::uint16_t>(b));
        const float x = to_float(h);
        if (std::isnan(x)) {
            REQUIRE(std::isnan(to_float(to_f16(x))));
            continue;
        }
        REQUIRE(to_f16(x).bits == h.bits);
    }
    CHECK(to_float(f16::from_bits(0x3c00)) == 1.0f);
    CHECK(to_float(f16::from_bits(0x0001)) == 0x1p-24f);  // smallest subnormal
    CHECK(to_float(f16::from_bits(0x7bff)) == 65504.f);
    CHECK(to_f16(65520.f).bits == 0x7c00);                // rounds to infinity
    CHECK(to_f16(65519.f).bits == 0x7bff);
    CHECK(to_f16(0x1p-25f).bits == 0x0000);               // tie to even (zero)
    CHECK(to_f16(0x1p-25f * 1.5f).bits == 0x0001);
    CHECK(to_f16(-0x1p-24f * 3).bits == 0x8003);
    // Rounding of normal values against the nearest representable f16 (checked by brute force).
    const auto v = test::random_vector(20000, 3, 100.f);
    for (float x : v) {
        const float r = to_float(to_f16(x));
        const float up = to_float(f16::from_bits(static_cast<std::uint16_t>(to_f16(x).bits + 1)));
        const float dn = to_float(f16::from_bits(static_cast<std::uint16_t>(to_f16(x).bits - 1)));
        REQUIRE(std::abs(r - x) <= std::abs(up - x));
        REQUIRE(std::abs(r - x) <= std::abs(dn - x));
    }
    // SIMD widening load of f16 equals the scalar conversion.
    std::vector<f16> h(37);
    for (std::size_t i = 0; i < h.size(); ++i) h[i] = to_f16(v[i]);
    std::vector<float> out(h.size());
    kernels::convert(h.data(), out.data(), h.size());
    for (std::size_t i = 0; i < h.size(); ++i) REQUIRE(out[i] == to_float(h[i]));
}
