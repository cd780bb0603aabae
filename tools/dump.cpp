// pali3 dump: every named activation of a model as DIR/<name>.npy, to diff against another
// implementation (vision tower, T5 teacher forced, PaLI-3, SigLIP pair).
#include <algorithm>
#include <filesystem>

#include <pali3/pipeline/activations.hpp>
#include <pali3/pipeline/gradients.hpp>

#include "common.hpp"

namespace pali3::cli {

id_rows parse_id_rows(const std::string& spec, const std::string& flag) {
    if (spec.size() > 4 && spec.compare(spec.size() - 4, 4, ".npy") == 0) {
        const auto a = pipeline::read_ids_npy(spec, 0, INT32_MAX);
        if (a.shape.size() != 2)
            throw shape_error(core::describe("token id rows", spec, "(rows, length) or (length)", shape_string(a.shape)));
        return {a.values, a.rows()};
    }
    id_rows out{{}, 0};
    std::size_t length = 0;
    for (std::size_t row = 0; row <= spec.size();) {
        const auto semi = spec.find(';', row);
        const std::string line = spec.substr(row, semi == std::string::npos ? std::string::npos : semi - row);
        const std::size_t before = out.ids.size();
        for (std::size_t pos = 0; pos <= line.size();) {
            const auto comma = line.find(',', pos);
            const std::string item = line.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
            std::size_t v = 0;
            try {
                v = pipeline::parse_size(item, "--" + flag);
            } catch (const value_error&) {
                v = ~std::size_t{0};
            }
            if (v > INT32_MAX)
                throw value_error(core::describe("bad token id", "--" + flag, "comma-separated ids >= 0, rows joined by ';'", "\"" + item + "\""));
            out.ids.push_back(static_cast<std::int32_t>(v));
            if (comma == std::string::npos) break;
            pos = comma + 1;
        }
        const std::size_t n = out.ids.size() - before;
        if (out.rows == 0) length = n;
        else if (n != length)
            throw shape_error(core::describe("token id rows of one length", "--" + flag, length, "row " + std::to_string(out.rows) + " has " + std::to_string(n)));
        ++out.rows;
        if (semi == std::string::npos) break;
        row = semi + 1;
    }
    return out;
}

void add_dump(CLI::App& app) {
    struct args {
        pipeline::model_inputs in;
        pipeline::config_request config;
        std::vector<std::string> images;
        std::string pixels, weights, out = "activations", enc, mask, dec = "0", prompt = "caption en", tokenizer;
        pipeline::run_options run;
    };
    auto a = std::make_shared<args>();
    auto* c = app.add_subcommand("dump", "every named activation of a model as DIR/<name>.npy");
    c->add_option("images", a->images, "image files (vision towers, PaLI-3, SigLIP): one batch");
    c->add_option("--pixels", a->pixels, "preprocessed (n, 3, S, S) float32 .npy instead of images");
    c->add_option("--weights", a->weights, "checkpoint (any naming)")->required();
    add_nonfinite_flag(c);
    c->add_option("--out", a->out, "directory for the .npy files")->capture_default_str();
    c->add_option("--encoder-ids", a->enc, "T5 encoder ids / PaLI-3 prompt ids: 1,2,3, rows 1,2;3,4, or an integer .npy (rows, T)");
    c->add_option("--encoder-mask", a->mask,
                  "HF attention_mask for --encoder-ids (same shape, 0/1, any pattern; PaLI-3: over the prompt ids)");
    c->add_option("--decoder-ids", a->dec, "decoder ids, start token first: 0,5, one row per item, or an integer .npy")->capture_default_str();
    c->add_option("--tokenizer", a->tokenizer, "PaLI-3: sentencepiece model to encode --prompt");
    c->add_option("--prompt", a->prompt, "PaLI-3: prompt text (with --tokenizer)")->capture_default_str();
    add_dtype_flags(c, a->run.dtype, a->run.int8_group);
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
        a->in.images = a->images;
        if (!a->pixels.empty()) a->in.images.push_back(a->pixels);
        if (!a->enc.empty()) {
            auto r = parse_id_rows(a->enc, "encoder-ids");
            a->in.encoder_ids = std::move(r.ids);
            a->in.encoder_rows = r.rows;
        } else if (!a->tokenizer.empty()) {
            a->in.encoder_ids = text::tokenizer::load(a->tokenizer).encode(a->prompt);
        }
        if (!a->mask.empty()) {
            const auto m = parse_id_rows(a->mask, "encoder-mask");
            if (a->enc.empty() || m.rows != a->in.encoder_rows || m.ids.size() != a->in.encoder_ids.size())
                throw shape_error(core::describe("encoder mask shape", "--encoder-mask", "the shape of --encoder-ids",
                                                 std::to_string(m.rows) + " row(s) of " + std::to_string(m.rows ? m.ids.size() / m.rows : 0)));
            for (const auto v : m.ids) {
                if (v > 1) throw value_error(core::describe("encoder mask value", "--encoder-mask", "0 or 1", v));
                a->in.encoder_mask.push_back(static_cast<std::uint8_t>(v));
            }
        }
        auto d = parse_id_rows(a->dec, "decoder-ids");
        a->in.decoder_ids = std::move(d.ids);
        a->in.decoder_rows = d.rows;
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
