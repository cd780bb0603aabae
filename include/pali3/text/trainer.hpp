// Training a small sentencepiece model (tests and the demo make their own: nothing is downloaded).
// T5 id conventions (pad 0, eos 1, unk 2, no bos); PaLI's <loc>/<seg> pieces optionally built in.
#pragma once

#include <sentencepiece_trainer.h>

#include <fstream>
#include <string>
#include <unordered_map>

#include "pali3/core/error.hpp"
#include "pali3/core/files.hpp"
#include "pali3/text/tokenizer.hpp"

// Exported by libsentencepiece (logging.h, not installed by Debian): the trainer's log threshold.
// Without it every Train() call prints its whole command line (1152 symbols) to stderr.
namespace sentencepiece::logging {
int GetMinLogLevel();
void SetMinLogLevel(int);
}  // namespace sentencepiece::logging

namespace pali3::text {

namespace detail {
// The corpus's lines, read by us: the trainer is never given a path (a path is not a flag value:
// a comma or a space in it, or "--model_prefix=..." pasted after it, would change the flags).
class corpus_lines final : public sentencepiece::SentenceIterator {
public:
    explicit corpus_lines(const std::string& path) : in_(path) {
        if (!in_) throw format_error(core::describe("cannot read tokenizer corpus", path, "a readable text file", "cannot open"));
        Next();
    }
    bool done() const override { return done_; }
    void Next() override { done_ = !std::getline(in_, line_); }
    const std::string& value() const override { return line_; }
    sentencepiece::util::Status status() const override { return {}; }

private:
    std::ifstream in_;
    std::string line_;
    bool done_ = false;
};
}  // namespace detail

// Trains on the UTF-8 lines of `corpus` and writes `<prefix>.model` (temporary file + rename).
// Returns the model path. Any characters in either path are fine: neither goes into the
// trainer's options, which are passed as separate values.
inline std::string train_tokenizer(const std::string& corpus, const std::string& prefix, std::size_t vocab_size,
                                   bool pali_tokens_in_model) {
    core::require_regular_file(corpus, "cannot read tokenizer corpus");
    std::unordered_map<std::string, std::string> spec{
        {"vocab_size", std::to_string(vocab_size)}, {"model_type", "unigram"}, {"character_coverage", "1.0"},
        {"pad_id", "0"}, {"eos_id", "1"}, {"unk_id", "2"}, {"bos_id", "-1"}, {"hard_vocab_limit", "false"},
        {"num_threads", "1"}};
    if (pali_tokens_in_model) spec["user_defined_symbols"] = pali_symbols();
    detail::corpus_lines lines(corpus);
    std::string model;
    const int level = sentencepiece::logging::GetMinLogLevel();
    sentencepiece::logging::SetMinLogLevel(2);
    const auto status = sentencepiece::SentencePieceTrainer::Train(spec, &lines, &model);
    sentencepiece::logging::SetMinLogLevel(level);
    if (!status.ok())
        throw format_error(core::describe("sentencepiece training failed", corpus, "a trained model", status.ToString()));
    const std::string path = prefix + ".model";
    core::write_file_checked(path, model, "tokenizer model");
    return path;
}

}  // namespace pali3::text
