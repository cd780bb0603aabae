// libFuzzer target: arbitrary bytes as one .npy array (what `dump --pixels`, `--encoder-mask` and
// npz entries hold), read whole and as a header-only prefix of a longer entry. Every input must
// either parse with its data inside the bytes or throw pali3::error.
// Build: cmake -DCMAKE_CXX_COMPILER=clang++ -DPALI3_FUZZ=ON ...; run: fuzz_npy fuzz/corpus/npy
#include <cstddef>
#include <cstdint>
#include <vector>

#include <pali3/weights/npy.hpp>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    using namespace pali3::weights;
    const std::vector<std::uint8_t> copy(data, data + size);  // exact bounds for ASan
    try {
        const auto a = parse_npy(copy.data(), copy.size(), "fuzz");
        volatile std::uint8_t sink = a.bytes ? a.data[a.bytes - 1] : 0;
        (void)sink;
    } catch (const pali3::error&) {
    }
    try {
        (void)parse_npy(copy.data(), copy.size(), "fuzz", copy.size() + 4096);
    } catch (const pali3::error&) {
    }
    return 0;
}
