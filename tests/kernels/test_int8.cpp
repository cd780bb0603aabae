// int8 weights (kernels/int8.hpp): the quantisers' bounds, and gemv_int8 against a double
// reference of its integer products (int8 weights x int16 A, exact) and scales, for odd shapes,
// 1..4 rows of A, per-row and per-group scales, strides, epilogues, both thread counts, the
// AVX2 and the portable path, the largest sums, and against the f32 weights and A it came from;
// gemm_int8 past 4 rows on the portable path against gemm on the dequantised weights (bit for bit)
// and a double reference; the integer-product engine (int8_products.hpp, AVX512-VNNI) against a
// double reference of its exact integer sums, its largest sums and non-finite rows, and which
// engine gemm_int8 takes (the VNNI cases report themselves skipped on CPUs without it).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include <catch2/catch.hpp>

#include "pali3/kernels/activation.hpp"
#include "pali3/kernels/gemm.hpp"
#include "pali3/core/threading.hpp"
#include "pali3/kernels/int8.hpp"
#include "pali3/kernels/int8_products.hpp"
#include "../common.hpp"

using namespace pali3;
using namespace pali3::kernels;

TEST_CASE("quantize_int8: symmetric, within half a step, the largest value at +-127, zero groups at scale 0", "[kernels][int8]") {
    const std::size_t n = 9, k = 77, ldw = 80;
    auto w = test::random_vector(n * ldw, 61, 2.f);
    for (std::size_t i = 0; i < k; ++i) w[3 * ldw + i] = 0.f;  // an all-zero row
    for (const std::size_t group : {std::size_t{0}, std::size_t{32}}) {
        const std::size_t groups = int8_groups(k, group), g = group ? group : k;
        std::vector<std::int8_t> q(n * k);
        std::vector<float> s(n * groups);
        quantize_int8(w.data(), n, k, ldw, group, q.data(), k, s.data());
        const int8_matrix m{q.data(), n, k, k, s.data(), group};
        for (std::size_t j = 0; j < n; ++j)
            for (std::size_t gi = 0; gi < groups; ++gi) {
                int qmax = 0;
                for (std::size_t i = gi * g; i < std::min(k, (gi + 1) * g); ++i) {
                    const int v = q[j * k + i];
                    REQUIRE(v >= -127);
                    REQUIRE(v <= 127);
                    qmax = std::max(qmax, std::abs(v));
                    const double err = std::fabs(double(w[j * ldw + i]) - double(m.scale(j, i)) * v);
                    REQUIRE(err <= 0.5 * m.scale(j, i) * (1 + 1e-4));  // + the f32 rounding of w / scale
                }
                if (j == 3) {
                    CHECK(s[j * groups + gi] == 0.f);
                    CHECK(qmax == 0);
                } else {
                    CHECK(qmax == 127);
                }
            }
    }
    std::vector<std::int8_t> q(n * k);
    std::vector<float> s(n * 3);
    w[5 * ldw + 7] = std::numeric_limits<float>::quiet_NaN();
    CHECK_THROWS_WITH(quantize_int8(w.data(), n, k, ldw, 32, q.data(), k, s.data()),
                      Catch::Contains("non-finite weight") && Catch::Contains("row 5, column 7"));
    CHECK_THROWS_WITH(quantize_int8(w.data(), n, k, ldw, 48, q.data(), k, s.data()), Catch::Contains("multiple of 32"));
}

TEST_CASE("quantize_int16: within half a step (and the rounding of a / scale), the largest value at +-32767, zero rows at scale 0, non-finite rows NaN", "[kernels][int8]") {
    const std::size_t k = 301;
    auto a = test::random_vector(k, 51, 3.f);
    float amax = 0.f;
    for (const float v : a) amax = std::max(amax, std::fabs(v));
    a[17] = -(amax + 1.f);  // the largest magnitude, negative
    std::vector<std::int16_t> q(k);
    const float s = quantize_int16(a.data(), k, q.data());
    CHECK(s == (amax + 1.f) / 32767.f);
    CHECK(q[17] == -32767);
    // Half a step, plus the f32 rounding of a / scale (up to 32767 x 2^-24 of a step).
    for (std::size_t i = 0; i < k; ++i) REQUIRE(std::fabs(double(a[i]) - double(s) * q[i]) <= (0.5 + 2.5e-3) * s);
    std::vector<float> zero(k, 0.f);
    CHECK(quantize_int16(zero.data(), k, q.data()) == 0.f);
    CHECK(std::all_of(q.begin(), q.end(), [](std::int16_t v) { return v == 0; }));
    a[200] = std::numeric_limits<float>::infinity();
    CHECK(std::isnan(quantize_int16(a.data(), k, q.data())));
    a[200] = std::numeric_limits<float>::quiet_NaN();
    CHECK(std::isnan(quantize_int16(a.data(), k, q.data())));
}

namespace {
// The path without AVX2 (any arch tag that is not x86's: the integer loop).
struct portable_arch {};

// Double reference of the integer products: act(alpha * sa_r * sum_groups scale(j, g) * sum_i qa[r][i] q[j][i] + bias[j]) [+ c]
// with A in its int16 form (quantize_int16); mag[r][j] = the sum of the terms' magnitudes.
template <class Act>
std::vector<double> reference(std::size_t m, const std::vector<float>& a, std::size_t lda, const int8_matrix& w,
                              const epilogue<Act>& ep, const std::vector<float>& c0, std::size_t ldc, std::vector<double>* mag = nullptr) {
    std::vector<double> out(m * ldc);
    if (mag) mag->assign(m * ldc, 0.0);
    std::vector<std::int16_t> qa(w.k);
    for (std::size_t r = 0; r < m; ++r) {
        const double sa = quantize_int16(a.data() + r * lda, w.k, qa.data());
        for (std::size_t j = 0; j < w.n; ++j) {
            double s = 0, t = 0;
            for (std::size_t i = 0; i < w.k; ++i) {
                const double term = sa * w.scale(j, i) * double(qa[i]) * w.q[j * w.ld + i];
                s += term;
                t += std::fabs(term);
            }
            double v = ep.alpha * s + (ep.bias ? ep.bias[j] : 0.0);
            v = Act::apply(static_cast<float>(v));  // the activation in float, as the kernel applies it
            if (ep.accumulate) v += c0[r * ldc + j];
            out[r * ldc + j] = v;
            if (mag) (*mag)[r * ldc + j] = t;
        }
    }
    return out;
}
}  // namespace

TEST_CASE("gemv_int8 equals the double reference of its integer products; threads change no bit", "[kernels][int8]") {
    struct shape {
        std::size_t n, k, ld, lda, group;
    };
    for (const shape sh : {shape{37, 129, 129, 129, 0}, shape{37, 129, 131, 140, 32}, shape{130, 1000, 1000, 1000, 32},
                           shape{65, 4099, 4100, 4099, 128}, shape{3, 7, 7, 7, 0}, shape{200, 64, 64, 64, 64},
                           shape{19, 9001, 9001, 9003, 0}, shape{9, 9001, 9008, 9001, 4608}}) {
        const auto wf = test::random_vector(sh.n * sh.ld, 71);
        std::vector<std::int8_t> q(sh.n * sh.ld, 0);
        std::vector<float> s(sh.n * int8_groups(sh.k, sh.group));
        quantize_int8(wf.data(), sh.n, sh.k, sh.ld, sh.group, q.data(), sh.ld, s.data());
        const int8_matrix w{q.data(), sh.n, sh.k, sh.ld, s.data(), sh.group};
        const auto bias = test::random_vector(sh.n, 72);
        for (std::size_t m = 1; m <= gemv_max_rows; ++m) {
            const auto a = test::random_vector(m * sh.lda, 73 + static_cast<std::uint32_t>(m));
            const std::size_t ldc = sh.n + 3;
            const auto c0 = test::random_vector(m * ldc, 80);
            INFO("n " << sh.n << " k " << sh.k << " group " << sh.group << " m " << m);
            {
                const epilogue<> ep{};
                std::vector<double> mag;
                const auto expect = reference(m, a, sh.lda, w, ep, c0, ldc, &mag);
                std::vector<float> c1(c0), c2(c0), c3(c0);
                gemv_int8(m, a.data(), sh.lda, w, c1.data(), ldc, ep);
                core::thread_pool pool(2);
                gemv_int8(m, a.data(), sh.lda, w, c2.data(), ldc, ep, pool);
                CHECK(c1 == c2);
                gemv_int8<portable_arch>(m, a.data(), sh.lda, w, c3.data(), ldc, ep);
                if (sh.group == 0) CHECK(c1 == c3);  // exact integer sums, the same scaling: the same bits
                // The AVX2 lanes also where the default is AVX-512 (32-value steps): they must agree too.
                std::vector<float> c4(c3);
#if defined(__AVX2__)
                gemv_int8<xsimd::fma3<xsimd::avx2>>(m, a.data(), sh.lda, w, c4.data(), ldc, ep);
                if (sh.group == 0) CHECK(c4 == c3);
#endif
                // Each output's error against the sum of its terms' magnitudes (the integer sums are
                // exact; the scaling rounds), and the NMSE over all outputs; every path.
                for (const auto* c : {&c1, &c3, &c4}) {
                    double worst = 0;
                    std::vector<float> got;
                    std::vector<double> want;
                    for (std::size_t r = 0; r < m; ++r)
                        for (std::size_t j = 0; j < sh.n; ++j) {
                            const double e = expect[r * ldc + j];
                            worst = std::max(worst, std::fabs((*c)[r * ldc + j] - e) / (mag[r * ldc + j] + 1e-30));
                            got.push_back((*c)[r * ldc + j]);
                            want.push_back(e);
                        }
                    const double e = test::nmse(got, want);
                    INFO((c == &c1 ? "default path" : "portable path") << ": worst error / sum |terms| " << worst << ", nmse " << e);
                    CHECK(worst < 1e-6);
                    CHECK(e < 1e-11);
                }
            }
            {  // epilogue: alpha, bias, a fused GELU, accumulate
                const epilogue<act::gelu_tanh> ep{bias.data(), 0.5f, true};
                const auto expect = reference(m, a, sh.lda, w, ep, c0, ldc);
                std::vector<float> c1(c0);
                gemv_int8(m, a.data(), sh.lda, w, c1.data(), ldc, ep);
                std::vector<float> got, want_f;
                std::vector<double> want;
                for (std::size_t r = 0; r < m; ++r)
                    for (std::size_t j = 0; j < sh.n; ++j) {
                        got.push_back(c1[r * ldc + j]);
                        want.push_back(expect[r * ldc + j]);
                    }
                CHECK(test::nmse(got, want) < 1e-10);
                for (std::size_t r = 0; r < m; ++r)  // the padding between rows of C is untouched
                    for (std::size_t j = sh.n; j < ldc; ++j) REQUIRE(c1[r * ldc + j] == c0[r * ldc + j]);
            }
        }
    }
}

TEST_CASE("gemm_int8 past 4 rows: the f32 GEMM on W dequantised while packed, bit for bit, against a double reference", "[kernels][int8]") {
    // W is dequantised inside the GEMM's packer, so gemm_int8 must give the bits of gemm on the
    // dequantised f32 matrix (the same packed values, the same micro-kernels), for odd shapes, row
    // strides, groups that k blocks cut through (kc 40: neither a multiple of 32 nor of 64), both
    // row orders (up to 160 rows W is packed a panel at a time), epilogues and thread counts.
    struct shape {
        std::size_t m, n, k, ld, group;
    };
    core::thread_pool pool(2);
    for (const shape sh : {shape{5, 37, 129, 129, 0}, shape{37, 45, 200, 203, 32}, shape{170, 131, 333, 333, 64},
                           shape{9, 17, 77, 80, 0}, shape{200, 64, 1000, 1000, 128}}) {
        const auto wf = test::random_vector(sh.n * sh.ld, 171);
        std::vector<std::int8_t> q(sh.n * sh.ld, 0);
        std::vector<float> s(sh.n * int8_groups(sh.k, sh.group));
        quantize_int8(wf.data(), sh.n, sh.k, sh.ld, sh.group, q.data(), sh.ld, s.data());
        const int8_matrix w{q.data(), sh.n, sh.k, sh.ld, s.data(), sh.group};
        std::vector<float> wd(sh.n * sh.k);
        dequantize_int8(w, 0, sh.n, wd.data(), sh.k);
        for (std::size_t j = 0; j < sh.n; ++j)
            for (std::size_t i = 0; i < sh.k; ++i) REQUIRE(wd[j * sh.k + i] == w.scale(j, i) * float(q[j * sh.ld + i]));
        const std::size_t lda = sh.k + 5, ldc = sh.n + 2;
        const auto a = test::random_vector(sh.m * lda, 172);
        const auto bias = test::random_vector(sh.n, 173);
        const auto c0 = test::random_vector(sh.m * ldc, 174);
        for (const std::size_t kc : {std::size_t{0}, std::size_t{40}}) {
            gemm_tiling<default_arch> tiling;
            tiling.int8_engine = int8_products::backend::none;  // the portable path (integer products: below)
            tiling.inplace_rows = 0;  // gemm's packed path on AVX-512 too (gemm_int8 never reads W in place)
            if (kc) tiling.kc = kc;
            INFO("m " << sh.m << " n " << sh.n << " k " << sh.k << " group " << sh.group << " kc " << tiling.kc);
            {  // plain product
                std::vector<float> c1(c0), c2(c0), cf(c0);
                gemm_int8(sh.m, a.data(), lda, w, c1.data(), ldc, epilogue<>{}, core::sequential{}, tiling);
                gemm_int8(sh.m, a.data(), lda, w, c2.data(), ldc, epilogue<>{}, pool, tiling);
                gemm(sh.m, a.data(), lda, weight_nk(static_cast<const float*>(wd.data()), sh.n, sh.k), cf.data(), ldc,
                     epilogue<>{}, core::sequential{}, tiling);
                CHECK(c1 == cf);
                CHECK(c1 == c2);
                std::vector<float> got;
                std::vector<double> want;
                for (std::size_t r = 0; r < sh.m; ++r)
                    for (std::size_t j = 0; j < sh.n; ++j) {
                        double e = 0;
                        for (std::size_t i = 0; i < sh.k; ++i) e += double(a[r * lda + i]) * double(wd[j * sh.k + i]);
                        got.push_back(c1[r * ldc + j]);
                        want.push_back(e);
                    }
                const double e = test::nmse(got, want);
                INFO("nmse against the double product of the dequantised weights " << e);
                CHECK(e < 1e-12);
                for (std::size_t r = 0; r < sh.m; ++r)  // the padding between rows of C is untouched
                    for (std::size_t j = sh.n; j < ldc; ++j) REQUIRE(c1[r * ldc + j] == c0[r * ldc + j]);
            }
            {  // fused epilogue: alpha, bias, GELU, accumulate
                const epilogue<act::gelu_tanh> ep{bias.data(), 0.5f, true};
                std::vector<float> c1(c0), cf(c0);
                gemm_int8(sh.m, a.data(), lda, w, c1.data(), ldc, ep, pool, tiling);
                gemm(sh.m, a.data(), lda, weight_nk(static_cast<const float*>(wd.data()), sh.n, sh.k), cf.data(), ldc, ep, pool,
                     tiling);
                CHECK(c1 == cf);
            }
        }
    }
}

TEST_CASE("gemv_int8: the largest integer sums do not overflow; NaN or Inf in a row of A gives NaN", "[kernels][int8]") {
    // Every product at its largest (127 x 32767) over 9001 values: 3.7e10, past int32 eight times over.
    const std::size_t n = 21, k = 9001;
    for (const std::size_t group : {std::size_t{0}, std::size_t{32}, std::size_t{8192}}) {
        std::vector<float> wf(n * k, 1.f), a(2 * k, 1.f), c(2 * n);
        for (std::size_t i = 0; i < k; ++i) a[k + i] = -1.f;
        std::vector<std::int8_t> q(n * k);
        std::vector<float> s(n * int8_groups(k, group));
        quantize_int8(wf.data(), n, k, k, group, q.data(), k, s.data());
        for (const bool portable : {false, true}) {
            const int8_matrix w{q.data(), n, k, k, s.data(), group};
            if (portable) gemv_int8<portable_arch>(2, a.data(), k, w, c.data(), n);
            else gemv_int8(2, a.data(), k, w, c.data(), n);
            INFO("group " << group << (portable ? " portable" : ""));
            for (std::size_t j = 0; j < n; ++j) {
                REQUIRE(std::fabs(c[j] - double(k)) <= 1e-5 * k);
                REQUIRE(std::fabs(c[n + j] + double(k)) <= 1e-5 * k);
            }
        }
    }
    const std::size_t kk = 40;
    const auto wf = test::random_vector(n * kk, 93);
    std::vector<std::int8_t> q(n * kk);
    std::vector<float> s(n), c(2 * n);
    quantize_int8(wf.data(), n, kk, kk, 0, q.data(), kk, s.data());
    auto a = test::random_vector(2 * kk, 94);
    a[kk + 5] = std::numeric_limits<float>::infinity();
    gemv_int8(2, a.data(), kk, int8_matrix{q.data(), n, kk, kk, s.data(), 0}, c.data(), n);
    for (std::size_t j = 0; j < n; ++j) {
        REQUIRE(std::isfinite(c[j]));
        REQUIRE(std::isnan(c[n + j]));
    }
}

TEST_CASE("gemv_int8: what int8 costs against the f32 weights it came from; bad operands refused", "[kernels][int8]") {
    const std::size_t n = 512, k = 2048;
    const auto wf = test::random_vector(n * k, 91), a = test::random_vector(k, 92);
    std::vector<float> exact(n);
    gemv(1, a.data(), k, weight_nk(wf.data(), n, k), exact.data(), n);
    const std::vector<double> ref(exact.begin(), exact.end());
    double e_row = 0, e_g32 = 0;
    for (const std::size_t group : {std::size_t{0}, std::size_t{32}}) {
        std::vector<std::int8_t> q(n * k);
        std::vector<float> s(n * int8_groups(k, group)), y(n);
        quantize_int8(wf.data(), n, k, k, group, q.data(), k, s.data());
        const int8_matrix w{q.data(), n, k, k, s.data(), group};
        gemv_int8(1, a.data(), k, w, y.data(), n);
        (group ? e_g32 : e_row) = test::nmse(y, ref);
        // What A's int16 form costs: against the f32 A on the same int8 weights, each output within
        // half a step of A times sum |w| (the bound of the rounding), plus the scaling's rounding.
        std::vector<std::int16_t> qa(k);
        const double sa = quantize_int16(a.data(), k, qa.data());
        double worst = 0;
        for (std::size_t j = 0; j < n; ++j) {
            double exact_a = 0, wsum = 0;
            for (std::size_t i = 0; i < k; ++i) {
                exact_a += double(a[i]) * w.scale(j, i) * q[j * k + i];
                wsum += std::fabs(double(w.scale(j, i)) * q[j * k + i]);
            }
            worst = std::max(worst, std::fabs(y[j] - exact_a) / (0.5 * sa * wsum + 1e-6 * std::fabs(exact_a) + 1e-30));
        }
        INFO("group " << group << ": worst error from A's int16 form / its bound " << worst);
        CHECK(worst <= 1.0);
    }
    // Normal weights: a step of max|w| / 127 gives an error variance of step^2 / 12 per weight;
    // max|w| ~ 3.5 sigma over a row of 2048, ~2.0 sigma over 32, so the predicted NMSE is
    // (3.5 / 127)^2 / 12 = 6.3e-5 per row and (2.0 / 127)^2 / 12 = 2.1e-5 per 32.
    std::printf("  int8 GEMV vs f32 weights (n %zu, k %zu, normal weights): NMSE per row %.2e, per 32 %.2e\n", n, k, e_row, e_g32);
    CHECK(e_row < 1e-4);
    CHECK(e_g32 < 4e-5);

    std::vector<std::int8_t> q(4);
    std::vector<float> s(1), c(1), x(4);
    CHECK_THROWS_WITH(gemv_int8(5, x.data(), 4, int8_matrix{q.data(), 1, 4, 4, s.data(), 0}, c.data(), 1),
                      Catch::Contains("too many rows"));
    CHECK_THROWS_WITH(gemv_int8(1, x.data(), 4, int8_matrix{q.data(), 1, 4, 3, s.data(), 0}, c.data(), 1),
                      Catch::Contains("row stride"));
    CHECK_THROWS_WITH(gemv_int8(1, x.data(), 2, int8_matrix{q.data(), 1, 4, 4, s.data(), 0}, c.data(), 1),
                      Catch::Contains("lda >= k = 4"));
    CHECK_THROWS_WITH(gemv_int8(1, x.data(), 4, int8_matrix{nullptr, 1, 4, 4, s.data(), 0}, c.data(), 1),
                      Catch::Contains("int8 matrix"));
    // gemm_int8 names itself on both of its paths (up to 4 rows it runs gemv_int8's kernel).
    CHECK_THROWS_WITH(gemm_int8(2, x.data(), 2, int8_matrix{q.data(), 1, 4, 4, s.data(), 0}, c.data(), 1),
                      Catch::Contains("gemm_int8 operands") && Catch::Contains("lda >= k = 4"));
    CHECK_THROWS_WITH(gemm_int8(6, x.data(), 4, int8_matrix{q.data(), 1, 4, 4, s.data(), 0}, c.data(), 0),
                      Catch::Contains("gemm_int8 operands") && Catch::Contains("ldc >= n = 1"));
}

namespace {
// The double reference of the integer-product engine: A quantised per row (quantize_uint8), the
// exact integer sums of (q_a - 128) q_w, then alpha s_a s_w, the bias, GELU (tanh), + C.
struct vnni_reference {
    std::vector<std::uint8_t> qa;
    std::vector<float> sa;
    vnni_reference(const std::vector<float>& a, std::size_t m, std::size_t k, std::size_t lda) : qa(m * k), sa(m) {
        for (std::size_t r = 0; r < m; ++r) sa[r] = int8_products::quantize_uint8(a.data() + r * lda, k, qa.data() + r * k);
    }
    double dot(std::size_t r, const int8_matrix& w, std::size_t j) const {
        std::int64_t s = 0;
        for (std::size_t i = 0; i < w.k; ++i) s += (std::int64_t{qa[r * w.k + i]} - 128) * w.q[j * w.ld + i];
        return static_cast<double>(s) * sa[r] * w.scales[j];
    }
};
}  // namespace

TEST_CASE("int8_products: quantize_uint8 within half a step of 1/127, the largest value at 1 or 255, zero rows at 128, non-finite rows NaN", "[kernels][int8]") {
    const std::size_t k = 301;
    auto a = test::random_vector(k, 81, 3.f);
    std::vector<std::uint8_t> q(k);
    const float s = int8_products::quantize_uint8(a.data(), k, q.data());
    float amax = 0.f;
    for (float v : a) amax = std::max(amax, std::fabs(v));
    CHECK(s == amax / 127.f);
    int extreme = 0;
    for (std::size_t i = 0; i < k; ++i) {
        REQUIRE(q[i] >= 1);
        const int v = int(q[i]) - 128;
        REQUIRE(std::fabs(double(a[i]) - double(s) * v) <= 0.5 * s * (1 + 1e-5));
        extreme = std::max(extreme, std::abs(v));
    }
    CHECK(extreme == 127);
    std::vector<float> zero(k, 0.f);
    CHECK(int8_products::quantize_uint8(zero.data(), k, q.data()) == 0.f);
    CHECK(std::all_of(q.begin(), q.end(), [](std::uint8_t v) { return v == 128; }));
    a[17] = std::numeric_limits<float>::infinity();
    CHECK(std::isnan(int8_products::quantize_uint8(a.data(), k, q.data())));
    CHECK(std::all_of(q.begin(), q.end(), [](std::uint8_t v) { return v == 128; }));
}

TEST_CASE("int8_products: the vpdpbusd GEMM against a double reference of its integer products, odd shapes, strides, epilogues, threads", "[kernels][int8]") {
    using int8_products::backend;
    if (!int8_products::available(backend::avx512_vnni)) {
        PALI3_TEST_SKIP("this CPU has no AVX512-VNNI: the integer-product engine is not tested here");
    }
    struct shape {
        std::size_t m, n, k, ld;
    };
    core::thread_pool pool(2);
    for (const shape sh : {shape{5, 17, 33, 33}, shape{37, 45, 130, 132}, shape{70, 300, 67, 67}, shape{9, 16, 64, 64},
                           shape{33, 257, 1, 1}, shape{600, 33, 129, 131}, shape{200, 70, 1000, 1000}}) {
        INFO("m " << sh.m << " n " << sh.n << " k " << sh.k << " ld " << sh.ld);
        const auto wf = test::random_vector(sh.n * sh.ld, 271);
        std::vector<std::int8_t> q(sh.n * sh.ld, 0);
        std::vector<float> s(sh.n);
        quantize_int8(wf.data(), sh.n, sh.k, sh.ld, 0, q.data(), sh.ld, s.data());
        const int8_matrix w{q.data(), sh.n, sh.k, sh.ld, s.data(), 0};
        const std::size_t lda = sh.k + 3, ldc = sh.n + 2;
        auto a = test::random_vector(sh.m * lda, 272, 2.f);
        for (std::size_t i = 0; i < sh.k; ++i) a[2 * lda + i] = 0.f;  // an all-zero row
        const auto bias = test::random_vector(sh.n, 273);
        const auto c0 = test::random_vector(sh.m * ldc, 274);
        const vnni_reference ref(a, sh.m, sh.k, lda);
        const epilogue<act::gelu_tanh> ep{bias.data(), 0.5f, true};
        std::vector<float> c1(c0), c2(c0), c3(c0), c4(c0);
        int8_products::gemm_int8(backend::avx512_vnni, sh.m, a.data(), lda, w, c1.data(), ldc, epilogue<>{}, pool);
        int8_products::gemm_int8(backend::avx512_vnni, sh.m, a.data(), lda, w, c2.data(), ldc, epilogue<>{}, pool, 3, 0);
        core::sequential seq;
        int8_products::gemm_int8(backend::avx512_vnni, sh.m, a.data(), lda, w, c3.data(), ldc, ep, seq);
        int8_products::gemm_int8(backend::avx512_vnni, sh.m, a.data(), lda, w, c4.data(), ldc, ep, pool, 3, 0);
        CHECK(c1 == c2);  // one order of summation for any thread count
        CHECK(c3 == c4);
        {  // W packed once (int8_products::pack_weights): the same bits; a pack of another matrix is ignored
            const auto packed = int8_products::pack_weights(w);
            REQUIRE(packed);
            CHECK(packed->made_from(w));
            int8_matrix wp = w;
            wp.prepacked = packed.get();
            std::vector<float> c5(c0), c6(c0);
            int8_products::gemm_int8(backend::avx512_vnni, sh.m, a.data(), lda, wp, c5.data(), ldc, epilogue<>{}, pool, 3, 0);
            int8_products::gemm_int8(backend::avx512_vnni, sh.m, a.data(), lda, wp, c6.data(), ldc, ep, seq);
            CHECK(c5 == c1);
            CHECK(c6 == c3);
            std::vector<float> other_s(s);
            other_s[0] *= 2.f;
            wp.scales = other_s.data();  // same values, other scales: the pack does not fit
            CHECK_FALSE(packed->made_from(wp));
            std::vector<float> c7(c0), c8(c0);
            int8_products::gemm_int8(backend::avx512_vnni, sh.m, a.data(), lda, wp, c7.data(), ldc, epilogue<>{}, seq);
            wp.prepacked = nullptr;
            int8_products::gemm_int8(backend::avx512_vnni, sh.m, a.data(), lda, wp, c8.data(), ldc, epilogue<>{}, seq);
            CHECK(c7 == c8);
            CHECK(c7 != c1);
        }
        std::vector<float> got, got_ep;
        std::vector<double> want, want_ep;
        for (std::size_t r = 0; r < sh.m; ++r) {
            for (std::size_t j = 0; j < sh.n; ++j) {
                const double d = ref.dot(r, w, j);
                got.push_back(c1[r * ldc + j]);
                want.push_back(d);
                const double x = 0.5 * d + bias[j];
                const double g = 0.5 * x * (1 + std::tanh(0.7978845608028654 * (x + 0.044715 * x * x * x)));
                got_ep.push_back(c3[r * ldc + j]);
                want_ep.push_back(g + c0[r * ldc + j]);
                if (r == 2) REQUIRE(c1[r * ldc + j] == 0.f);
            }
            for (std::size_t j = sh.n; j < ldc; ++j) {  // the padding between rows of C is untouched
                REQUIRE(c1[r * ldc + j] == c0[r * ldc + j]);
                REQUIRE(c3[r * ldc + j] == c0[r * ldc + j]);
            }
        }
        const double e = test::nmse(got, want), e_ep = test::nmse(got_ep, want_ep);
        INFO("nmse against the exact integer products, scaled in double: " << e << ", with the epilogue " << e_ep);
        CHECK(e < 1e-13);
        CHECK(e_ep < 1e-11);
        // Against the f32 product of the dequantised weights: what quantising A per row costs.
        std::vector<double> exact;
        for (std::size_t r = 0; r < sh.m; ++r)
            for (std::size_t j = 0; j < sh.n; ++j) {
                double x = 0;
                for (std::size_t i = 0; i < sh.k; ++i) x += double(a[r * lda + i]) * s[j] * q[j * sh.ld + i];
                exact.push_back(x);
            }
        const double eq = test::nmse(got, exact);
        INFO("nmse against the f32 A: " << eq);
        CHECK(eq < (sh.k == 1 ? 1e-4 : 3e-4));
    }
}

TEST_CASE("int8_products: the largest sums (k = max_k) stay exact in int32; NaN or Inf in a row of A gives NaN in that row only", "[kernels][int8]") {
    using int8_products::backend;
    if (!int8_products::available(backend::avx512_vnni)) {
        PALI3_TEST_SKIP("this CPU has no AVX512-VNNI: the integer-product engine is not tested here");
    }
    const std::size_t m = 6, n = 19, k = int8_products::max_k;
    std::vector<float> a(m * k, 1.f), c(m * n);
    for (std::size_t i = 0; i < k; ++i) a[k + i] = -1.f;  // row 1: q_a = -127 (u8 1)
    std::vector<std::int8_t> q(n * k, 127);
    for (std::size_t i = 0; i < k; ++i) q[k + i] = -127;  // W row 1: -127
    std::vector<float> s(n, 1.f / 127.f);
    a[3 * k + 5] = std::numeric_limits<float>::quiet_NaN();
    a[4 * k + 7] = -std::numeric_limits<float>::infinity();
    const int8_matrix w{q.data(), n, k, k, s.data(), 0};
    core::sequential seq;
    int8_products::gemm_int8(backend::avx512_vnni, m, a.data(), k, w, c.data(), n, epilogue<>{}, seq);
    for (std::size_t r : {std::size_t{0}, std::size_t{1}, std::size_t{2}, std::size_t{5}})
        for (std::size_t j = 0; j < n; ++j) {
            const double want = (r == 1 ? -1.0 : 1.0) * (j == 1 ? -1.0 : 1.0) * double(k);
            INFO("row " << r << " column " << j);
            REQUIRE(std::fabs(c[r * n + j] - want) <= 1e-6 * k);
        }
    for (std::size_t j = 0; j < n; ++j) {
        REQUIRE(std::isnan(c[3 * n + j]));
        REQUIRE(std::isnan(c[4 * n + j]));
    }
    // Past max_k, and per-group scales, are the portable path's: this engine refuses them by name.
    std::vector<float> s32(n * int8_groups(k, 32), 1.f);
    CHECK_THROWS_WITH(int8_products::gemm_int8(backend::avx512_vnni, m, a.data(), k, int8_matrix{q.data(), n, k, k, s32.data(), 32},
                                               c.data(), n, epilogue<>{}, seq),
                      Catch::Contains("one scale per row") && Catch::Contains("group 32"));
}

TEST_CASE("gemm_int8 takes the integer-product engine by default where the CPU has it, the portable path for groups or when told", "[kernels][int8]") {
    using int8_products::backend;
    const std::size_t m = 23, n = 40, k = 96;
    const auto wf = test::random_vector(n * k, 281), a = test::random_vector(m * k, 282);
    std::vector<std::int8_t> q(n * k);
    std::vector<float> s(n * int8_groups(k, 32));
    core::sequential seq;
    gemm_tiling<default_arch> portable;
    portable.int8_engine = backend::none;
    for (const std::size_t group : {std::size_t{0}, std::size_t{32}}) {
        quantize_int8(wf.data(), n, k, k, group, q.data(), k, s.data());
        const int8_matrix w{q.data(), n, k, k, s.data(), group};
        std::vector<float> c_default(m * n), c_portable(m * n), c_engine(m * n);
        gemm_int8(m, a.data(), k, w, c_default.data(), n);
        gemm_int8(m, a.data(), k, w, c_portable.data(), n, epilogue<>{}, seq, portable);
        INFO("group " << group << ", engine in use " << int8_products::backend_name(int8_products::backend_in_use()));
        if (group == 0 && int8_products::enabled()) {
            int8_products::gemm_int8(int8_products::backend_in_use(), m, a.data(), k, w, c_engine.data(), n, epilogue<>{}, seq);
            CHECK(c_default == c_engine);
            CHECK(c_default != c_portable);  // A quantised to int8 here, exact in f32 there
            CHECK(test::rel_diff(c_default, c_portable) < 2e-2);
        } else {
            CHECK(c_default == c_portable);
        }
        gemm_tiling<default_arch> named;
        named.int8_engine = backend::avx512_vnni;
        if (!int8_products::available(backend::avx512_vnni))
            CHECK_THROWS_WITH(gemm_int8(m, a.data(), k, w, c_engine.data(), n, epilogue<>{}, seq, named),
                              Catch::Contains("int8-product engine not available") && Catch::Contains("AVX512-VNNI"));
    }
}
