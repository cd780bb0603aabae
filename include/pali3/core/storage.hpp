// Weight storage types: f32, bf16 and f16, with exact scalar conversions. Compute and
// accumulation are always f32; a storage type only says how weights sit in memory.
// bf16 <- f32 rounds to nearest even (as PyTorch, JAX and numpy's ml_dtypes do); f16 is
// IEEE binary16 (conversions both ways, round to nearest even).
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <type_traits>

namespace pali3 {

// bfloat16: the upper 16 bits of an IEEE f32. A distinct type (not uint16_t) so overloads and
// storage policies cannot confuse raw integers with weights.
struct bf16 {
    std::uint16_t bits = 0;

    bf16() = default;
    static constexpr bf16 from_bits(std::uint16_t b) noexcept {
        bf16 v;
        v.bits = b;
        return v;
    }
    friend constexpr bool operator==(bf16 a, bf16 b) noexcept { return a.bits == b.bits; }
};

// IEEE binary16.
struct f16 {
    std::uint16_t bits = 0;

    f16() = default;
    static constexpr f16 from_bits(std::uint16_t b) noexcept {
        f16 v;
        v.bits = b;
        return v;
    }
    friend constexpr bool operator==(f16 a, f16 b) noexcept { return a.bits == b.bits; }
};

static_assert(sizeof(bf16) == 2 && std::is_trivially_copyable_v<bf16>);
static_assert(sizeof(f16) == 2 && std::is_trivially_copyable_v<f16>);

constexpr float to_float(float x) noexcept { return x; }

constexpr float to_float(bf16 x) noexcept {
    return std::bit_cast<float>(static_cast<std::uint32_t>(x.bits) << 16);
}

constexpr bf16 to_bf16(float x) noexcept {
    const std::uint32_t u = std::bit_cast<std::uint32_t>(x);
    if ((u & 0x7fffffffu) > 0x7f800000u) {
        // NaN: keep sign and the top payload bits, force quiet so truncation cannot make it Inf.
        return bf16::from_bits(static_cast<std::uint16_t>((u >> 16) | 0x0040u));
    }
    const std::uint32_t rounding = 0x7fffu + ((u >> 16) & 1u);
    return bf16::from_bits(static_cast<std::uint16_t>((u + rounding) >> 16));
}

constexpr float to_float(f16 x) noexcept {
    const std::uint32_t h = x.bits;
    const std::uint32_t sign = (h & 0x8000u) << 16;
    const std::uint32_t exp = (h >> 10) & 0x1fu;
    std::uint32_t mant = h & 0x3ffu;
    if (exp == 0x1fu) return std::bit_cast<float>(sign | 0x7f800000u | (mant << 13));  // inf/nan
    if (exp != 0) return std::bit_cast<float>(sign | ((exp + 112u) << 23) | (mant << 13));
    if (mant == 0) return std::bit_cast<float>(sign);  // signed zero
    // Subnormal: normalise the mantissa.
    std::uint32_t e = 113u;
    while ((mant & 0x400u) == 0) {
        mant <<= 1;
        --e;
    }
    return std::bit_cast<float>(sign | (e << 23) | ((mant & 0x3ffu) << 13));
}

constexpr f16 to_f16(float x) noexcept {
    const std::uint32_t u = std::bit_cast<std::uint32_t>(x);
    const std::uint16_t sign = static_cast<std::uint16_t>((u >> 16) & 0x8000u);
    const std::uint32_t a = u & 0x7fffffffu;
    if (a > 0x7f800000u) return f16::from_bits(sign | 0x7e00u | ((a >> 13) & 0x3ffu));  // NaN
    if (a >= 0x477ff000u) return f16::from_bits(sign | 0x7c00u);  // rounds to >= 65520: inf
    if (a < 0x38800000u) {
        // Result is subnormal (or zero) in f16: shift the implicit-1 mantissa into place and
        // round to nearest even on the dropped bits.
        if (a < 0x33000000u) return f16::from_bits(sign);  // below half the smallest subnormal
        const std::uint32_t e = a >> 23;
        const std::uint32_t m = (a & 0x7fffffu) | 0x800000u;
        const std::uint32_t shift = 126u - e;  // 14..24
        std::uint32_t r = m >> shift;
        const std::uint32_t rem = m & ((1u << shift) - 1u);
        const std::uint32_t half = 1u << (shift - 1u);
        if (rem > half || (rem == half && (r & 1u))) ++r;
        return f16::from_bits(static_cast<std::uint16_t>(sign | r));
    }
    // Normal: rebias exponent, round mantissa to 10 bits (nearest even); carries propagate into
    // the exponent correctly because the fields are adjacent.
    std::uint32_t r = a - 0x38000000u;  // exponent bias 127 -> 15
    r += 0xfffu + ((r >> 13) & 1u);
    return f16::from_bits(static_cast<std::uint16_t>(sign | (r >> 13)));
}

// Storage traits: name (as in safetensors dtypes) and element size.
template <class T>
struct storage_traits;

template <>
struct storage_traits<float> {
    static constexpr std::string_view name = "F32";
};
template <>
struct storage_traits<bf16> {
    static constexpr std::string_view name = "BF16";
};
template <>
struct storage_traits<f16> {
    static constexpr std::string_view name = "F16";
};

template <class T>
concept weight_storage = requires { storage_traits<T>::name; } && std::is_trivially_copyable_v<T>;

// Converts a run of storage values to f32 (scalar; the SIMD versions live in kernels/convert.hpp).
template <weight_storage T>
void to_float(const T* src, float* dst, std::size_t n) noexcept {
    for (std::size_t i = 0; i < n; ++i) dst[i] = to_float(src[i]);
}

}  // namespace pali3
