// Plain double-precision twins of every kernel: no SIMD, no blocking, no threads. Tests compare
// the kernels against these; users can call them to check a port. Slow by design.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <string_view>
#include <vector>

#include "pali3/core/storage.hpp"
#include "pali3/kernels/matrix.hpp"

namespace pali3::kernels::ref {

inline double gelu_tanh(double x) {
    const double u = std::sqrt(2.0 / 3.14159265358979323846) * (x + 0.044715 * x * x * x);
    return 0.5 * x * (1.0 + std::tanh(u));
}
inline double gelu_erf(double x) { return 0.5 * x * (1.0 + std::erf(x / std::sqrt(2.0))); }
inline double relu(double x) { return x > 0 ? x : 0; }
inline double silu(double x) { return x / (1.0 + std::exp(-x)); }

// The double twin of an activation policy.
template <class Act>
double apply(double x) {
    if constexpr (Act::name == std::string_view("identity")) return x;
    else if constexpr (Act::name == std::string_view("relu")) return relu(x);
    else if constexpr (Act::name == std::string_view("gelu_tanh")) return gelu_tanh(x);
    else if constexpr (Act::name == std::string_view("gelu_erf")) return gelu_erf(x);
    else if constexpr (Act::name == std::string_view("silu")) return silu(x);
    else static_assert(sizeof(Act) == 0, "no reference for this activation");
}

// C (m, n) = Act(alpha A . W^T + bias) [+ c_old]; returns C row-major (m, n).
template <class Act, weight_storage T>
std::vector<double> gemm(std::size_t m, const float* a, std::size_t lda, const weight_ref<T>& w,
                         const float* c_old, std::size_t ldc, const epilogue<Act>& ep) {
    std::vector<double> c(m * w.n);
    for (std::size_t i = 0; i < m; ++i)
        for (std::size_t j = 0; j < w.n; ++j) {
            double s = 0;
            for (std::size_t p = 0; p < w.k; ++p)
                s += static_cast<double>(a[i * lda + p]) * static_cast<double>(to_float(w.at(j, p)));
            s = ep.alpha * s + (ep.bias ? ep.bias[j] : 0.0);
            s = apply<Act>(s);
            if (ep.accumulate) s += c_old[i * ldc + j];
            c[i * w.n + j] = s;
        }
    return c;
}

// Softmax of scale * x over entries with keep[i] (all when keep is null); masked -> 0; a fully
// masked row -> zeros.
inline std::vector<double> softmax(const float* x, std::size_t n, double scale = 1.0,
                                   const std::uint8_t* keep = nullptr) {
    std::vector<double> y(n, 0.0);
    double m = -std::numeric_limits<double>::infinity();
    for (std::size_t i = 0; i < n; ++i)
        if (!keep || keep[i]) m = std::max(m, scale * x[i]);
    if (m == -std::numeric_limits<double>::infinity()) return y;
    double s = 0;
    for (std::size_t i = 0; i < n; ++i)
        if (!keep || keep[i]) s += (y[i] = std::exp(scale * x[i] - m));
    for (auto& v : y) v /= s;
    return y;
}

template <weight_storage T>
std::vector<double> layer_norm(const float* x, std::size_t rows, std::size_t width,
                               const T* gamma, const T* beta, double eps) {
    std::vector<double> y(rows * width);
    for (std::size_t r = 0; r < rows; ++r) {
        double mean = 0, var = 0;
        for (std::size_t i = 0; i < width; ++i) mean += x[r * width + i];
        mean /= static_cast<double>(width);
        for (std::size_t i = 0; i < width; ++i) var += (x[r * width + i] - mean) * (x[r * width + i] - mean);
        var /= static_cast<double>(width);
        for (std::size_t i = 0; i < width; ++i)
            y[r * width + i] = (x[r * width + i] - mean) / std::sqrt(var + eps) * to_float(gamma[i]) +
                               (beta ? to_float(beta[i]) : 0.0);
    }
    return y;
}

template <weight_storage T>
std::vector<double> rms_norm(const float* x, std::size_t rows, std::size_t width, const T* w,
                             double eps) {
    std::vector<double> y(rows * width);
    for (std::size_t r = 0; r < rows; ++r) {
        double ms = 0;
        for (std::size_t i = 0; i < width; ++i) ms += static_cast<double>(x[r * width + i]) * x[r * width + i];
        ms /= static_cast<double>(width);
        for (std::size_t i = 0; i < width; ++i)
            y[r * width + i] = x[r * width + i] / std::sqrt(ms + eps) * to_float(w[i]);
    }
    return y;
}

}  // namespace pali3::kernels::ref
