// Operand descriptions shared by the GEMM and GEMV kernels: a weight matrix in either storage
// layout, and the fused epilogue (scale, bias, activation, accumulate into C).
//
// All matrix products compute C (m, n) = A (m, k) . W^T where W is the logical (n, k) weight
// ("out features, in features"), whatever its layout in memory:
//   weight_layout::nk - stored (n, k) row-major: PyTorch / HF Linear.weight.
//   weight_layout::kn - stored (k, n) row-major: Flax / big_vision Dense kernel.
#pragma once

#include <cstddef>
#include <string>

#include "pali3/core/error.hpp"
#include "pali3/core/storage.hpp"
#include "pali3/kernels/activation.hpp"

namespace pali3::kernels {

enum class weight_layout { nk, kn };

template <weight_storage T>
struct weight_ref {
    const T* data = nullptr;
    std::size_t n = 0;   // output features
    std::size_t k = 0;   // input features
    std::size_t ld = 0;  // stride between stored rows: >= k for nk, >= n for kn
    weight_layout layout = weight_layout::nk;
    // Optional: the same matrix already packed (kernels::packed_panels for f32 storage,
    // bf16_products::packed_weights for bf16 with a bf16-product engine). Kernels check it was made from this matrix with their
    // blocking and otherwise ignore it.
    const void* prepacked = nullptr;

    // Element W(j, p) of the logical (n, k) matrix.
    T at(std::size_t j, std::size_t p) const noexcept {
        return layout == weight_layout::nk ? data[j * ld + p] : data[p * ld + j];
    }
};

template <weight_storage T>
weight_ref<T> weight_nk(const T* data, std::size_t n, std::size_t k, std::size_t ld = 0) {
    return {data, n, k, ld ? ld : k, weight_layout::nk};
}

template <weight_storage T>
weight_ref<T> weight_kn(const T* data, std::size_t n, std::size_t k, std::size_t ld = 0) {
    return {data, n, k, ld ? ld : n, weight_layout::kn};
}

// C = Act(alpha * A.W^T + bias) (+ C_old when accumulate). bias has n entries or is null.
// accumulate=true is how a residual connection is fused: x += proj(h) writes into x.
template <activation Act = act::identity>
struct epilogue {
    const float* bias = nullptr;
    float alpha = 1.f;
    bool accumulate = false;
};

namespace detail {
template <weight_storage T>
void check_operands(const char* kernel, std::size_t m, std::size_t lda, const weight_ref<T>& w,
                    const void* a, const void* c, std::size_t ldc) {
    using core::describe;
    if (w.n == 0 || w.k == 0)
        throw shape_error(describe("empty weight matrix", kernel, "n > 0 and k > 0",
                                   "(" + std::to_string(w.n) + ", " + std::to_string(w.k) + ")"));
    if (!w.data || (m > 0 && (!a || !c)))
        throw value_error(describe("null operand", kernel, "non-null A, W and C", "null"));
    const std::size_t min_ld = w.layout == weight_layout::nk ? w.k : w.n;
    if (w.ld < min_ld)
        throw shape_error(describe("weight leading dimension too small", kernel,
                                   ">= " + std::to_string(min_ld), w.ld));
    if (m > 1 && lda < w.k)
        throw shape_error(describe("lda smaller than k", kernel, ">= " + std::to_string(w.k), lda));
    if (m > 1 && ldc < w.n)
        throw shape_error(describe("ldc smaller than n", kernel, ">= " + std::to_string(w.n), ldc));
}
}  // namespace detail

}  // namespace pali3::kernels
