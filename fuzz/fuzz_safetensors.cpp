// libFuzzer target: arbitrary bytes as a safetensors file. Every input must either parse or throw
// pali3::error; whatever parses is listed and each tensor is read (as raw, and converted to f32).
// Build: cmake -DCMAKE_CXX_COMPILER=clang++ -DPALI3_FUZZ=ON ...; run: fuzz_safetensors fuzz/corpus/safetensors
#include <cstddef>
#include <cstdint>
#include <vector>

#include <pali3/weights/safetensors.hpp>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    using namespace pali3::weights;
    try {
        const auto src = safetensors_source::from_buffer(buffer_from(std::vector<std::uint8_t>(data, data + size), "fuzz"));
        for (const auto& t : src.list()) {
            try {
                const auto raw = src.get_raw(t.name);
                const auto p = to_param<float>(src.get(t.name, raw.shape));
                volatile float sink = p.size() ? p.data[p.size() - 1] : 0.f;
                (void)sink;
            } catch (const pali3::error&) {
            }
        }
    } catch (const pali3::error&) {
    }
    return 0;
}
