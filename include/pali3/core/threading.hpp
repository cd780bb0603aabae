// Threading policies. The caller owns the threads and chooses how many; kernels receive an
// executor and split their work into tasks, never spawning threads of their own.
//   sequential   - runs every task on the calling thread.
//   thread_pool  - N-1 persistent workers plus the caller; run() blocks until all tasks finish.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <concepts>
#include <condition_variable>
#include <cstddef>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

#include "pali3/core/error.hpp"

namespace pali3::core {

// An executor runs tasks 0..n-1, each exactly once, and returns when all are done.
template <class E>
concept executor = requires(E& e, std::size_t n, void (*fn)(std::size_t)) {
    { e.size() } -> std::convertible_to<std::size_t>;
    e.run(n, fn);
};

struct sequential {
    static constexpr std::size_t size() noexcept { return 1; }
    template <class F>
    void run(std::size_t n, F&& fn) const {
        for (std::size_t i = 0; i < n; ++i) fn(i);
    }
};

// A short pause inside a spin-wait loop (x86 `pause`, Arm `yield`): lets the sibling hyper-thread
// run and saves power while a thread polls for work.
[[gnu::always_inline]] inline void spin_pause() noexcept {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    asm volatile("yield");
#endif
}

class thread_pool {
public:
    // How long an idle worker polls for the next job, and the caller for the workers to finish,
    // before sleeping on a condition variable. A decode step hands ~300 short jobs to the pool;
    // waking a sleeping thread costs a futex call and a context switch on each side (tens of
    // microseconds on a virtual machine: 11 % of a 5B int8 decode step's samples were in the
    // kernel's wake-up path), polling costs nothing while the next job comes within this time.
    static constexpr std::chrono::microseconds default_spin{200};

    // `threads` counts the calling thread: thread_pool(2) starts one worker. `spin`: how long
    // to poll before sleeping (0: sleep at once, as a pool sharing its cores with other work may
    // prefer).
    explicit thread_pool(std::size_t threads, std::chrono::microseconds spin = default_spin)
        : size_(threads), spin_(spin) {
        if (threads == 0 || threads > 1024)
            throw value_error(describe("thread count out of range", "thread_pool", "1..1024",
                                       threads));
        workers_.reserve(threads - 1);
        for (std::size_t i = 1; i < threads; ++i) workers_.emplace_back([this] { worker_loop(); });
    }

    thread_pool(const thread_pool&) = delete;
    thread_pool& operator=(const thread_pool&) = delete;

    ~thread_pool() {
        {
            std::lock_guard lock(mutex_);
            stop_.store(true, std::memory_order_release);
        }
        wake_.notify_all();
        for (auto& t : workers_) t.join();
    }

    std::size_t size() const noexcept { return size_; }

    // Runs fn(0..n-1) across the pool. A task that throws stops the hand-out of further tasks;
    // the first exception is rethrown here. Calls from inside a task run inline (no deadlock).
    template <class F>
    void run(std::size_t n, F&& fn) {
        if (n == 0) return;
        if (n == 1 || size_ == 1 || inside_task()) {
            for (std::size_t i = 0; i < n; ++i) fn(i);
            return;
        }
        std::lock_guard run_lock(run_mutex_);  // one job at a time per pool
        job_ = [&fn](std::size_t i) { fn(i); };
        {
            std::lock_guard lock(mutex_);
            job_size_ = n;
            next_.store(0, std::memory_order_relaxed);
            failed_.store(false, std::memory_order_relaxed);
            error_ = nullptr;
            active_.store(workers_.size(), std::memory_order_relaxed);
            generation_.fetch_add(1, std::memory_order_release);  // publishes the job to polling workers
        }
        wake_.notify_all();  // no system call when every worker is polling, none waiting
        work();
        if (!poll([this] { return active_.load(std::memory_order_acquire) == 0; })) {
            std::unique_lock lock(mutex_);
            done_.wait(lock, [this] { return active_.load(std::memory_order_acquire) == 0; });
        }
        job_ = nullptr;
        if (error_) std::rethrow_exception(error_);
    }

private:
    static bool& inside_task() {
        thread_local bool inside = false;
        return inside;
    }

    // Polls `ready` for up to spin_; true when it became true.
    template <class Ready>
    bool poll(Ready ready) const {
        if (ready()) return true;
        if (spin_.count() <= 0) return false;
        const auto until = std::chrono::steady_clock::now() + spin_;
        for (;;) {
            for (int i = 0; i < 64; ++i) {
                spin_pause();
                if (ready()) return true;
            }
            if (std::chrono::steady_clock::now() >= until) return false;
        }
    }

    void work() {
        inside_task() = true;
        for (;;) {
            if (failed_.load(std::memory_order_relaxed)) break;
            const std::size_t i = next_.fetch_add(1, std::memory_order_relaxed);
            if (i >= job_size_) break;
            try {
                job_(i);
            } catch (...) {
                std::lock_guard lock(mutex_);
                if (!error_) error_ = std::current_exception();
                failed_.store(true, std::memory_order_relaxed);
            }
        }
        inside_task() = false;
    }

    void worker_loop() {
        std::size_t seen = 0;
        for (;;) {
            const auto fresh = [&] {
                return stop_.load(std::memory_order_acquire) || generation_.load(std::memory_order_acquire) != seen;
            };
            if (!poll(fresh)) {
                std::unique_lock lock(mutex_);
                wake_.wait(lock, fresh);
            }
            if (stop_.load(std::memory_order_acquire)) return;
            seen = generation_.load(std::memory_order_acquire);
            work();
            // The last worker out takes the mutex before notifying, so a caller that found work
            // left and went to sleep is woken; a polling caller sees active_ reach 0 at once.
            if (active_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
                { std::lock_guard lock(mutex_); }
                done_.notify_one();
            }
        }
    }

    std::size_t size_;
    std::chrono::microseconds spin_;
    std::vector<std::thread> workers_;
    std::mutex run_mutex_;
    std::mutex mutex_;
    std::condition_variable wake_;
    std::condition_variable done_;
    std::function<void(std::size_t)> job_;
    std::size_t job_size_ = 0;
    std::atomic<std::size_t> next_{0};
    std::atomic<bool> failed_{false};
    std::exception_ptr error_;
    std::atomic<std::size_t> active_{0};
    std::atomic<std::size_t> generation_{0};
    std::atomic<bool> stop_{false};
};

static_assert(executor<sequential>);
static_assert(executor<thread_pool>);

// The half-open range [begin, end) of part `i` when `n` items are cut into `parts` nearly equal
// pieces whose boundaries fall on multiples of `grain` (except the last end, which is n).
struct range {
    std::size_t begin, end;
};
inline range split(std::size_t n, std::size_t parts, std::size_t i, std::size_t grain = 1) {
    const std::size_t blocks = (n + grain - 1) / grain;
    const std::size_t b0 = blocks * i / parts, b1 = blocks * (i + 1) / parts;
    return {std::min(n, b0 * grain), std::min(n, b1 * grain)};
}

// fn(begin, end) over [0, n) cut into up to exec.size() parts of at least `grain` items each,
// boundaries on multiples of `grain` (an element-wise kernel split on SIMD-width multiples gives
// the same bits on any thread count); one call on the calling thread below 2 grains.
template <executor E, class F>
void for_ranges(E& exec, std::size_t n, std::size_t grain, F&& fn) {
    const std::size_t parts = std::max<std::size_t>(1, std::min<std::size_t>(exec.size(), n / grain));
    if (parts == 1) {
        fn(std::size_t{0}, n);
        return;
    }
    exec.run(parts, [&](std::size_t t) {
        const range r = split(n, parts, t, grain);
        if (r.begin < r.end) fn(r.begin, r.end);
    });
}

}  // namespace pali3::core
