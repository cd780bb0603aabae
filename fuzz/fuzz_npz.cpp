// libFuzzer target: arbitrary bytes as a .npz (zip of .npy). Every input must either parse or
// throw pali3::error; every listed array is read and converted to f32.
// Build: cmake -DCMAKE_CXX_COMPILER=clang++ -DPALI3_FUZZ=ON ...; run: fuzz_npz fuzz/corpus/npz
#include <cstddef>
#include <cstdint>
#include <vector>

#include <pali3/weights/npz.hpp>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    using namespace pali3::weights;
    try {
        const auto src = npz_source::from_buffer(buffer_from(std::vector<std::uint8_t>(data, data + size), "fuzz"));
        for (const auto& name : src.names()) {
            try {
                const auto raw = src.get_raw(name);
                const auto p = to_param<float>(src.get(name, raw.shape));
                volatile float sink = p.size() ? p.data[p.size() - 1] : 0.f;
                (void)sink;
            } catch (const pali3::error&) {
            }
        }
        (void)src.list();
    } catch (const pali3::error&) {
    }
    return 0;
}
