// libFuzzer target: prompts and generated token streams. A small tokenizer is trained once at start
// (with and without PaLI's tokens built in); each input is either a prompt (text through the task
// prompt builders and encode, then decode) or an arbitrary id stream (what a broken or random model
// might generate) through decode and the detection/segmentation output parser. Every input must
// give ids inside the vocabulary and boxes inside the image, or throw pali3::error.
// Build: cmake -DCMAKE_CXX_COMPILER=clang++ -DPALI3_FUZZ=ON ...; run: fuzz_prompt fuzz/corpus/prompt
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <pali3/generation/tasks.hpp>
#include <pali3/text/tokenizer.hpp>
#include <pali3/text/trainer.hpp>

namespace {
std::optional<pali3::text::tokenizer> plain, native;

void check_objects(const std::vector<pali3::generation::detection>& objs, std::size_t h, std::size_t w) {
    for (const auto& d : objs) {
        if (d.where) {
            const auto& b = *d.where;
            if (!(b.y1 >= 0 && b.x1 >= 0 && b.y2 <= static_cast<float>(h) + 1e-3f && b.x2 <= static_cast<float>(w) + 1e-3f &&
                  b.y1 < b.y2 && b.x1 < b.x2))
                std::abort();  // a box outside the image or inverted
        }
        if (!d.seg_codes.empty() && d.seg_codes.size() != 16) std::abort();
        for (const int c : d.seg_codes)
            if (c < 0 || c >= pali3::text::num_seg_tokens) std::abort();
    }
}
}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
    namespace fs = std::filesystem;
    const fs::path dir = fs::temp_directory_path() / ("pali3_fuzz_prompt_" + std::to_string(::getpid()));
    fs::create_directories(dir);
    {
        std::ofstream corpus(dir / "corpus.txt");
        for (int i = 0; i < 40; ++i)
            corpus << "a red circle and a blue square " << i << "\nanswer en what color is the triangle? green\n"
                   << "detect yellow square ; circle\ncaption en a photo of a house by the sea\n";
    }
    plain.emplace(pali3::text::tokenizer::load(pali3::text::train_tokenizer((dir / "corpus.txt").string(), (dir / "plain").string(), 80, false)));
    native.emplace(pali3::text::tokenizer::load(pali3::text::train_tokenizer((dir / "corpus.txt").string(), (dir / "native").string(), 1300, true)));
    fs::remove_all(dir);
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    using namespace pali3;
    if (size < 5) return 0;
    const std::uint8_t mode = data[0];  // bit 0: tokenizer, bit 1: ids or text, bits 2-3: prompt form
    const auto& tok = (mode & 1) ? *native : *plain;
    const bool ids_mode = mode & 2;
    const std::size_t h = 1 + (data[1] | (data[2] & 0x0f) << 8), w = 1 + (data[3] | (data[4] & 0x0f) << 8);
    data += 5;
    size -= 5;
    try {
        if (!ids_mode) {
            // The text as given, or inside one of the task prompts (chosen by the first byte).
            const std::string_view text(reinterpret_cast<const char*>(data), size);
            const unsigned form = (mode >> 2) & 3;
            const std::string prompt = form == 0   ? std::string(text)
                                       : form == 1 ? generation::detect_prompt(text)
                                       : form == 2 ? generation::vqa_prompt(text)
                                                   : generation::segment_prompt(text);
            const auto ids = tok.encode(prompt);
            for (const auto id : ids)
                if (id < 0 || static_cast<std::size_t>(id) >= tok.vocab_size()) std::abort();
            (void)tok.decode(ids);
            check_objects(generation::parse_objects(ids, tok, h, w), h, w);
        } else {
            // 2 bytes per id, spread over the vocabulary plus a margin on both sides (negative and
            // beyond-vocabulary ids, as a model with a larger head than the tokenizer gives).
            std::vector<std::int32_t> ids(size / 2);
            const auto span = static_cast<std::int32_t>(tok.vocab_size() + 16);
            for (std::size_t i = 0; i < ids.size(); ++i)
                ids[i] = static_cast<std::int32_t>((data[2 * i] | data[2 * i + 1] << 8) % span) - 8;
            check_objects(generation::parse_objects(ids, tok, h, w), h, w);
            (void)tok.decode(ids);  // throws value_error on the out-of-range ids; parse_objects skips them
        }
    } catch (const pali3::error&) {
    }
    return 0;
}
