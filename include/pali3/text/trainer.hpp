// Training a small sentencepiece model (tests and the demo make their own: nothing is downloaded).
// T5 id conventions (pad 0, eos 1, unk 2, no bos); PaLI's <loc>/<seg> pieces optionally built in.
#pragma once

#include <sentencepiece_trainer.h>

#include <string>

#include "pali3/core/error.hpp"
#include "pali3/text/tokenizer.hpp"

// Exported by libsentencepiece (logging.h, not installed by Debian): the trainer's log threshold.
// Without it every Train() call prints its whole command line (1152 symbols) to stderr.
namespace sentencepiece::logging {
int GetMinLogLevel();
void SetMinLogLevel(int);
}  // namespace sentencepiece::logging

namespace pali3::text {

// Trains on the UTF-8 lines of `corpus` and writes `<prefix>.model` / `<prefix>.vocab`.
// Returns the model path.
inline std::string train_tokenizer(const std::string& corpus, const std::string& prefix, std::size_t vocab_size,
                                   bool pali_tokens_in_model) {
    std::string args = "--input=" + corpus + " --model_prefix=" + prefix + " --vocab_size=" + std::to_string(vocab_size) +
                       " --model_type=unigram --character_coverage=1.0 --pad_id=0 --eos_id=1 --unk_id=2 --bos_id=-1"
                       " --minloglevel=2 --hard_vocab_limit=false --num_threads=1";
    if (pali_tokens_in_model) args += " --user_defined_symbols=" + pali_symbols();
    const int level = sentencepiece::logging::GetMinLogLevel();
    sentencepiece::logging::SetMinLogLevel(2);
    const auto status = sentencepiece::SentencePieceTrainer::Train(args);
    sentencepiece::logging::SetMinLogLevel(level);
    if (!status.ok())
        throw format_error(core::describe("sentencepiece training failed", corpus, "a trained model", status.ToString()));
    return prefix + ".model";
}

}  // namespace pali3::text
