// Helpers shared by the tests: seeded random data (never zeros) and error measures against
// double-precision references.
#pragma once

#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <iostream>
#include <random>
#include <sstream>
#include <thread>
#include <vector>

#include "pali3/core/storage.hpp"
#include "pali3/core/threading.hpp"
#include "pali3/kernels/amx.hpp"  // the former name: kept working (namespace amx = bf16_products)

// Ends the current test case as skipped: a case that needs hardware this machine lacks (AMX tiles,
// AVX512-VNNI...). The line on stdout is what CTest's SKIP_REGULAR_EXPRESSION (tests/CMakeLists.txt)
// reports as "Skipped", rather than a pass that tested nothing; the WARN tells a direct run of the
// test binary. Use it at the top of a TEST_CASE, before any check, so that nothing else is lost.
#define PALI3_TEST_SKIP(why)                                                        \
    do {                                                                            \
        std::ostringstream pali3_skip_reason;                                       \
        pali3_skip_reason << why;                                                   \
        std::cout << "pali3-test-skipped: " << pali3_skip_reason.str() << std::endl; \
        WARN("skipped: " << pali3_skip_reason.str());                               \
        return;                                                                     \
    } while (false)

// For a case run once per bf16-product engine (PALI3_BF16_ENGINES, a Catch GENERATE): the run of an
// engine this CPU lacks ends with a warning, and the case reports Skipped to CTest only where no
// engine of the list can run (otherwise the runs that did test something would be hidden).
#define PALI3_BF16_ENGINE_UNAVAILABLE(why)                                                    \
    do {                                                                                      \
        if (::pali3::test::any_bf16_engine_available()) {                                   \
            WARN(why);                                                                        \
            return;                                                                           \
        }                                                                                     \
        PALI3_TEST_SKIP(why);                                                                 \
    } while (false)

namespace pali3::test {

// Normal(0, scale) values, seeded; no exact zeros.
inline std::vector<float> random_vector(std::size_t n, std::uint32_t seed, float scale = 1.f) {
    std::mt19937 gen(seed);
    std::normal_distribution<float> dist(0.f, scale);
    std::vector<float> v(n);
    for (auto& x : v) {
        do x = dist(gen);
        while (x == 0.f);
    }
    return v;
}

template <class T>
std::vector<T> to_storage(const std::vector<float>& v) {
    std::vector<T> out(v.size());
    for (std::size_t i = 0; i < v.size(); ++i) {
        if constexpr (std::is_same_v<T, float>) out[i] = v[i];
        else if constexpr (std::is_same_v<T, bf16>) out[i] = to_bf16(v[i]);
        else out[i] = to_f16(v[i]);
    }
    return out;
}

// Selects a bf16-product engine (kernels/amx.hpp) for a scope and restores the previous one on
// every exit; `active` is false when the engine cannot run here (nothing changed then).
struct bf16_engine_scope {
    kernels::amx::backend previous = kernels::amx::backend_in_use();
    bool active;
    explicit bf16_engine_scope(kernels::amx::backend b) : active(kernels::amx::set_backend(b)) {}
    ~bf16_engine_scope() { kernels::amx::set_backend(previous); }
    bf16_engine_scope(const bf16_engine_scope&) = delete;
    bf16_engine_scope& operator=(const bf16_engine_scope&) = delete;
};

// The engines to run a bf16-product test on (Catch2 GENERATE), each where it can run.
inline constexpr std::array<kernels::amx::backend, 2> bf16_engines{kernels::amx::backend::tiles,
                                                                   kernels::amx::backend::avx512_bf16};
inline bool any_bf16_engine_available() {
    return std::any_of(bf16_engines.begin(), bf16_engines.end(), [](auto b) { return kernels::amx::available(b); });
}
#define PALI3_BF16_ENGINES GENERATE(from_range(::pali3::test::bf16_engines))

// NMSE bound for a layer with storage T: `exact` on the f32 paths; with bf16 weights on a CPU with
// a bf16-product engine (AMX tiles, AVX512-BF16) the GEMMs round activations to bf16
// (kernels/amx.hpp), NMSE ~ 4e-6.
template <class T>
double bound_for(double exact) {
    return std::is_same_v<T, bf16> && kernels::amx::enabled() ? 2e-5 : exact;
}

// Normalised mean squared error: sum (got - ref)^2 / sum ref^2.
template <class Got>
double nmse(const Got& got, const std::vector<double>& ref) {
    double num = 0, den = 0;
    for (std::size_t i = 0; i < ref.size(); ++i) {
        const double d = static_cast<double>(got[i]) - ref[i];
        num += d * d;
        den += ref[i] * ref[i];
    }
    return den > 0 ? num / den : num;
}

// The relative L2 distance of a from b: sqrt(sum (a - b)^2 / sum b^2).
inline double rel_diff(const std::vector<float>& a, const std::vector<float>& b) {
    return std::sqrt(nmse(a, std::vector<double>(b.begin(), b.end())));
}

// cos(a, b) in double.
inline double cosine(const std::vector<float>& a, const std::vector<float>& b) {
    double ab = 0, aa = 0, bb = 0;
    for (std::size_t i = 0; i < a.size(); ++i) {
        ab += double(a[i]) * b[i];
        aa += double(a[i]) * a[i];
        bb += double(b[i]) * b[i];
    }
    return ab / std::sqrt(aa * bb);
}

// max |got - ref| / max(|ref|, floor)
template <class Got>
double max_rel_error(const Got& got, const std::vector<double>& ref, double floor = 1e-3) {
    double worst = 0;
    for (std::size_t i = 0; i < ref.size(); ++i) {
        const double d = std::abs(static_cast<double>(got[i]) - ref[i]) / std::max(std::abs(ref[i]), floor);
        worst = std::max(worst, d);
    }
    return worst;
}

// An executor that runs every task on a thread of its own (started for the task), so each task
// runs on a thread other than the caller: catches kernels that reach the caller's thread_local
// state from inside a task (a thread_pool may run every task of a small job on the caller).
struct thread_per_task {
    std::size_t threads = 2;
    std::size_t size() const { return threads; }
    template <class F>
    void run(std::size_t n, F&& fn) const {
        std::vector<std::thread> pool;
        pool.reserve(n);
        for (std::size_t i = 0; i < n; ++i) pool.emplace_back([&fn, i] { fn(i); });
        for (auto& t : pool) t.join();
    }
};

// Any executor behind one type: a kernel called through it is instantiated once, whichever
// executors a test runs it on (each executor type would otherwise instantiate the whole kernel
// again: compile time). Tasks still run exactly as the wrapped executor runs them.
class any_executor {
public:
    template <core::executor E>
    explicit any_executor(E& e)
        : size_(e.size()), run_([&e](std::size_t n, const std::function<void(std::size_t)>& fn) { e.run(n, fn); }) {}
    std::size_t size() const { return size_; }
    template <class F>
    void run(std::size_t n, F&& fn) const {
        run_(n, std::function<void(std::size_t)>(std::ref(fn)));
    }

private:
    std::size_t size_;
    std::function<void(std::size_t, const std::function<void(std::size_t)>&)> run_;
};

}  // namespace pali3::test
