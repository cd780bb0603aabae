// Seeded random weights for tests and benchmarks. Every tensor is a pure function of
// (seed, full name, shape): the same on every run, platform, load order and thread count (a
// hand-written generator, not std::normal_distribution, whose output differs between standard
// libraries). Scaled like the usual initialisers so activations stay O(1):
//   rank >= 2:                         N(0, 1 / fan_in), fan_in = product of all dims but the first
//                                      (our matrices are (out, in): PyTorch's convention)
//   rank 1, name ends in weight/scale: 1 + N(0, 0.02^2)   (norm gains)
//   rank 1, otherwise (biases ...):    N(0, 0.02^2)
// Nothing is exactly zero, so tests exercise every term. `distribution::uniform` draws from the
// uniform law with the same mean and variance, ~20x faster: for initialising billions of weights.
// `matrices` = bf16 (or f16) hands out rank >= 2 tensors already rounded to that storage (the
// values a bf16 model would get from the f32 ones), so a bf16 model loads them without a transient
// f32 copy: the 5B preset's 250k x 2048 embedding would otherwise cost 2 GB more peak memory.
// Vectors stay f32, as models keep them.
#pragma once

#include <cmath>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "pali3/weights/source.hpp"

namespace pali3::weights {

class random_source {
public:
    enum class distribution { normal, uniform };

    explicit random_source(std::uint64_t seed = 0, distribution d = distribution::normal, dtype matrices = dtype::f32)
        : seed_(seed), dist_(d), matrices_(matrices) {
        if (matrices == dtype::i8)
            throw value_error(core::describe("random matrices' dtype", "random_source", "F32, BF16 or F16", "I8"));
    }

    bool contains(const std::string&) const { return true; }

    tensor_data get(const std::string& name, const shape_t& shape) const {
        const dtype out = shape.size() >= 2 ? matrices_ : dtype::f32;
        switch (out) {
            case dtype::bf16: return generate<bf16>(name, shape);
            case dtype::f16: return generate<f16>(name, shape);
            case dtype::f32:
            case dtype::i8: break;  // f32 (the constructor refuses int8 matrices)
        }
        return generate<float>(name, shape);
    }

private:
    template <class T>
    tensor_data generate(const std::string& name, const shape_t& shape) const {
        const std::size_t n = shape_size(shape);
        auto values = std::make_shared<std::vector<T>>(n);
        std::uint64_t state = seed_ ^ fnv1a(name) ^ (0x9e3779b97f4a7c15ull * (shape.size() + 1));
        for (auto d : shape) {
            state ^= d;
            state = splitmix(state);
        }
        double mean = 0, stddev = 0.02;
        if (shape.size() >= 2) {
            double fan_in = 1;
            for (std::size_t i = 1; i < shape.size(); ++i) fan_in *= static_cast<double>(shape[i]);
            stddev = 1.0 / std::sqrt(fan_in);
        } else if (ends_with(name, "weight") || ends_with(name, "scale")) {
            mean = 1.0;
        }
        const double half_width = stddev * 1.7320508075688772;  // sqrt(3): same variance
        for (std::size_t i = 0; i < n; ++i) {
            float v;
            do {
                if (dist_ == distribution::normal) v = static_cast<float>(mean + stddev * normal(state));
                else v = static_cast<float>(mean + half_width * (2.0 * uniform(state) - 1.0));
            } while (v == 0.f);
            if constexpr (std::is_same_v<T, float>) (*values)[i] = v;
            else if constexpr (std::is_same_v<T, bf16>) (*values)[i] = to_bf16(v);
            else (*values)[i] = to_f16(v);
        }
        tensor_data t;
        t.type = dtype_of<T>();
        t.shape = shape;
        t.data = values->data();
        t.owner = std::move(values);
        return t;
    }

    static bool ends_with(std::string_view s, std::string_view suffix) {
        return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
    }
    static std::uint64_t fnv1a(std::string_view s) {
        std::uint64_t h = 0xcbf29ce484222325ull;
        for (unsigned char c : s) h = (h ^ c) * 0x100000001b3ull;
        return h;
    }
    static std::uint64_t splitmix(std::uint64_t& x) {
        std::uint64_t z = (x += 0x9e3779b97f4a7c15ull);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
        return z ^ (z >> 31);
    }
    static double uniform(std::uint64_t& state) {  // in (0, 1)
        return (static_cast<double>(splitmix(state) >> 11) + 0.5) * 0x1p-53;
    }
    // Box-Muller on two uniforms.
    static double normal(std::uint64_t& state) {
        const double u1 = uniform(state);
        const double u2 = uniform(state);
        return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
    }

    std::uint64_t seed_;
    distribution dist_;
    dtype matrices_;
};

static_assert(weight_source<random_source>);

}  // namespace pali3::weights
