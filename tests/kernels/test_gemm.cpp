// GEMM and GEMV against the double-precision reference over odd shapes, every storage type,
// both weight layouts, every epilogue, several thread counts and blockings.
#include <cstring>
#include <tuple>
#include <vector>

#include <catch2/catch.hpp>

#include "pali3/kernels/backward.hpp"
#include "pali3/kernels/gemm.hpp"
#include "pali3/kernels/reference.hpp"
#include "../common.hpp"

using namespace pali3;
using namespace pali3::kernels;

namespace {

struct problem {
    std::size_t m, n, k;
};

// Shapes: M = 1..4 (GEMV path), K = 1, sizes off every SIMD width and tile size, k larger than
// the k block, the real ViT-B/16 MLP shape trimmed in m, and row counts of the in-place path
// (whole 32-row panels, a 16-row tail panel, n off the 14-row W slab), GEMV rows with n past
// the (k, n) kernel's column block (4096 / m columns), and GEMV rows with k past the (k, n)
// kernel's split into two k slices (gemv_kn_split_min_k), with several column parts.
static_assert(detail::gemv_kn_split_min_k <= 256, "the shapes below must reach the (k, n) GEMV's k slices");
const problem shapes[] = {{1, 1, 1},    {1, 33, 65},   {2, 17, 1},    {3, 100, 31},
                          {4, 129, 300}, {5, 7, 3},     {5, 33, 1},    {13, 47, 129},
                          {15, 31, 300}, {29, 65, 257}, {64, 64, 64},  {100, 130, 530},
                          {257, 97, 1031}, {31, 3072, 768}, {1, 19, 5003}, {3, 70, 4099}, {7, 45, 2500},
                          {32, 29, 700},  {48, 15, 77},  {128, 200, 1100},
                          {4, 1100, 37},  {2, 2100, 19}, {3, 1400, 21},
                          {2, 300, 200},  {1, 257, 129}, {4, 256, 67}};

template <class T, class Act>
void check_gemm(const problem& p, weight_layout layout, const epilogue<Act>& ep_template,
                bool with_bias, bool padded, const gemm_tiling<default_arch>& tiling,
                double bound) {
    const std::size_t lda = p.k + (padded ? 3 : 0);
    const std::size_t ldc = p.n + (padded ? 5 : 0);
    const std::size_t ldw = (layout == weight_layout::nk ? p.k : p.n) + (padded ? 7 : 0);
    const std::size_t w_rows = layout == weight_layout::nk ? p.n : p.k;
    const auto seed = static_cast<std::uint32_t>(p.m * 131 + p.n * 7 + p.k);
    const auto a = test::random_vector(p.m * lda, seed);
    const auto wf = test::random_vector(w_rows * ldw, seed + 1, 0.2f);
    const auto w_store = test::to_storage<T>(wf);
    const auto bias = test::random_vector(p.n, seed + 2);
    const auto c0 = test::random_vector(p.m * ldc, seed + 3);
    const weight_ref<T> w{w_store.data(), p.n, p.k, ldw, layout};
    epilogue<Act> ep = ep_template;
    ep.bias = with_bias ? bias.data() : nullptr;

    const auto expect = ref::gemm(p.m, a.data(), lda, w, c0.data(), ldc, ep);

    std::vector<float> first;
    for (std::size_t threads : {1u, 2u, 3u, 4u}) {
        auto c = c0;
        // One gemm instantiation per (storage, activation): the executors behind one type.
        if (threads == 1) {
            core::sequential seq;
            if constexpr (std::is_same_v<Act, act::identity>) gemm(p.m, a.data(), lda, w, c.data(), ldc, ep, seq, tiling);
            else gemm(p.m, a.data(), lda, w, c.data(), ldc, ep, test::any_executor(seq), tiling);
        } else if (threads == 4) {
            test::thread_per_task exec{3};  // every task off the calling thread
            gemm(p.m, a.data(), lda, w, c.data(), ldc, ep, test::any_executor(exec), tiling);
        } else {
            core::thread_pool pool(threads);
            gemm(p.m, a.data(), lda, w, c.data(), ldc, ep, test::any_executor(pool), tiling);
        }
        std::vector<float> got(p.m * p.n);
        for (std::size_t i = 0; i < p.m; ++i)
            for (std::size_t j = 0; j < p.n; ++j) got[i * p.n + j] = c[i * ldc + j];
        const double err = test::nmse(got, expect);
        INFO("m=" << p.m << " n=" << p.n << " k=" << p.k << " layout="
                  << (layout == weight_layout::nk ? "nk" : "kn") << " act=" << Act::name
                  << " bias=" << with_bias << " accumulate=" << ep.accumulate << " threads="
                  << threads << " storage=" << storage_traits<T>::name << " nmse=" << err);
        REQUIRE(err <= bound);
        // Padding columns of C are never written.
        for (std::size_t i = 0; i < p.m; ++i)
            for (std::size_t j = p.n; j < ldc; ++j) REQUIRE(c[i * ldc + j] == c0[i * ldc + j]);
        if (threads == 1) first = got;
        else REQUIRE(std::memcmp(first.data(), got.data(), got.size() * sizeof(float)) == 0);
    }
}

}  // namespace

TEMPLATE_TEST_CASE("gemm matches the double reference", "[kernels][gemm]", float, bf16, f16) {
    // f32 accumulation over k <= 1031 terms of O(1) products: NMSE ~ k * 2^-48, far below 1e-9.
    // The reference uses the same (rounded) stored weights, so the bound holds for bf16 and f16.
    const double bound = 1e-9;
    // The exact-f32 path for every storage (bf16 weights otherwise take AMX where available: below).
    const bool amx_on = amx::enabled();
    amx::set_enabled(false);
    const gemm_tiling<default_arch> defaults{};
    gemm_tiling<default_arch> small{};
    small.kc = 16;
    small.nc = gemm_tiling<default_arch>::nr * 2;
    small.chunks_per_thread = 7;  // threads splitting n take many small column chunks from the queue
    small.parallel_min_macs = 0;  // threads on every product, small ones included
    gemm_tiling<default_arch> fixed{};
    fixed.chunks_per_thread = 1;  // one chunk per thread (the shared packed A, no queue)
    fixed.parallel_min_macs = 0;
    fixed.panel_order_rows = 0;   // W packed a kc x nc block at a time (the order for many rows)
    fixed.inplace_rows = 0;       // and never read in place
    gemm_tiling<default_arch> small_blocks = small;
    small_blocks.panel_order_rows = 0;
    small_blocks.inplace_rows = 0;
    // f32 (n, k) W read in place for every row count, A^T in k blocks of 16-32 (partial sums
    // through C), many column chunks.
    gemm_tiling<default_arch> inplace_blocks = small;
    inplace_blocks.inplace_rows = 1u << 20;
    inplace_blocks.inplace_a_bytes = 4096;
    inplace_blocks.parallel_min_macs = 0;  // threads on every product, small ones included
    for (const auto& p : shapes) {
        for (auto layout : {weight_layout::nk, weight_layout::kn}) {
            check_gemm<TestType>(p, layout, epilogue<>{}, false, false, defaults, bound);
            check_gemm<TestType>(p, layout, epilogue<act::gelu_tanh>{}, true, true, defaults, bound);
            check_gemm<TestType>(p, layout, epilogue<>{nullptr, 0.37f, true}, true, false, small, bound);
            check_gemm<TestType>(p, layout, epilogue<act::relu>{}, true, true, small_blocks, bound);
            check_gemm<TestType>(p, layout, epilogue<act::gelu_erf>{nullptr, 1.f, true}, true, false, small, bound);
            check_gemm<TestType>(p, layout, epilogue<act::gelu_tanh>{nullptr, 0.5f, true}, true, true, fixed, bound);
            check_gemm<TestType>(p, layout, epilogue<>{nullptr, 0.37f, true}, true, true, inplace_blocks, bound);
            check_gemm<TestType>(p, layout, epilogue<act::gelu_tanh>{}, true, false, inplace_blocks, bound);
            check_gemm<TestType>(p, layout, epilogue<act::gelu_erf>{nullptr, 1.f, true}, false, true, inplace_blocks, bound);
            check_gemm<TestType>(p, layout, epilogue<act::silu>{nullptr, 0.5f, false}, true, true, small, bound);
        }
    }
    amx::set_enabled(amx_on);
}

TEST_CASE("bf16 GEMM: the engine named per call equals the same engine chosen for the process", "[kernels][gemm][amx]") {
    const problem p{97, 131, 70};  // odd sizes, tails on every axis
    const auto a = test::random_vector(p.m * p.k, 71);
    const auto w = test::to_storage<bf16>(test::random_vector(p.n * p.k, 72, 0.2f));
    const auto wr = weight_nk(w.data(), p.n, p.k);
    core::thread_pool pool(2);
    for (const auto engine : {bf16_products::backend::none, bf16_products::backend::tiles, bf16_products::backend::avx512_bf16}) {
        INFO("engine " << bf16_products::backend_name(engine));
        gemm_tiling<default_arch> per_call{};
        per_call.bf16_engine = engine;
        per_call.parallel_min_macs = 0;
        std::vector<float> by_call(p.m * p.n), by_process(p.m * p.n);
        if (engine != bf16_products::backend::none && !bf16_products::available(engine)) {
            CHECK_THROWS_WITH(gemm(p.m, a.data(), p.k, wr, by_call.data(), p.n, epilogue<>{}, pool, per_call),
                              Catch::Contains("bf16-product engine not available") &&
                                  Catch::Contains(bf16_products::backend_name(engine)));
            continue;
        }
        const auto before = bf16_products::backend_in_use();
        gemm(p.m, a.data(), p.k, wr, by_call.data(), p.n, epilogue<act::gelu_tanh>{}, pool, per_call);
        CHECK(bf16_products::backend_in_use() == before);  // the call's engine leaves the process's choice alone
        {
            const test::bf16_engine_scope use(engine);  // the process-wide choice, restored after
            REQUIRE(use.active);
            gemm_tiling<default_arch> defaults{};
            defaults.parallel_min_macs = 0;
            gemm(p.m, a.data(), p.k, wr, by_process.data(), p.n, epilogue<act::gelu_tanh>{}, pool, defaults);
        }
        CHECK(std::memcmp(by_call.data(), by_process.data(), by_call.size() * sizeof(float)) == 0);
    }
}

TEST_CASE("bf16-product GEMM (AMX tiles, AVX512-BF16) matches the double reference to bf16 input rounding",
          "[kernels][gemm][amx]") {
    const amx::backend engine = PALI3_BF16_ENGINES;
    const test::bf16_engine_scope use(engine);
    if (!use.active) {
        PALI3_BF16_ENGINE_UNAVAILABLE(amx::backend_name(engine)
                                      << " is not available on this CPU/kernel (or switched off by PALI3_NO_AMX / "
                                         "PALI3_BF16_DOT=0)");
    }
    INFO("engine " << amx::backend_name(engine));
    // A is rounded to bf16 (relative error 2^-9 per element): NMSE ~ 4e-6 for random data.
    const double bound = 2e-5;
    const gemm_tiling<default_arch> defaults{};
    gemm_tiling<default_arch> threaded{};
    threaded.parallel_min_macs = 0;  // small products split across threads too
    for (const auto& p : shapes) {
        for (auto layout : {weight_layout::nk, weight_layout::kn}) {
            check_gemm<bf16>(p, layout, epilogue<>{}, false, false, defaults, bound);
            check_gemm<bf16>(p, layout, epilogue<act::gelu_tanh>{}, true, true, threaded, bound);
            check_gemm<bf16>(p, layout, epilogue<>{nullptr, 0.37f, true}, true, false, defaults, bound);
            check_gemm<bf16>(p, layout, epilogue<act::gelu_erf>{nullptr, 1.f, true}, true, false, threaded, bound);
        }
    }
    // Weights packed once (layers::prepack) give bit-identical results to packing per call.
    for (const auto& p : {problem{37, 300, 77}, problem{600, 530, 1000}, problem{64, 48, 64}}) {
        const auto a = test::random_vector(p.m * p.k, 91);
        const auto w = test::to_storage<bf16>(test::random_vector(p.n * p.k, 92, 0.2f));
        const auto wr = weight_nk(w.data(), p.n, p.k);
        const auto packed = amx::pack_weights(wr);
        REQUIRE(packed);
        auto wp = wr;
        wp.prepacked = packed.get();
        std::vector<float> c1(p.m * p.n), c2(p.m * p.n);
        core::thread_pool pool(2);
        gemm(p.m, a.data(), p.k, wr, c1.data(), p.n, epilogue<act::gelu_tanh>{}, pool);
        gemm(p.m, a.data(), p.k, wp, c2.data(), p.n, epilogue<act::gelu_tanh>{}, pool);
        REQUIRE(std::memcmp(c1.data(), c2.data(), c1.size() * sizeof(float)) == 0);
        // A packing made for another matrix is ignored, not misused.
        auto other = weight_nk(w.data(), p.n - 1, p.k);
        other.prepacked = packed.get();
        std::vector<float> c3((p.m) * (p.n - 1));
        gemm(p.m, a.data(), p.k, other, c3.data(), p.n - 1, epilogue<act::gelu_tanh>{}, pool);
        for (std::size_t i = 0; i < p.m; ++i)
            for (std::size_t j = 0; j + 1 < p.n; ++j)  // (the vector/scalar split of the GELU differs: not bitwise)
                REQUIRE(c3[i * (p.n - 1) + j] == Approx(c1[i * p.n + j]).epsilon(1e-5).margin(1e-6));
    }
    // Shapes past the 512-row and 256-column blocks, odd k.
    check_gemm<bf16>({600, 300, 77}, weight_layout::nk, epilogue<act::relu>{}, true, true, defaults, bound);
    check_gemm<bf16>({45, 530, 1000}, weight_layout::kn, epilogue<>{nullptr, 1.f, true}, true, true, defaults, bound);
    // Many small column chunks per thread (the queue), past the 512-row block.
    gemm_tiling<default_arch> many{};
    many.chunks_per_thread = 7;
    many.parallel_min_macs = 0;
    check_gemm<bf16>({1100, 96, 650}, weight_layout::nk, epilogue<act::gelu_tanh>{nullptr, 0.5f, true}, true, true, many, bound);
}

TEST_CASE("both f32 loop orders (W by panel, W by block) give bit-identical C", "[kernels][gemm]") {
    // Each element of C sums the same products in the same order either way, on any thread count.
    const bool amx_on = amx::enabled();
    amx::set_enabled(false);
    gemm_tiling<default_arch> panel{}, block{};
    panel.panel_order_rows = 1u << 20;
    block.panel_order_rows = 0;
    panel.inplace_rows = block.inplace_rows = 0;  // the packed path, both orders
    panel.parallel_min_macs = block.parallel_min_macs = 0;  // threads on the small shapes too
    for (const problem p : {problem{37, 70, 600}, problem{400, 33, 300}, problem{15, 1001, 77}}) {
        for (auto layout : {weight_layout::nk, weight_layout::kn}) {
            const std::size_t w_rows = layout == weight_layout::nk ? p.n : p.k;
            const std::size_t ldw = layout == weight_layout::nk ? p.k : p.n;
            const auto a = test::random_vector(p.m * p.k, 11);
            const auto w = test::random_vector(w_rows * ldw, 12, 0.2f);
            const auto bias = test::random_vector(p.n, 13);
            const weight_ref<float> wr{w.data(), p.n, p.k, ldw, layout};
            const epilogue<act::gelu_tanh> ep{bias.data()};
            for (std::size_t threads : {1u, 2u}) {
                core::thread_pool pool(threads);
                std::vector<float> c_panel(p.m * p.n), c_block(p.m * p.n);
                gemm(p.m, a.data(), p.k, wr, c_panel.data(), p.n, ep, pool, panel);
                gemm(p.m, a.data(), p.k, wr, c_block.data(), p.n, ep, pool, block);
                INFO("m=" << p.m << " n=" << p.n << " k=" << p.k << " threads=" << threads);
                REQUIRE(std::memcmp(c_panel.data(), c_block.data(), c_panel.size() * sizeof(float)) == 0);
            }
        }
    }
    amx::set_enabled(amx_on);
}

TEST_CASE("f32 weights packed once give the same C as packing per call", "[kernels][gemm]") {
    // Odd shapes, k past one k block (256), n not a multiple of the 32-column panel, both layouts,
    // 1 and 2 threads (split over n and over m), epilogues with bias, activation and accumulate.
    for (const auto& p : {problem{37, 300, 77}, problem{129, 530, 1000}, problem{600, 17, 5}, problem{9, 1025, 40}}) {
        const auto a = test::random_vector(p.m * p.k, 81);
        const auto bias = test::random_vector(p.n, 83);
        const auto c0 = test::random_vector(p.m * p.n, 84);
        for (auto layout : {weight_layout::nk, weight_layout::kn}) {
            const auto w = test::random_vector(p.n * p.k, 82, 0.2f);
            const auto wr = layout == weight_layout::nk ? weight_nk(w.data(), p.n, p.k) : weight_kn(w.data(), p.n, p.k);
            const auto packed = pack_panels(wr);
            REQUIRE(packed);
            REQUIRE(packed->bytes() >= p.n * p.k * sizeof(float));
            auto wp = wr;
            wp.prepacked = packed.get();
            for (std::size_t threads : {1, 2}) {
                core::thread_pool pool(threads);
                std::vector<float> c1 = c0, c2 = c0;
                gemm(p.m, a.data(), p.k, wr, c1.data(), p.n, epilogue<act::gelu_tanh>{bias.data(), 0.5f, true}, pool);
                gemm(p.m, a.data(), p.k, wp, c2.data(), p.n, epilogue<act::gelu_tanh>{bias.data(), 0.5f, true}, pool);
                REQUIRE(std::memcmp(c1.data(), c2.data(), c1.size() * sizeof(float)) == 0);
                c1 = c0;
                c2 = c0;
                gemm(p.m, a.data(), p.k, wr, c1.data(), p.n, epilogue<>{bias.data(), 1.f, true}, pool);
                gemm(p.m, a.data(), p.k, wp, c2.data(), p.n, epilogue<>{bias.data(), 1.f, true}, pool);
                REQUIRE(std::memcmp(c1.data(), c2.data(), c1.size() * sizeof(float)) == 0);
            }
            // And it is right, not merely consistent: against the double reference.
            std::vector<float> c = c0;
            const epilogue<act::gelu_tanh> ep{bias.data(), 0.5f, true};
            gemm(p.m, a.data(), p.k, wp, c.data(), p.n, ep);
            const auto expect = ref::gemm(p.m, a.data(), p.k, wr, c0.data(), p.n, ep);
            const double err = test::nmse(c, expect);
            INFO("m=" << p.m << " n=" << p.n << " k=" << p.k << " nmse=" << err);
            REQUIRE(err <= 1e-9);
            // A packing made for another matrix, or for another k block, is ignored, not misused.
            if (p.n > 1) {
                auto other = wr;
                other.n = p.n - 1;
                other.prepacked = packed.get();
                std::vector<float> c3(p.m * (p.n - 1)), c4(p.m * (p.n - 1));
                auto plain = other;
                plain.prepacked = nullptr;
                gemm(p.m, a.data(), p.k, other, c3.data(), p.n - 1);
                gemm(p.m, a.data(), p.k, plain, c4.data(), p.n - 1);
                REQUIRE(std::memcmp(c3.data(), c4.data(), c3.size() * sizeof(float)) == 0);
            }
            gemm_tiling<default_arch> small;
            small.kc = 64;
            std::vector<float> c5(p.m * p.n), c6(p.m * p.n);
            gemm(p.m, a.data(), p.k, wp, c5.data(), p.n, epilogue<>{}, core::sequential{}, small);
            gemm(p.m, a.data(), p.k, wr, c6.data(), p.n, epilogue<>{}, core::sequential{}, small);
            REQUIRE(std::memcmp(c5.data(), c6.data(), c5.size() * sizeof(float)) == 0);
        }
    }
}

TEST_CASE("bf16 weights against the f32 weights they were rounded from", "[kernels][gemm]") {
    // bf16 keeps 8 significant bits: each weight carries a relative error <= 2^-9, uniform-ish,
    // so the output NMSE is about 2^-18 / 3 ~ 1.3e-6. Bound: 1e-5.
    const problem p{37, 211, 517};
    const auto a = test::random_vector(p.m * p.k, 1);
    const auto wf = test::random_vector(p.n * p.k, 2, 0.1f);
    const auto wb = test::to_storage<bf16>(wf);
    std::vector<float> c(p.m * p.n);
    gemm(p.m, a.data(), p.k, weight_nk(wb.data(), p.n, p.k), c.data(), p.n);
    const auto expect = ref::gemm(p.m, a.data(), p.k, weight_nk(wf.data(), p.n, p.k), nullptr, p.n, epilogue<>{});
    const double err = test::nmse(c, expect);
    INFO("nmse " << err);
    CHECK(err < 1e-5);
    CHECK(err > 1e-8);  // the rounding is really there
}

TEST_CASE("gemv handles up to four rows and matches gemm's rows", "[kernels][gemv]") {
    const std::size_t n = 301, k = 523;
    const auto a = test::random_vector(4 * k, 5);
    const auto wf = test::random_vector(n * k, 6, 0.1f);
    const auto wb = test::to_storage<bf16>(wf);
    for (std::size_t m = 1; m <= 4; ++m) {
        std::vector<float> c(m * n);
        gemv(m, a.data(), k, weight_nk(wb.data(), n, k), c.data(), n);
        const auto expect = ref::gemm(m, a.data(), k, weight_nk(wb.data(), n, k), nullptr, n, epilogue<>{});
        REQUIRE(test::nmse(c, expect) < 1e-10);
    }
    std::vector<float> c(5 * n);
    CHECK_THROWS_AS(gemv(5, a.data(), k, weight_nk(wb.data(), n, k), c.data(), n), shape_error);
}

TEST_CASE("gemm rejects inconsistent operands with a clear message", "[kernels][gemm]") {
    std::vector<float> a(64), w(64), c(64);
    CHECK_THROWS_WITH(gemm(8, a.data(), 4, weight_nk(w.data(), 8, 8), c.data(), 8),
                      "lda smaller than k (at gemm): expected >= 8, found 4");
    CHECK_THROWS_AS(gemm(8, a.data(), 8, weight_nk(w.data(), 8, 8), c.data(), 7), shape_error);
    CHECK_THROWS_AS(gemm(8, a.data(), 8, weight_ref<float>{w.data(), 8, 8, 4, weight_layout::kn}, c.data(), 8), shape_error);
    CHECK_THROWS_AS(gemm(8, a.data(), 8, weight_nk<float>(nullptr, 8, 8), c.data(), 8), value_error);
    CHECK_THROWS_AS(gemm(8, a.data(), 8, weight_nk(w.data(), 0, 8), c.data(), 8), shape_error);
    CHECK_NOTHROW(gemm(0, a.data(), 8, weight_nk(w.data(), 8, 8), c.data(), 8));
}

TEST_CASE("gemm_transposed_a: A read from A^T gives gemm's bits; weight_grad matches the double reference",
          "[kernels][gemm][backward]") {
    gemm_tiling<default_arch> small{};
    small.kc = 16;
    small.nc = gemm_tiling<default_arch>::nr * 2;
    small.chunks_per_thread = 7;
    small.parallel_min_macs = 0;
    gemm_tiling<default_arch> blocks = small;
    blocks.panel_order_rows = 0;  // W packed a kc x nc block at a time
    const problem cases[] = {{5, 7, 3}, {13, 47, 129}, {29, 65, 257}, {64, 64, 64}, {100, 130, 530}, {257, 97, 1031}, {48, 15, 77}};
    for (const auto& p : cases)
        for (auto layout : {weight_layout::nk, weight_layout::kn})
            for (const auto* tiling : {&small, &blocks}) {
                const std::size_t ldat = p.m + 3, ldc = p.n + 5, ldw = (layout == weight_layout::nk ? p.k : p.n) + 2;
                const auto seed = static_cast<std::uint32_t>(p.m * 17 + p.n * 5 + p.k);
                const auto at = test::random_vector(p.k * ldat, seed);  // A^T (k, m)
                const auto wf = test::random_vector((layout == weight_layout::nk ? p.n : p.k) * ldw, seed + 1, 0.2f);
                const auto bias = test::random_vector(p.n, seed + 2);
                const auto c0 = test::random_vector(p.m * ldc, seed + 3);
                std::vector<float> a(p.m * p.k);  // the same A, row-major
                for (std::size_t i = 0; i < p.m; ++i)
                    for (std::size_t q = 0; q < p.k; ++q) a[i * p.k + q] = at[q * ldat + i];
                const weight_ref<float> w{wf.data(), p.n, p.k, ldw, layout};
                const epilogue<act::gelu_tanh> ep{bias.data(), 0.5f, true};
                for (std::size_t threads : {1u, 2u}) {
                    core::thread_pool pool(threads);
                    auto want = c0, got = c0;
                    gemm(p.m, a.data(), p.k, w, want.data(), ldc, ep, pool, *tiling);
                    gemm_transposed_a(p.m, at.data(), ldat, w, got.data(), ldc, ep, pool, *tiling);
                    INFO("m=" << p.m << " n=" << p.n << " k=" << p.k << " threads=" << threads << " kc=" << tiling->kc);
                    REQUIRE(std::memcmp(want.data(), got.data(), got.size() * sizeof(float)) == 0);
                    const auto expect = ref::gemm(p.m, a.data(), p.k, w, c0.data(), ldc, ep);
                    std::vector<float> rows(p.m * p.n);
                    for (std::size_t i = 0; i < p.m; ++i)
                        for (std::size_t j = 0; j < p.n; ++j) rows[i * p.n + j] = got[i * ldc + j];
                    REQUIRE(test::nmse(rows, expect) <= 1e-9);
                }
            }
    // weight_grad: dW (n, k) += dY^T X over m rows, n on both paths (GEMV rows, transposed-A GEMM).
    for (const problem p : {problem{300, 3, 37}, problem{300, 37, 29}, problem{1031, 97, 65}}) {
        const std::size_t m = p.m, n = p.n, k = p.k, lddy = n + 1, ldx = k + 2;
        const auto dy = test::random_vector(m * lddy, 91), x = test::random_vector(m * ldx, 92);
        auto dw = test::random_vector(n * k, 93);
        std::vector<double> expect(dw.begin(), dw.end());
        for (std::size_t j = 0; j < n; ++j)
            for (std::size_t q = 0; q < k; ++q)
                for (std::size_t i = 0; i < m; ++i)
                    expect[j * k + q] += static_cast<double>(dy[i * lddy + j]) * static_cast<double>(x[i * ldx + q]);
        core::thread_pool pool(2);
        weight_grad(m, dy.data(), lddy, n, x.data(), ldx, k, dw.data(), k, pool);
        INFO("m=" << m << " n=" << n << " k=" << k);
        CHECK(test::nmse(dw, expect) <= 1e-9);
    }
    std::vector<float> at(64), w(64), c(64);
    CHECK_THROWS_WITH(gemm_transposed_a(8, at.data(), 4, weight_nk(w.data(), 8, 8), c.data(), 8),
                      "A^T's leading dimension smaller than m (at gemm_transposed_a): expected >= 8, found 4");
    CHECK_THROWS_AS(gemm_transposed_a(3, at.data(), 8, weight_nk(w.data(), 8, 8), c.data(), 8), shape_error);
}
