// libFuzzer target: arbitrary bytes as a model config (ours, or an HF config.json) and as an HF
// preprocessor_config.json. Every input must either give a checked config or throw pali3::error;
// for a config that parses, the size arithmetic made before anything is allocated (weight lower
// bound, run memory) must not trap, and a preprocessing that parses passes its own check.
// Build: cmake -DCMAKE_CXX_COMPILER=clang++ -DPALI3_FUZZ=ON ...; run: fuzz_config fuzz/corpus/config
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <pali3/models/config_io.hpp>
#include <pali3/models/footprint.hpp>
#include <pali3/pipeline/preprocessing.hpp>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    using namespace pali3;
    try {
        const auto j = json::parse(std::string_view(reinterpret_cast<const char*>(data), size), "fuzz");
        const auto c = j.find("model") ? models::config_from_json(j) : models::config_from_hf(j);
        models::run_request r;
        r.new_tokens = 4096;
        r.beam = 64;
        volatile std::size_t sink = models::min_weights(c) ^ models::estimate_memory(c, r).total();
        r.training = true;
        sink = sink ^ models::estimate_memory(c, r).total();
        (void)models::config_from_string(models::config_to_string(c));  // what we write, we read back
    } catch (const pali3::error&) {
    }
    try {
        std::vector<std::string> unknown;
        const auto j = json::parse(std::string_view(reinterpret_cast<const char*>(data), size), "fuzz");
        vision::check(pipeline::preprocessing_from_hf(j, 224, "fuzz", &unknown), "fuzz");
    } catch (const pali3::error&) {
    }
    return 0;
}
