// Softmax, norms, activations and elementwise kernels against double references, on widths
// around the SIMD width and the real model widths.
#include <cmath>
#include <limits>
#include <vector>

#include <catch2/catch.hpp>

#include "pali3/kernels/activation.hpp"
#include "pali3/kernels/elementwise.hpp"
#include "pali3/kernels/norm.hpp"
#include "pali3/kernels/reference.hpp"
#include "pali3/kernels/softmax.hpp"
#include "../common.hpp"

using namespace pali3;
using namespace pali3::kernels;

namespace {
const std::size_t widths[] = {1, 2, 7, 15, 16, 17, 33, 100, 257, 768, 1031, 1536};
}

TEST_CASE("softmax is stable and matches the reference", "[kernels][softmax]") {
    for (std::size_t n : widths) {
        for (float scale : {1.f, 0.125f, 3.f}) {
            auto x = test::random_vector(n, static_cast<std::uint32_t>(n), 30.f);  // large logits
            const auto expect = ref::softmax(x.data(), n, scale);
            softmax(x.data(), n, scale);
            INFO("n=" << n << " scale=" << scale);
            REQUIRE(test::max_rel_error(x, expect, 1e-30) < 1e-5);
            double s = 0;
            for (float v : x) s += v;
            REQUIRE(s == Approx(1.0).epsilon(1e-5));
        }
    }
    // Huge logits do not overflow.
    std::vector<float> big{1e30f, 1e30f, -1e30f};
    softmax(big.data(), 3, 1e-5f);
    CHECK(big[0] == Approx(0.5));
    CHECK(big[2] == 0.f);
}

TEST_CASE("masked softmax zeroes masked entries and empty rows", "[kernels][softmax]") {
    for (std::size_t n : widths) {
        auto x = test::random_vector(n, 99 + static_cast<std::uint32_t>(n), 4.f);
        std::vector<std::uint8_t> keep(n);
        for (std::size_t i = 0; i < n; ++i) keep[i] = (i * 7 + 3) % 5 != 0;
        const auto expect = ref::softmax(x.data(), n, 0.5, keep.data());
        softmax(x.data(), n, keep.data(), 0.5f);
        REQUIRE(test::max_rel_error(x, expect, 1e-30) < 1e-5);
        for (std::size_t i = 0; i < n; ++i)
            if (!keep[i]) REQUIRE(x[i] == 0.f);
    }
    std::vector<float> x{1.f, 2.f, 3.f};
    std::vector<std::uint8_t> none{0, 0, 0};
    softmax(x.data(), 3, none.data());
    CHECK((x[0] == 0.f && x[1] == 0.f && x[2] == 0.f));

    auto y = test::random_vector(37, 4);
    std::vector<std::uint8_t> prefix(37, 0);
    for (std::size_t i = 0; i < 20; ++i) prefix[i] = 1;
    const auto expect = ref::softmax(y.data(), 37, 1.0, prefix.data());
    softmax_prefix(y.data(), 37, 20);
    CHECK(test::max_rel_error(y, expect, 1e-30) < 1e-5);
}

TEMPLATE_TEST_CASE("layer_norm and rms_norm match the reference", "[kernels][norm]", float, bf16) {
    for (std::size_t width : widths) {
        const std::size_t rows = 5;
        auto x = test::random_vector(rows * width, static_cast<std::uint32_t>(width), 2.f);
        for (std::size_t i = 0; i < x.size(); ++i) x[i] += 3.f;  // a non-zero mean to remove
        const auto g = test::to_storage<TestType>(test::random_vector(width, 1));
        const auto b = test::to_storage<TestType>(test::random_vector(width, 2));
        std::vector<float> y(x.size());
        layer_norm(x.data(), width, y.data(), width, rows, width, g.data(), b.data(), 1e-6f);
        auto expect = ref::layer_norm(x.data(), rows, width, g.data(), b.data(), 1e-6);
        INFO("width " << width);
        if (width > 1) REQUIRE(test::nmse(y, expect) < 1e-11);
        layer_norm(x.data(), width, y.data(), width, rows, width, g.data(), static_cast<const TestType*>(nullptr), 1e-6f);
        expect = ref::layer_norm(x.data(), rows, width, g.data(), static_cast<const TestType*>(nullptr), 1e-6);
        if (width > 1) REQUIRE(test::nmse(y, expect) < 1e-11);
        rms_norm(x.data(), width, y.data(), width, rows, width, g.data(), 1e-6f);
        expect = ref::rms_norm(x.data(), rows, width, g.data(), 1e-6);
        REQUIRE(test::nmse(y, expect) < 1e-12);
        // In place.
        rms_norm(x.data(), width, x.data(), width, rows, width, g.data(), 1e-6f);
        REQUIRE(test::nmse(x, expect) < 1e-12);
    }
}

TEST_CASE("activations match the reference", "[kernels][activation]") {
    for (std::size_t n : widths) {
        const auto x0 = test::random_vector(n, 40 + static_cast<std::uint32_t>(n), 3.f);
        auto check = [&]<class Act>(Act, double (*fn)(double)) {
            auto x = x0;
            apply_activation<Act>(x.data(), n);
            std::vector<double> expect(n);
            for (std::size_t i = 0; i < n; ++i) expect[i] = fn(x0[i]);
            INFO(Act::name << " n=" << n);
            REQUIRE(test::max_rel_error(x, expect, 1e-2) < 2e-6);
        };
        check(act::gelu_tanh{}, &ref::gelu_tanh);
        check(act::gelu_erf{}, &ref::gelu_erf);
        check(act::relu{}, &ref::relu);
        check(act::silu{}, &ref::silu);

        const auto up = test::random_vector(n, 77, 1.f);
        auto gated = [&]<class Act>(Act, double (*fn)(double)) {
            std::vector<float> out(n);
            gated_activation<Act>(x0.data(), up.data(), out.data(), n);
            std::vector<double> expect(n);
            for (std::size_t i = 0; i < n; ++i) expect[i] = fn(x0[i]) * up[i];
            INFO("gated " << Act::name << " n=" << n);
            REQUIRE(test::max_rel_error(out, expect, 1e-2) < 2e-6);
        };
        gated(act::gelu_tanh{}, &ref::gelu_tanh);
        gated(act::silu{}, &ref::silu);
        gated(act::gelu_erf{}, &ref::gelu_erf);
    }
    // Far tails: no NaN, exact limits.
    std::vector<float> t{-200.f, -50.f, 50.f, 200.f, std::numeric_limits<float>::infinity()};
    apply_activation<act::gelu_tanh>(t.data(), t.size());
    CHECK(t[0] == 0.f);
    CHECK(t[1] == 0.f);
    CHECK(t[2] == 50.f);
    CHECK(t[3] == 200.f);
    std::vector<float> s{-200.f, -50.f, 50.f, 200.f, std::numeric_limits<float>::infinity()};
    apply_activation<act::silu>(s.data(), s.size());
    CHECK(s[0] == 0.f);
    CHECK(std::abs(s[1]) < 1e-20f);
    CHECK(s[2] == 50.f);
    CHECK(s[3] == 200.f);
    CHECK(s[4] == std::numeric_limits<float>::infinity());
}

TEST_CASE("activations by name", "[kernels][activation]") {
    for (const auto& [id, name] : activation_names) {
        CHECK(activation_from_name(name, "test") == id);
        CHECK(name_of(id) == name);
        const activation_id want = id;  // a structured binding cannot be captured before C++20's P1091 (clang 14)
        with_activation(id, [&]<class A>(std::type_identity<A>) { CHECK(id_of<A>() == want); });
    }
    CHECK_THROWS_WITH(activation_from_name("gelu", "cfg.act"),
                      Catch::Contains("unknown activation (at cfg.act)") && Catch::Contains("relu, gelu_tanh, gelu_erf or silu"));
    CHECK_THROWS_AS(with_activation(activation_id::of_type, [](auto) {}), pali3::config_error);
    // A fixed policy refuses a config naming another; by_config takes any, of_type -> Fused.
    CHECK(resolve_activation<act::gelu_tanh>(activation_id::of_type, "mlp") == activation_id::of_type);
    CHECK(resolve_activation<act::gelu_tanh>(activation_id::gelu_tanh, "mlp") == activation_id::gelu_tanh);
    CHECK_THROWS_WITH(resolve_activation<act::gelu_tanh>(activation_id::silu, "mlp"),
                      Catch::Contains("expected gelu_tanh") && Catch::Contains("found silu"));
    CHECK(resolve_activation<act::by_config<act::relu>>(activation_id::of_type, "mlp") == activation_id::relu);
    CHECK(resolve_activation<act::by_config<act::relu>>(activation_id::gelu_erf, "mlp") == activation_id::gelu_erf);
}

TEST_CASE("elementwise kernels", "[kernels][elementwise]") {
    for (std::size_t n : widths) {
        const auto a = test::random_vector(n, 1), b = test::random_vector(n, 2);
        std::vector<float> out(n);
        add(a.data(), b.data(), out.data(), n);
        for (std::size_t i = 0; i < n; ++i) REQUIRE(out[i] == a[i] + b[i]);
        out = a;
        scale(out.data(), 0.3f, n);
        for (std::size_t i = 0; i < n; ++i) REQUIRE(out[i] == a[i] * 0.3f);
        out = b;
        axpy(0.7f, a.data(), out.data(), n);
        for (std::size_t i = 0; i < n; ++i) REQUIRE(out[i] == Approx(b[i] + 0.7 * a[i]).epsilon(1e-6).margin(1e-6));
    }
}
