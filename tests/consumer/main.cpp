// A user program: a small GEMM on a thread pool, checked against the reference.
#include <cmath>
#include <cstdio>
#include <vector>

#include <pali3/pali3.hpp>

int main() {
    using namespace pali3;
    const std::size_t m = 9, n = 21, k = 13;
    std::vector<float> a(m * k), w(n * k), c(m * n);
    for (std::size_t i = 0; i < a.size(); ++i) a[i] = std::sin(0.1f * static_cast<float>(i) + 1.f);
    for (std::size_t i = 0; i < w.size(); ++i) w[i] = std::cos(0.07f * static_cast<float>(i));
    core::thread_pool pool(2);
    const auto wr = kernels::weight_nk(w.data(), n, k);
    kernels::gemm(m, a.data(), k, wr, c.data(), n, kernels::epilogue<kernels::act::gelu_tanh>{}, pool);
    const auto expect = kernels::ref::gemm(m, a.data(), k, wr, nullptr, n,
                                           kernels::epilogue<kernels::act::gelu_tanh>{});
    double worst = 0;
    for (std::size_t i = 0; i < c.size(); ++i) worst = std::fmax(worst, std::fabs(c[i] - expect[i]));
    std::printf("consumer: max abs error %.3g\n", worst);
    return worst < 1e-4 ? 0 : 1;
}
