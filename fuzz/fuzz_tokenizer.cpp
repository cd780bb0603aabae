// libFuzzer target: arbitrary bytes as a sentencepiece model file. Every input must either load or
// throw pali3::error; a model that loads must give ids inside its vocabulary for any text (PaLI's
// <loc>/<seg> tokens included), decode its own ids, and map loc/seg indices both ways.
// Build: cmake -DCMAKE_CXX_COMPILER=clang++ -DPALI3_FUZZ=ON ...; run: fuzz_tokenizer fuzz/corpus/tokenizer
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include <pali3/text/tokenizer.hpp>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    using namespace pali3;
    try {
        const auto tok = text::tokenizer::from_serialized(std::string_view(reinterpret_cast<const char*>(data), size));
        const auto ids = tok.encode("detect red circle ; square <loc0007><loc1023><seg127> caption en 12 é");
        for (const auto id : ids)
            if (id < 0 || static_cast<std::size_t>(id) >= tok.vocab_size()) std::abort();  // an id the model cannot embed
        (void)tok.decode(ids);
        for (const int i : {0, 511, 1023})
            if (tok.loc_index(tok.loc_id(i)) != i) std::abort();
        for (const int i : {0, 127})
            if (tok.seg_index(tok.seg_id(i)) != i) std::abort();
        if (tok.eos_id() < 0 || static_cast<std::size_t>(tok.eos_id()) >= tok.vocab_size()) std::abort();
    } catch (const pali3::error&) {
    }
    return 0;
}
