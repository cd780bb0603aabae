#include <algorithm>
#include <atomic>
#include <chrono>
#include <numeric>
#include <stdexcept>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>

#include "pali3/core/threading.hpp"

using namespace pali3;

TEST_CASE("thread_pool runs every task exactly once", "[core][threading]") {
    for (std::size_t threads : {1u, 2u, 3u, 8u}) {
        core::thread_pool pool(threads);
        CHECK(pool.size() == threads);
        for (std::size_t n : {0u, 1u, 2u, 7u, 1000u}) {
            std::vector<std::atomic<int>> hits(n);
            for (int round = 0; round < 3; ++round) pool.run(n, [&](std::size_t i) { hits[i]++; });
            for (auto& h : hits) REQUIRE(h.load() == 3);
        }
    }
}

TEST_CASE("thread_pool rethrows the first task exception and stays usable", "[core][threading]") {
    core::thread_pool pool(3);
    CHECK_THROWS_AS(pool.run(100, [](std::size_t i) {
        if (i == 17) throw std::runtime_error("task 17");
    }), std::runtime_error);
    std::atomic<int> count{0};
    pool.run(50, [&](std::size_t) { count++; });
    CHECK(count == 50);
}

TEST_CASE("nested runs execute inline instead of deadlocking", "[core][threading]") {
    core::thread_pool pool(2);
    std::atomic<int> count{0};
    pool.run(4, [&](std::size_t) { pool.run(5, [&](std::size_t) { count++; }); });
    CHECK(count == 20);
}

TEST_CASE("thread counts out of range are rejected with the range", "[core][threading]") {
    CHECK_THROWS_WITH(core::thread_pool(0), Catch::Contains("expected 1..1024, found 0"));
    CHECK_THROWS_AS(core::thread_pool(5000), value_error);
}

TEST_CASE("split covers the range on grain boundaries", "[core][threading]") {
    for (std::size_t n : {0u, 1u, 5u, 64u, 1000u, 1023u})
        for (std::size_t parts : {1u, 2u, 3u, 7u})
            for (std::size_t grain : {1u, 16u, 64u}) {
                std::size_t expect_begin = 0;
                for (std::size_t i = 0; i < parts; ++i) {
                    const auto r = core::split(n, parts, i, grain);
                    REQUIRE(r.begin == expect_begin);
                    REQUIRE(r.end >= r.begin);
                    if (r.end != n) REQUIRE(r.end % grain == 0);
                    expect_begin = r.end;
                }
                REQUIRE(expect_begin == n);
            }
}

TEST_CASE("thread_pool polling and sleeping give the same results, back to back and after idle gaps", "[core][threading]") {
    // spin 0: every hand-out wakes a sleeping worker; 200 us: the worker polls between jobs;
    // the sleeps let a polling worker give up and sleep, so both paths of each side are taken.
    for (const auto spin : {std::chrono::microseconds(0), std::chrono::microseconds(200)}) {
        core::thread_pool pool(3, spin);
        for (int round = 0; round < 400; ++round) {
            const std::size_t n = 1 + static_cast<std::size_t>(round % 7);
            std::vector<int> hits(n, 0);
            pool.run(n, [&](std::size_t i) { ++hits[i]; });
            REQUIRE(std::count(hits.begin(), hits.end(), 1) == static_cast<long>(n));
            if (round % 50 == 0) std::this_thread::sleep_for(std::chrono::microseconds(500));
        }
        CHECK_THROWS_WITH(pool.run(4, [](std::size_t i) { if (i == 2) throw std::runtime_error("task 2"); }), "task 2");
        std::atomic<int> after{0};
        pool.run(5, [&](std::size_t) { after.fetch_add(1); });
        CHECK(after == 5);
    }
}
