// libFuzzer target: arbitrary bytes as an image file (PNG, JPEG, BMP... through stb_image), decoded
// under small limits and preprocessed to the tower's input. Every input must either decode or
// throw pali3::error.
// Build: cmake -DCMAKE_CXX_COMPILER=clang++ -DPALI3_FUZZ=ON ...; run: fuzz_image fuzz/corpus/image
#include <cstddef>
#include <cstdint>

#include <pali3/io/image.hpp>
#include <pali3/vision/preprocess.hpp>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    using namespace pali3;
    try {
        const auto img = io::decode_image(data, size, "fuzz", io::image_limits{2048, 1u << 20});
        const auto px = vision::preprocess(img, {16, size % 2 == 0});
        volatile float sink = px.empty() ? 0.f : px.back();
        (void)sink;
    } catch (const pali3::error&) {
    }
    return 0;
}
