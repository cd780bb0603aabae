// The SigLIP loss against a plain double-precision reference, its gradients against central
// finite differences of that reference, and the chunked form against the direct one.
#include <cmath>
#include <vector>

#include <catch2/catch.hpp>

#include "pali3/loss/siglip_loss.hpp"
#include "../common.hpp"

using namespace pali3;

namespace {
// Everything in double, straight from the definition.
double reference_loss(const std::vector<double>& img, const std::vector<double>& txt, std::size_t n, std::size_t d,
                      double log_t, double b) {
    auto unit = [&](const std::vector<double>& x) {
        std::vector<double> u(x.size());
        for (std::size_t i = 0; i < n; ++i) {
            double s = 0;
            for (std::size_t k = 0; k < d; ++k) s += x[i * d + k] * x[i * d + k];
            for (std::size_t k = 0; k < d; ++k) u[i * d + k] = x[i * d + k] / (std::sqrt(s) + 1e-8);
        }
        return u;
    };
    const auto u = unit(img), v = unit(txt);
    double loss = 0;
    for (std::size_t i = 0; i < n; ++i)
        for (std::size_t j = 0; j < n; ++j) {
            double dot = 0;
            for (std::size_t k = 0; k < d; ++k) dot += u[i * d + k] * v[j * d + k];
            const double z = (i == j ? 1 : -1) * (std::exp(log_t) * dot + b);
            loss -= std::log(1 / (1 + std::exp(-z)));
        }
    return loss / static_cast<double>(n);
}
}  // namespace

TEST_CASE("SigLIP loss and gradients match the double reference and finite differences", "[loss][siglip]") {
    const std::size_t n = 13, d = 37;
    const auto img = test::random_vector(n * d, 1), txt = test::random_vector(n * d, 2);
    // Make the positives correlated so the loss is not trivially at its init value.
    std::vector<float> txt2 = txt;
    for (std::size_t i = 0; i < n * d; ++i) txt2[i] = 0.6f * img[i] + 0.8f * txt[i];
    const float log_t = std::log(10.f), b = -2.5f;
    std::vector<double> xi(img.begin(), img.end()), xt(txt2.begin(), txt2.end());

    std::vector<float> gi(n * d), gt(n * d), gu(n * d), gv(n * d);
    const auto r = loss::siglip_loss(img.data(), txt2.data(), n, d, log_t, b, {gi.data(), gt.data(), gu.data(), gv.data()});
    const double ref = reference_loss(xi, xt, n, d, log_t, b);
    INFO("loss " << r.loss << " reference " << ref);
    CHECK(r.loss == Approx(ref).epsilon(1e-6));

    const double h = 1e-5;
    auto fd = [&](auto&& perturb) {
        const double up = perturb(h), down = perturb(-h);
        return (up - down) / (2 * h);
    };
    CHECK(r.d_bias == Approx(fd([&](double e) { return reference_loss(xi, xt, n, d, log_t, b + e); })).epsilon(1e-5));
    CHECK(r.d_log_t == Approx(fd([&](double e) { return reference_loss(xi, xt, n, d, log_t + e, b); })).epsilon(1e-5));
    double worst = 0, scale = 0;
    for (std::size_t idx = 0; idx < n * d; idx += 7) {
        const double gimg = fd([&](double e) { auto x = xi; x[idx] += e; return reference_loss(x, xt, n, d, log_t, b); });
        const double gtxt = fd([&](double e) { auto x = xt; x[idx] += e; return reference_loss(xi, x, n, d, log_t, b); });
        worst = std::max({worst, std::abs(gimg - gi[idx]), std::abs(gtxt - gt[idx])});
        scale = std::max({scale, std::abs(gimg), std::abs(gtxt)});
    }
    INFO("max |analytic - finite difference| = " << worst << " of max |grad| " << scale);
    CHECK(worst < 1e-4 * scale);
    // Gradients after normalisation are the pre-normalisation ones before the projection: a
    // rescaling of an embedding (which normalisation removes) has zero directional derivative.
    double radial = 0;
    for (std::size_t i = 0; i < n; ++i) {
        double dot = 0;
        for (std::size_t k = 0; k < d; ++k) dot += double(gi[i * d + k]) * img[i * d + k];
        radial = std::max(radial, std::abs(dot));
    }
    CHECK(radial < 1e-6);
    double unit_norm = 0;
    for (float g : gu) unit_norm += double(g) * g;
    CHECK(unit_norm > 0);
}

TEST_CASE("chunked SigLIP loss equals the direct one", "[loss][siglip]") {
    const std::size_t n = 29, d = 19;
    const auto img = test::random_vector(n * d, 3), txt = test::random_vector(n * d, 4);
    std::vector<float> g0(n * d), t0(n * d), g1(n * d), t1(n * d);
    const auto direct = loss::siglip_loss(img.data(), txt.data(), n, d, 2.3f, -10.f, {g0.data(), t0.data()});
    for (std::size_t block : {1u, 4u, 7u, 28u}) {
        const auto chunked = loss::siglip_loss(img.data(), txt.data(), n, d, 2.3f, -10.f, {g1.data(), t1.data()}, block);
        INFO("block " << block);
        // Equal up to f32 rounding of the logits (tiles of <= 4 rows take the GEMV path, whose
        // summation order differs by an ulp); the scalars are accumulated in double.
        CHECK(chunked.loss == Approx(direct.loss).epsilon(1e-7));
        CHECK(chunked.d_bias == Approx(direct.d_bias).epsilon(1e-6));
        CHECK(chunked.d_log_t == Approx(direct.d_log_t).epsilon(1e-6));
        std::vector<double> ref(g0.begin(), g0.end());
        CHECK(test::nmse(g1, ref) < 1e-12);
        std::vector<double> reft(t0.begin(), t0.end());
        CHECK(test::nmse(t1, reft) < 1e-12);
    }
    CHECK_THROWS_AS(loss::siglip_loss(img.data(), txt.data(), 0, d, 2.3f, -10.f), shape_error);
    CHECK_THROWS_AS(loss::siglip_loss(img.data(), txt.data(), n, d, NAN, -10.f), value_error);
}
