// What the `pali3` commands share: the flags of the pipeline (bound to pipeline::options), the
// opening of models (in open.cpp: the one translation unit that instantiates them), token-id
// parsing, and the two output forms — human text with timings, or one JSON object (--json).
#pragma once

#include <CLI/CLI.hpp>

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include <pali3/core/json.hpp>
#include <pali3/pipeline/config_source.hpp>
#include <pali3/pipeline/pali3_pipeline.hpp>
#include <pali3/pipeline/siglip_pipeline.hpp>

#ifndef PALI3_SOURCE_DIR
#define PALI3_SOURCE_DIR "."
#endif

namespace pali3::cli {

// Registration of each command (one file per command).
void add_make_demo(CLI::App& app);
void add_inspect(CLI::App& app);
void add_caption(CLI::App& app);
void add_vqa(CLI::App& app);
void add_generate(CLI::App& app);
void add_detect(CLI::App& app);
void add_segment(CLI::App& app);
void add_embed(CLI::App& app);
void add_dump(CLI::App& app);
void add_bench(CLI::App& app);
void add_init(CLI::App& app);
void add_convert(CLI::App& app);
void add_grad(CLI::App& app);
void add_train(CLI::App& app);
void add_make_scenes(CLI::App& app);
void add_eval(CLI::App& app);

// Opening models (open.cpp).
std::unique_ptr<pipeline::pali3_pipeline> open_pali3(const pipeline::options& o);
std::unique_ptr<pipeline::siglip_pipeline> open_siglip(const pipeline::siglip_options& o);

// Bounds that keep sizes far from overflow and memory in reason (the KV cache grows as tokens come;
// the run's estimate, checked against --max-memory, counts it at the cap).
inline constexpr std::size_t max_new_tokens_limit = 4096, max_beam = 64, max_prompt_limit = 4096, max_threads = 256;

// --preset / --config / --resolution.
inline void add_config_flags(CLI::App* c, pipeline::config_request& r) {
    c->add_option("--preset", r.preset, "a named config: pali3_5b, pali3_tiny, vit:B/16@384, siglip:So400m/14, t5_small...");
    c->add_option("--config", r.file, "a config JSON file (ours, or an HF config.json)");
    c->add_option("--resolution", r.resolution, "image side in pixels (the position table is resampled)")
        ->check(CLI::Range(std::size_t{1}, std::size_t{8192}));
}

// --max-memory GB: the most a run may need by the estimate made before loading (0 or unset: the
// machine's memory).
inline void add_memory_flag(CLI::App* c, std::size_t& bytes) {
    c->add_option_function<double>(
         "--max-memory", [&bytes](double gb) { bytes = static_cast<std::size_t>(gb * 1e9); },
         "refuse runs whose estimated memory (weights, KV cache, activations) is over this many GB (default: the machine's memory)")
        ->check(CLI::Range(0.001, 1e6));
}

// --allow-nonfinite: load checkpoints that hold NaN or Inf (refused by default, naming the tensor).
inline void add_nonfinite_flag(CLI::App* c) {
    c->add_flag_callback(
        "--allow-nonfinite", [] { weights::allow_nonfinite_weights = true; },
        "load weights that hold NaN or Inf (by default such a tensor is an error naming it)");
}

// "0.5" or "0.48,0.46,0.41": one value for every channel or one per channel, finite.
inline std::array<float, 3> parse_channels(const std::string& text, const std::string& flag) {
    std::vector<float> v;
    std::size_t start = 0;
    while (start <= text.size()) {
        const std::size_t comma = std::min(text.find(',', start), text.size());
        const std::string part = text.substr(start, comma - start);
        float x = 0;
        const auto [end, ec] = std::from_chars(part.data(), part.data() + part.size(), x);
        if (part.empty() || ec != std::errc{} || end != part.data() + part.size() || !std::isfinite(x))
            throw value_error(core::describe("not a finite number", flag, "a number or three, comma-separated", part));
        v.push_back(x);
        start = comma + 1;
    }
    if (v.size() != 1 && v.size() != 3) throw value_error(core::describe("per-channel values", flag, "one number or three", v.size()));
    return v.size() == 1 ? std::array<float, 3>{v[0], v[0], v[0]} : std::array<float, 3>{v[0], v[1], v[2]};
}

// How images become pixels (docs/pipeline.md "Preprocessing"): unset flags follow the
// preprocessor_config.json beside the checkpoint, else big_vision's tf bilinear to [-1, 1].
inline void add_preprocessing_flags(CLI::App* c, pipeline::preprocessing_request& r) {
    c->add_flag("--antialias", r.antialias, "bilinear resize: widen the filter when downscaling (Pillow's filters always do)");
    c->add_option_function<std::string>(
         "--resize", [&r](const std::string& name) { r.resize = vision::resize_from_name(name, "--resize"); },
         "bilinear (tf, big_vision), pil-bilinear or bicubic (Pillow, as HF's processors); default: preprocessor_config.json's, else bilinear")
        ->check(CLI::IsMember({"bilinear", "pil-bilinear", "bicubic"}));
    c->add_option_function<std::string>(
        "--mean", [&r](const std::string& t) { r.mean = parse_channels(t, "--mean"); },
        "per-channel mean on [0, 1] values, one number or three (default: the preprocessor config's, else 0.5)");
    c->add_option_function<std::string>(
        "--std", [&r](const std::string& t) { r.std = parse_channels(t, "--std"); },
        "per-channel std, one number or three, > 0 (default: the preprocessor config's, else 0.5)");
}

// --dtype and --int8-group (pipeline/weight_dtype.hpp).
inline void add_dtype_flags(CLI::App* c, std::string& dtype, std::size_t& int8_group) {
    c->add_option("--dtype", dtype, "weights in memory: f32, bf16, or int8 (bf16 with every linear layer's matrix quantised on load)")
        ->check(CLI::IsMember({"f32", "bf16", "int8"}))
        ->capture_default_str();
    c->add_option("--int8-group", int8_group, "with --dtype int8: a scale per row (0) or per this many values along the input (a multiple of 32)")
        ->check(CLI::Range(std::size_t{0}, std::size_t{1} << 20))
        ->capture_default_str();  // a multiple of 32: checked with the other flags before loading
}

// Segmentation outputs are long (per object 4 <loc> + 16 <seg> + the label): when the user left
// --max-new-tokens at its default (32: one object), segment and eval --vqvae allow 96 (three
// objects with room for a label of several pieces).
inline constexpr std::size_t segment_new_tokens = 96;
inline void default_segment_tokens(const CLI::App* c, pipeline::options& o) {
    if (c->get_option("--max-new-tokens")->count() == 0) o.max_new_tokens = std::max(o.max_new_tokens, segment_new_tokens);
}

// Every flag of the PaLI-3 pipeline commands (caption, vqa, generate, detect, segment).
inline void add_pipeline_flags(CLI::App* c, pipeline::options& o, bool& json) {
    c->add_option("--weights", o.weights, "checkpoint: safetensors file, directory or shard index, or .npz (any naming)");
    c->add_option("--tokenizer", o.tokenizer, "sentencepiece model (PaLI's <loc>/<seg> tokens are added)");
    add_config_flags(c, o.config);
    add_dtype_flags(c, o.dtype, o.int8_group);
    c->add_flag("--prepack", o.prepack, "keep weights in the GEMM's layout too (faster, 2x weight memory)");
    c->add_option("--threads", o.threads, "worker threads")->check(CLI::Range(std::size_t{1}, max_threads))->capture_default_str();
    add_preprocessing_flags(c, o.preprocessing);
    c->add_option("--max-new-tokens", o.max_new_tokens, "most tokens to generate")
        ->check(CLI::Range(std::size_t{1}, max_new_tokens_limit))->capture_default_str();
    c->add_option("--beam", o.beam, "beam width (1: greedy)")->check(CLI::Range(std::size_t{1}, max_beam))->capture_default_str();
    c->add_option("--length-penalty", o.length_penalty, "alpha in score / length^alpha")->check(CLI::Range(0.0, 10.0));
    c->add_option("--max-prompt-tokens", o.max_prompt_tokens, "longest prompt accepted")
        ->check(CLI::Range(std::size_t{1}, max_prompt_limit))->capture_default_str();
    add_memory_flag(c, o.max_memory);
    add_nonfinite_flag(c);
    c->add_flag("--json", json, "print one JSON object (text, tokens, log-prob, boxes, timings) instead of text");
}

inline void print_timings(const pipeline::timings& t) {
    std::printf("\ntimings:\n");
    for (const auto& [n, ms] : t.stages) std::printf("  %-34s %10.1f ms\n", n.c_str(), ms);
    std::printf("  %-34s %10.2f GB\n", "peak RSS", pipeline::peak_rss_gb());
}

inline json::value timings_json(const pipeline::timings& t) {
    json::value v = json::value::make_object();
    for (const auto& [n, ms] : t.stages) v.set(n, json::number(ms));
    v.set("peak_rss_gb", json::number(pipeline::peak_rss_gb()));
    return v;
}

inline void print_json(const json::value& v) { std::printf("%s\n", json::dump(v).c_str()); }

// The answer as JSON: text, tokens, log-prob, objects (label, box in pixels, problem), timings.
inline json::value answer_json(const std::string& command, const pipeline::pali3_pipeline& p, const pipeline::answer& a) {
    json::value v = json::value::make_object();
    v.set("command", json::string(command));
    v.set("prompt", json::string(a.prompt));
    v.set("prompt_tokens", json::number(std::uint64_t{a.prompt_tokens}));
    v.set("text", json::string(a.text));
    json::value ids = json::value::make_array();
    for (const auto id : a.best.tokens) ids.push(json::number(static_cast<double>(id)));
    v.set("tokens", std::move(ids));
    v.set("log_prob", json::number(a.best.log_prob));
    v.set("finished", json::value::make_bool(a.best.finished));
    v.set("dropped_ids", json::number(std::uint64_t{a.dropped_ids}));
    json::value objs = json::value::make_array();
    for (std::size_t i = 0; i < a.objects.size(); ++i) {
        const auto& o = a.objects[i];
        json::value ob = json::value::make_object();
        ob.set("label", json::string(o.label));
        if (o.where) {
            json::value box = json::value::make_object();
            box.set("y1", json::number(double(o.where->y1)));
            box.set("x1", json::number(double(o.where->x1)));
            box.set("y2", json::number(double(o.where->y2)));
            box.set("x2", json::number(double(o.where->x2)));
            ob.set("box", std::move(box));
        } else {
            ob.set("problem", json::string(o.problem));
        }
        if (i < a.masks.size() && !a.masks[i].empty()) {
            std::size_t on = 0;
            for (const auto m : a.masks[i]) on += m;
            ob.set("mask_pixels", json::number(std::uint64_t{on}));
        }
        objs.push(std::move(ob));
    }
    v.set("objects", std::move(objs));
    pipeline::timings all = p.load_times();
    all.append(a.times);
    v.set("timings_ms", timings_json(all));
    return v;
}

// The human form: prompt, output, how it ended; then the caller's lines; then timings.
inline void print_answer(const pipeline::pali3_pipeline& p, const pipeline::answer& a) {
    std::printf("decode: %.1f tokens/s\n", a.decode_ms > 0 ? 1e3 * static_cast<double>(a.steps) / a.decode_ms : 0.0);
    std::printf("prompt: \"%s\" (%zu tokens)\noutput: \"%s\" (%zu tokens, log-prob %.2f%s)\n", a.prompt.c_str(), a.prompt_tokens,
                a.text.c_str(), a.best.tokens.size(), a.best.log_prob, a.best.finished ? ", ended at EOS" : ", hit --max-new-tokens");
    if (a.dropped_ids)
        std::printf("note: %zu generated ids are beyond the tokenizer's %zu and were dropped from the text\n", a.dropped_ids,
                    p.tokenizer().vocab_size());
}

inline void print_times(const pipeline::pali3_pipeline& p, const pipeline::answer& a) {
    pipeline::timings all = p.load_times();
    all.append(a.times);
    print_timings(all);
}

// Rows of token ids: "1,2,3", rows of one length joined by ';' ("1,2;3,4"), or an integer .npy
// of (rows, length) or (length).
struct id_rows {
    std::vector<std::int32_t> ids;  // row-major
    std::size_t rows = 1;
};
id_rows parse_id_rows(const std::string& spec, const std::string& flag);

}  // namespace pali3::cli
