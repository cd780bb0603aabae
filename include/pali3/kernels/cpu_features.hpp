// What the CPU (and the OS) can run, read once from CPUID: the vendor, AVX512-BF16, AMX tiles (with
// the Linux permission request the tile state needs). Detection only: which engine a kernel uses
// is decided in bf16_products.hpp, per process by default or per call.
#pragma once

#include <atomic>
#include <cstdlib>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__)) && !defined(PALI3_NO_AMX)
#define PALI3_HAVE_AMX_CODE 1
#include <cpuid.h>
#include <immintrin.h>
#include <sys/syscall.h>
#include <unistd.h>
#else
#define PALI3_HAVE_AMX_CODE 0
#endif

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <cpuid.h>
#endif

namespace pali3::kernels {

// True on an AMD CPU (CPUID vendor "AuthenticAMD"), read once. Defaults that measured differently
// on AMD and Intel machines are picked by it (the GEMM's cache blocking, the bf16-product engine;
// docs/speed-log.md, speed log 15).
inline bool cpu_is_amd() noexcept {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    static const bool amd = [] {
        unsigned a = 0, b = 0, c = 0, d = 0;
        if (!__get_cpuid(0, &a, &b, &c, &d)) return false;
        return b == 0x68747541 && d == 0x69746e65 && c == 0x444d4163;  // "Auth" "enti" "cAMD"
    }();
    return amd;
#else
    return false;
#endif
}

// An environment switch: true when set (value: anything but a leading '0').
inline bool env_flag(const char* name, bool& value) {
    const char* env = std::getenv(name);
    if (!env || !*env) return false;
    value = *env != '0';
    return true;
}

#if PALI3_HAVE_AMX_CODE
namespace detail {
// CPUID leaf 7 (sub-leaf 0) when the OS saves the 512-bit state (OSXSAVE, then XCR0: XMM, YMM,
// opmask, ZMM) and AVX-512 F, BW and VL are there; false otherwise.
inline bool avx512_leaf7(unsigned& b, unsigned& c) {
    unsigned a = 0, d = 0;
    if (!__get_cpuid(1, &a, &b, &c, &d) || !((c >> 27) & 1)) return false;  // OSXSAVE
    unsigned lo = 0, hi = 0;
    __asm__("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    if ((lo & 0xe6) != 0xe6) return false;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return false;
    return ((b >> 16) & 1) && ((b >> 30) & 1) && ((b >> 31) & 1);  // F, BW, VL
}
}  // namespace detail
#endif

// AVX512-BF16 (with F, BW, VL) and the OS saving the 512-bit state: `vdpbf16ps` can run.
inline bool cpu_has_avx512_bf16() {
#if PALI3_HAVE_AMX_CODE
    unsigned a = 0, b = 0, c = 0, d = 0;
    if (!detail::avx512_leaf7(b, c) || !__get_cpuid_count(7, 1, &a, &b, &c, &d)) return false;
    return (a >> 5) & 1;
#else
    return false;
#endif
}

// AVX512-VNNI (with F, BW, VL, DQ) and the OS saving the 512-bit state: `vpdpbusd` on zmm can run.
inline bool cpu_has_avx512_vnni() {
#if PALI3_HAVE_AMX_CODE
    unsigned b = 0, c = 0;
    return detail::avx512_leaf7(b, c) && ((b >> 17) & 1) && ((c >> 11) & 1);  // DQ, VNNI
#else
    return false;
#endif
}

// The engine a family of kernels runs in this process: `Preferred()` (probed once) until
// set_enabled / set_backend choose otherwise. Backend: an enum whose `none` is 0.
template <class Backend, Backend (*Preferred)()>
struct engine_switch {
    static Backend in_use() {
        int s = state().load(std::memory_order_relaxed);
        if (s < 0) {
            s = static_cast<int>(Preferred());
            state().store(s, std::memory_order_relaxed);
        }
        return static_cast<Backend>(s);
    }
    static void set_enabled(bool on) { set(on ? Preferred() : Backend{}); }
    static void set(Backend b) { state().store(static_cast<int>(b), std::memory_order_relaxed); }

private:
    static std::atomic<int>& state() {  // -1: not chosen yet
        static std::atomic<int> s{-1};
        return s;
    }
};

// AMX tiles usable: CPUID AMX-TILE and AMX-BF16 (and AVX-512 for the epilogue and packers), and
// Linux granting this process the tile state (arch_prctl ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA).
// PALI3_NO_AMX=1 rules it out.
inline bool cpu_amx_tiles() {
#if PALI3_HAVE_AMX_CODE
    bool off = false;
    if (env_flag("PALI3_NO_AMX", off) && off) return false;
    if (!cpu_has_avx512_bf16()) return false;  // the epilogue and the packers use AVX-512
    unsigned a = 0, b = 0, c = 0, d = 0;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return false;
    const bool tile = (d >> 24) & 1, bf16_tiles = (d >> 22) & 1;
    if (!tile || !bf16_tiles) return false;
    constexpr long arch_req_xcomp_perm = 0x1023, xfeature_xtiledata = 18;
    return syscall(SYS_arch_prctl, arch_req_xcomp_perm, xfeature_xtiledata) == 0;
#else
    return false;
#endif
}

}  // namespace pali3::kernels
