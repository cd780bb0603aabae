// pali3 dump: every named activation of a model as DIR/<name>.npy, to diff against another
// implementation (vision tower, T5 teacher forced, PaLI-3, SigLIP pair).
#include <algorithm>
#include <filesystem>

#include <pali3/pipeline/activations.hpp>
#include <pali3/pipeline/gradients.hpp>

#include "common.hpp"

namespace pali3::cli {

std::vector<std::int32_t> parse_ids(const std::string& spec, const std::string& flag) {
    std::vector<std::int32_t> ids;
    if (spec.size() > 4 && spec.compare(spec.size() - 4, 4, ".npy") == 0)
        return pipeline::read_ids_npy(spec, 0, INT32_MAX).values;  // any shape, flattened
    for (std::size_t pos = 0; pos <= spec.size();) {
        const auto comma = spec.find(',', pos);
        const std::string item = spec.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
        std::size_t v = 0;
        try {
            v = pipeline::parse_size(item, "--" + flag);
        } catch (const value_error&) {
            v = ~std::size_t{0};
        }
        if (v > INT32_MAX) throw value_error(core::describe("bad token id", "--" + flag, "comma-separated ids >= 0", "\"" + item + "\""));
        ids.push_back(static_cast<std::int32_t>(v));
        if (comma == std::string::npos) break;
        pos = comma + 1;
    }
    return ids;
}

void add_dump(CLI::App& app) {
    struct args {
        pipeline::model_inputs in;
        pipeline::config_request config;
        std::string image, pixels, weights, out = "activations", enc, dec = "0", prompt = "caption en", tokenizer;
        pipeline::run_options run;
    };
    auto a = std::make_shared<args>();
    auto* c = app.add_subcommand("dump", "every named activation of a model as DIR/<name>.npy");
    c->add_option("image", a->image, "image file (vision towers, PaLI-3)");
    c->add_option("--pixels", a->pixels, "preprocessed (1, 3, S, S) float32 .npy instead of an image");
    c->add_option("--weights", a->weights, "checkpoint (any naming)")->required();
    add_nonfinite_flag(c);
    c->add_option("--out", a->out, "directory for the .npy files")->capture_default_str();
    c->add_option("--encoder-ids", a->enc, "T5 encoder ids / PaLI-3 prompt ids: 1,2,3 or an integer .npy");
    c->add_option("--decoder-ids", a->dec, "decoder ids, start token first: 0,5 or an integer .npy")->capture_default_str();
    c->add_option("--tokenizer", a->tokenizer, "PaLI-3: sentencepiece model to encode --prompt");
    c->add_option("--prompt", a->prompt, "PaLI-3: prompt text (with --tokenizer)")->capture_default_str();
    c->add_option("--dtype", a->run.dtype, "weight storage")->check(CLI::IsMember({"f32", "bf16"}))->capture_default_str();
    c->add_option("--threads", a->run.threads, "worker threads")->check(CLI::Range(std::size_t{1}, max_threads))->capture_default_str();
    c->add_flag("--prepack", a->run.prepack, "keep weights in the GEMM's layout too (faster, 2x weight memory)");
    c->add_option("--time", a->run.repeat, "then run N more times untraced and print the median and best (peer timings)")
        ->check(CLI::Range(std::size_t{0}, std::size_t{100000}));
    add_preprocessing_flags(c, a->in.preprocessing);
    add_config_flags(c, a->config);
    add_memory_flag(c, a->run.max_memory);
    c->callback([a] {
        const auto ckpt = weights::checkpoint::open(a->weights);
        const auto found = pipeline::require_config(a->config, &ckpt, a->weights);
        std::printf("config (%s): %s\n", found.source.c_str(), models::config_to_string(found.config).c_str());
        a->in.image = a->pixels.empty() ? a->image : a->pixels;
        if (!a->enc.empty()) a->in.encoder_ids = parse_ids(a->enc, "encoder-ids");
        else if (!a->tokenizer.empty()) a->in.encoder_ids = text::tokenizer::load(a->tokenizer).encode(a->prompt);
        a->in.decoder_ids = parse_ids(a->dec, "decoder-ids");
        std::filesystem::create_directories(a->out);
        pipeline::npy_dumper dump{a->out};
        auto r = pipeline::run_traced(found.config, ckpt, a->in, a->run, dump.trace());
        std::printf("wrote %zu activations (%s) to %s\n", dump.count, pipeline::human_bytes(static_cast<double>(dump.bytes)).c_str(),
                    a->out.c_str());
        if (!r.repeat_ms.empty()) {
            auto& t = r.repeat_ms;
            std::sort(t.begin(), t.end());
            const double median = t.size() % 2 ? t[t.size() / 2] : (t[t.size() / 2 - 1] + t[t.size() / 2]) / 2;
            std::printf("untraced runs: %zu, median %.3f ms, best %.3f ms, %zu thread(s), %s%s\n", t.size(), median, t.front(),
                        a->run.threads, a->run.dtype.c_str(), a->run.prepack ? ", prepacked" : "");
        }
        print_timings(r.times);
    });
}

}  // namespace pali3::cli
