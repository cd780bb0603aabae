// Scratch memory for forward passes: one arena sized once per (config, batch, sequence length)
// and reused, instead of allocating inside layers. Allocation is a pointer bump; a `scope`
// releases everything allocated since it was opened. Running out is an error naming the sizes
// (a wrong size estimate must never become a buffer overrun).
#pragma once

#include <cstddef>
#include <cstdlib>
#include <memory>
#include <new>
#include <span>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "pali3/core/error.hpp"

namespace pali3::core {

// An allocator that leaves new elements uninitialised (value-initialisation would write zeros
// that the caller overwrites anyway: the saved activations and scratch of training are hundreds
// of MB per step). Explicit values (`buffer(n, 0.f)`, `assign`) still fill.
template <class T>
struct default_init_allocator : std::allocator<T> {
    template <class U>
    struct rebind {
        using other = default_init_allocator<U>;
    };
    default_init_allocator() = default;
    template <class U>
    default_init_allocator(const default_init_allocator<U>&) noexcept {}
    template <class U>
    void construct(U* p) noexcept(std::is_nothrow_default_constructible_v<U>) {
        ::new (static_cast<void*>(p)) U;
    }
    template <class U, class... Args>
    void construct(U* p, Args&&... args) {
        ::new (static_cast<void*>(p)) U(std::forward<Args>(args)...);
    }
};

// Float storage for activations and gradients: a vector whose resize does not zero.
using buffer = std::vector<float, default_init_allocator<float>>;

class workspace {
public:
    workspace() = default;
    explicit workspace(std::size_t floats) { reserve(floats); }

    // Grows the arena (only when nothing is allocated).
    void reserve(std::size_t floats) {
        if (floats <= capacity_) return;
        if (used_ != 0)
            throw value_error(describe("workspace resized while in use", "workspace", "0 floats in use", used_));
        const std::size_t bytes = checked_add("workspace bytes", checked_mul("workspace bytes", floats, sizeof(float)), 63) / 64 * 64;
        void* p = std::aligned_alloc(64, bytes);
        if (!p) throw std::bad_alloc();
        data_.reset(static_cast<float*>(p));
        capacity_ = floats;
    }

    // n floats, 64-byte aligned, uninitialised.
    std::span<float> alloc(std::size_t n) {
        const std::size_t start = (used_ + 15) / 16 * 16;
        if (start > capacity_ || n > capacity_ - start)  // no wrap for any n
            throw value_error(describe("workspace too small", "workspace",
                                       std::to_string(start) + " + " + std::to_string(n) + " floats", std::to_string(capacity_) + " floats"));
        used_ = start + n;
        return {data_.get() + start, n};
    }

    std::size_t capacity() const { return capacity_; }
    std::size_t used() const { return used_; }

    // Rounds a request the way alloc() does, for size estimates.
    static constexpr std::size_t padded(std::size_t n) { return (n + 15) / 16 * 16; }

    class scope {
    public:
        explicit scope(workspace& ws) : ws_(ws), mark_(ws.used_) {}
        ~scope() { ws_.used_ = mark_; }
        scope(const scope&) = delete;
        scope& operator=(const scope&) = delete;

    private:
        workspace& ws_;
        std::size_t mark_;
    };

private:
    struct free_deleter {
        void operator()(float* p) const noexcept { std::free(p); }
    };
    std::unique_ptr<float, free_deleter> data_;
    std::size_t capacity_ = 0;
    std::size_t used_ = 0;
};

}  // namespace pali3::core
