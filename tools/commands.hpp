// The pipeline subcommands of `pali3`: make-demo, caption, vqa, detect, segment, generate, embed,
// dump, bench. Each prints per-stage timings at the end.
#pragma once

#include <sys/resource.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <optional>
#include <set>
#include <string>
#include <variant>
#include <vector>

#include <pali3/core/threading.hpp>
#include <pali3/generation/generate.hpp>
#include <pali3/generation/tasks.hpp>
#include <pali3/io/image.hpp>
#include <pali3/models/config_io.hpp>
#include <pali3/models/pali3.hpp>
#include <pali3/text/tokenizer.hpp>
#include <pali3/text/trainer.hpp>
#include <pali3/vision/preprocess.hpp>
#include <pali3/vision/vqvae.hpp>
#include <pali3/weights/checkpoint.hpp>
#include <pali3/weights/npz.hpp>
#include <pali3/weights/random_source.hpp>
#include <pali3/weights/safetensors.hpp>

#include "cli.hpp"

#ifndef PALI3_SOURCE_DIR
#define PALI3_SOURCE_DIR "."
#endif

namespace pali3::cli {

using command_fn = int (*)(int, char**);

inline double peak_rss_gb() {
    rusage u{};
    getrusage(RUSAGE_SELF, &u);
    return static_cast<double>(u.ru_maxrss) / (1024.0 * 1024.0);
}

// Stage timings, printed in order at the end of a command.
struct timings {
    std::vector<std::pair<std::string, double>> rows;  // name, ms
    void add(std::string name, double ms) { rows.emplace_back(std::move(name), ms); }
    void print() const {
        std::printf("\ntimings:\n");
        for (const auto& [n, ms] : rows) std::printf("  %-34s %10.1f ms\n", n.c_str(), ms);
        std::printf("  %-34s %10.2f GB\n", "peak RSS", peak_rss_gb());
    }
};

// ---- make-demo ----------------------------------------------------------------------------------

inline models::pali3_config demo_config(std::size_t vocab) {
    models::pali3_config c;
    c.vision = {64, 2, 128, 4, 8, 64};  // 64 px, patch 8: 64 visual tokens
    c.projector = {64, 64};
    c.text = {vocab, 64, 128, 4, 16, 2, 2};
    return c;
}

inline int make_demo(int argc, char** argv) {
    args a(argc, argv, 2);
    if (a.positional().size() != 1) throw value_error(core::describe("make-demo needs one directory", "pali3 make-demo", "DIR", a.positional().size()));
    const std::filesystem::path dir = a.positional()[0];
    const std::size_t seed = a.get_size("seed", 2023);
    const std::string corpus = a.get("corpus", std::string(PALI3_SOURCE_DIR) + "/examples/data/corpus.txt");
    a.check_all_used();
    std::filesystem::create_directories(dir);
    timings tm;
    stopwatch sw;
    const std::string model_path = text::train_tokenizer(corpus, (dir / "tokenizer").string(), 300, false);
    const auto tok = text::tokenizer::load(model_path);
    tm.add("train tokenizer", sw.ms());
    std::printf("tokenizer: %s (%zu pieces + 1024 <loc> + 128 <seg> = %zu ids), trained on %s\n", model_path.c_str(),
                tok.model_pieces(), tok.vocab_size(), corpus.c_str());

    sw.reset();
    models::any_config cfg;
    cfg.kind = models::model_kind::pali3;
    cfg.pali = demo_config(tok.vocab_size());
    const weights::random_source rnd(seed);
    models::pali3_model<float> model(cfg.pali, weights::cursor(rnd));
    weights::memory_source saved;
    layers::save(model, saved);
    const std::string weights_path = (dir / "model.safetensors").string();
    weights::write_safetensors(weights_path, saved, {{std::string(models::config_metadata_key), models::config_to_string(cfg)}});
    tm.add("write model", sw.ms());
    std::printf("model: %s (%zu parameters, RANDOM weights seeded %zu: outputs are not meaningful)\n", weights_path.c_str(),
                layers::parameter_count(model), seed);

    sw.reset();
    const vision::vqvae_config vc{};
    vision::vqvae_decoder vae(vc, weights::cursor(rnd, "vqvae"));
    weights::memory_source vae_saved;
    layers::save(vae, vae_saved);
    const std::string vae_path = (dir / "vae.npz").string();
    weights::write_npz(vae_path, vae_saved);
    tm.add("write VQ-VAE", sw.ms());
    std::printf("VQ-VAE mask decoder: %s (vae-oid names, random weights)\n", vae_path.c_str());
    tm.print();
    return 0;
}

// ---- the PaLI pipeline ----------------------------------------------------------------------------

struct pipeline_inputs {
    std::string weights, tokenizer, vqvae;
    std::size_t threads = 2, max_new = 32, beam = 1, max_prompt = 64;
    float length_penalty = 0.f;
    std::string dtype = "f32";
    bool prepack = false;
};

inline pipeline_inputs common_flags(const args& a) {
    pipeline_inputs in;
    in.weights = a.get("weights");
    in.tokenizer = a.get("tokenizer");
    in.vqvae = a.get("vqvae");
    in.threads = a.get_size("threads", 2);
    in.max_new = a.get_size("max-new-tokens", 32);
    in.beam = a.get_size("beam", 1);
    in.max_prompt = a.get_size("max-prompt-tokens", 64);
    in.length_penalty = static_cast<float>(a.get_double("length-penalty", 0.0));
    in.dtype = a.get("dtype", "f32");
    in.prepack = a.has("prepack");
    if (in.weights.empty()) throw value_error(core::describe("missing flag", "--weights", "a checkpoint path", "none"));
    if (in.tokenizer.empty()) throw value_error(core::describe("missing flag", "--tokenizer", "a sentencepiece model", "none"));
    if (in.threads == 0 || in.threads > 256) throw value_error(core::describe("thread count", "--threads", "1..256", in.threads));
    if (in.dtype != "f32" && in.dtype != "bf16") throw value_error(core::describe("weight dtype", "--dtype", "f32 or bf16", in.dtype));
    return in;
}

struct task_result {
    generation::hypothesis best;
    std::string text;
    io::image image;
};

// Loads everything, runs one image + prompt, prints the answer and the timings.
template <weight_storage S>
task_result run_task(const args& a, const pipeline_inputs& in, const std::string& image_path, const std::string& prompt, timings& tm) {
    stopwatch sw;
    const auto ckpt = weights::checkpoint::open(in.weights);
    const auto found = find_config(a, &ckpt);
    a.check_all_used();
    if (!found || found->config.kind != models::model_kind::pali3)
        throw config_error(core::describe("no PaLI-3 config for the checkpoint", in.weights,
                                          "pali3.config metadata, --config or --preset naming a PaLI-3 model",
                                          found ? "a " + kind_name(found->config.kind) + " config" : std::string("none")));
    const auto& cfg = found->config.pali;
    // The tokenizer and prompt first: a misfit is reported before the (possibly long) weight load.
    stopwatch tsw;
    const auto tok = text::tokenizer::load(in.tokenizer);
    if (tok.vocab_size() > cfg.text.vocab)
        throw config_error(core::describe("tokenizer larger than the model's vocabulary", in.tokenizer,
                                          "<= " + std::to_string(cfg.text.vocab) + " ids", tok.vocab_size()));
    const auto ids = tok.encode(prompt);
    if (ids.size() > in.max_prompt)
        throw value_error(core::describe("prompt too long", "\"" + prompt.substr(0, 40) + "\"",
                                         "<= " + std::to_string(in.max_prompt) + " tokens (--max-prompt-tokens)", ids.size()));
    tm.add("load tokenizer + encode prompt", tsw.ms());
    sw.reset();
    const auto naming = weights::detect_naming(ckpt.names());
    const weights::mapped_source src(ckpt, weights::rules_for(naming, "pali3"));
    models::pali3_model<S> model(cfg, weights::cursor(src));
    tm.add("load weights (" + in.dtype + ")", sw.ms());
    if (in.prepack) {
        sw.reset();
        const std::size_t extra = layers::prepack(model);
        tm.add("prepack weights (+" + human_bytes(static_cast<double>(extra)) + ")", sw.ms());
    }
    if (sw.seconds() > 1) std::fprintf(stderr, "loaded %s in %.1f s\n", in.weights.c_str(), sw.seconds());


    sw.reset();
    task_result r;
    r.image = io::load_image(image_path);
    const auto pixels = vision::preprocess(r.image, {cfg.vision.image, a.has("antialias")});
    tm.add("load + preprocess image", sw.ms());

    core::thread_pool pool(in.threads);
    const std::size_t n = cfg.vision.tokens(), d = cfg.text.d_model;
    core::workspace ws(model.workspace_floats(std::max<std::size_t>(in.beam, 1), ids.size(), in.max_new));
    std::vector<float> memory((n + ids.size()) * d);
    const std::vector<std::vector<std::int32_t>> prompts{ids};
    double t_vision = 0;
    sw.reset();
    layers::trace marks([&](const std::string& name, std::span<const float>, const shape_t&) {
        if (name == "projector_out") t_vision = sw.ms();
    });
    const auto lens = model.encode(pixels.data(), prompts, memory.data(), ws, pool, marks);
    const double t_enc = sw.ms();
    tm.add("vision tower + projector (" + std::to_string(n) + " tok)", t_vision);
    tm.add("text encoder (" + std::to_string(lens[0]) + " tok)", t_enc - t_vision);

    sw.reset();
    auto state = model.start(memory.data(), 1, lens, in.max_new, pool);
    tm.add("cross-attention K/V", sw.ms());
    generation::options o;
    o.max_new_tokens = in.max_new;
    o.beam = in.beam;
    o.length_penalty = in.length_penalty;
    o.eos_id = tok.eos_id();
    o.start_id = tok.decoder_start_id();
    std::size_t steps = 0;
    sw.reset();
    const auto out = generation::generate(
        [&](const std::int32_t* step_ids, models::t5_decoder_state& s, float* logits) {
            ++steps;
            model.step(step_ids, s, logits, ws, pool);
        },
        std::move(state), cfg.text.vocab, o);
    const double t_dec = sw.ms();
    tm.add("decode (" + std::to_string(steps) + " steps, beam " + std::to_string(in.beam) + ")", t_dec);
    tm.add("  per step", steps ? t_dec / static_cast<double>(steps) : 0.0);
    std::printf("decode: %.1f tokens/s\n", steps ? 1e3 * static_cast<double>(steps) / t_dec : 0.0);
    r.best = out[0];
    std::vector<std::int32_t> valid;
    for (const auto id : r.best.tokens)
        if (id >= 0 && static_cast<std::size_t>(id) < tok.vocab_size()) valid.push_back(id);
    r.text = tok.decode(valid);
    std::printf("prompt: \"%s\" (%zu tokens)\noutput: \"%s\" (%zu tokens, log-prob %.2f%s)\n", prompt.c_str(), ids.size(), r.text.c_str(),
                r.best.tokens.size(), r.best.log_prob, r.best.finished ? ", ended at EOS" : ", hit --max-new-tokens");
    if (valid.size() != r.best.tokens.size())
        std::printf("note: %zu generated ids are beyond the tokenizer's %zu and were dropped from the text\n",
                    r.best.tokens.size() - valid.size(), tok.vocab_size());
    return r;
}

inline task_result run_any(const args& a, const pipeline_inputs& in, const std::string& image, const std::string& prompt, timings& tm) {
    return in.dtype == "bf16" ? run_task<bf16>(a, in, image, prompt, tm) : run_task<float>(a, in, image, prompt, tm);
}

inline void draw_overlay(io::image& img, const std::vector<generation::detection>& objs, const std::vector<std::vector<std::uint8_t>>& masks) {
    for (const auto& m : masks)
        if (!m.empty())
            for (std::size_t p = 0; p < img.width * img.height; ++p)
                if (m[p]) {
                    auto* px = img.rgb.data() + 3 * p;
                    px[0] = static_cast<std::uint8_t>((px[0] + 255) / 2);
                    px[1] = static_cast<std::uint8_t>(px[1] / 2);
                    px[2] = static_cast<std::uint8_t>(px[2] / 2);
                }
    for (const auto& o : objs) {
        if (!o.where) continue;
        const auto clampx = [&](float v) { return std::min<std::size_t>(img.width - 1, static_cast<std::size_t>(std::max(0.f, v))); };
        const auto clampy = [&](float v) { return std::min<std::size_t>(img.height - 1, static_cast<std::size_t>(std::max(0.f, v))); };
        const std::size_t x0 = clampx(o.where->x1), x1 = clampx(o.where->x2), y0 = clampy(o.where->y1), y1 = clampy(o.where->y2);
        const auto green = [&](std::size_t y, std::size_t x) {
            auto* px = img.at(y, x);
            px[0] = 0;
            px[1] = 255;
            px[2] = 0;
        };
        for (std::size_t x = x0; x <= x1; ++x) {
            green(y0, x);
            green(y1, x);
        }
        for (std::size_t y = y0; y <= y1; ++y) {
            green(y, x0);
            green(y, x1);
        }
    }
}

inline void print_objects(const std::vector<generation::detection>& objs) {
    if (objs.empty()) std::printf("objects: none (the output has no <loc> tokens)\n");
    for (const auto& o : objs) {
        if (o.where)
            std::printf("object \"%s\": box y1=%.1f x1=%.1f y2=%.1f x2=%.1f%s\n", o.label.c_str(), o.where->y1, o.where->x1, o.where->y2,
                        o.where->x2, o.seg_codes.size() == 16 ? ", 16 mask codes" : "");
        else
            std::printf("object \"%s\": %s\n", o.label.c_str(), o.problem.c_str());
    }
}

inline int caption(int argc, char** argv) {
    args a(argc, argv, 2, {"antialias", "prepack"});
    const auto in = common_flags(a);
    if (a.positional().size() != 1) throw value_error(core::describe("caption needs one image", "pali3 caption", "IMAGE", a.positional().size()));
    timings tm;
    run_any(a, in, a.positional()[0], generation::caption_prompt(a.get("lang", "en")), tm);
    tm.print();
    return 0;
}

inline int vqa(int argc, char** argv) {
    args a(argc, argv, 2, {"antialias", "prepack"});
    const auto in = common_flags(a);
    if (a.positional().size() != 2) throw value_error(core::describe("vqa needs an image and a question", "pali3 vqa", "IMAGE QUESTION", a.positional().size()));
    timings tm;
    run_any(a, in, a.positional()[0], generation::vqa_prompt(a.positional()[1], a.get("lang", "en")), tm);
    tm.print();
    return 0;
}

inline int generate_cmd(int argc, char** argv) {
    args a(argc, argv, 2, {"antialias", "prepack"});
    const auto in = common_flags(a);
    if (a.positional().size() != 2) throw value_error(core::describe("generate needs an image and a prompt", "pali3 generate", "IMAGE PROMPT", a.positional().size()));
    timings tm;
    const auto r = run_any(a, in, a.positional()[0], a.positional()[1], tm);
    std::printf("ids:");
    for (const auto id : r.best.tokens) std::printf(" %d", id);
    std::printf("\n");
    tm.print();
    return 0;
}

inline int detect_or_segment(int argc, char** argv, bool segment) {
    args a(argc, argv, 2, {"antialias", "prepack"});
    const auto in = common_flags(a);
    const std::string out_path = a.get("out", segment ? "segment.png" : "detect.png");
    if (a.positional().size() != 2)
        throw value_error(core::describe("needs an image and what to find", segment ? "pali3 segment" : "pali3 detect", "IMAGE THING", a.positional().size()));
    std::optional<weights::checkpoint> vae_file;
    if (segment) {
        if (in.vqvae.empty()) throw value_error(core::describe("missing flag", "--vqvae", "the VQ-VAE mask decoder (vae-oid.npz)", "none"));
        vae_file = weights::checkpoint::open(in.vqvae);
    }
    timings tm;
    auto r = run_any(a, in, a.positional()[0],
                     segment ? generation::segment_prompt(a.positional()[1]) : generation::detect_prompt(a.positional()[1]), tm);
    stopwatch sw;
    const auto tok = text::tokenizer::load(in.tokenizer);
    const auto objs = generation::parse_objects(r.best.tokens, tok, r.image.height, r.image.width);
    print_objects(objs);
    std::vector<std::vector<std::uint8_t>> masks;
    if (segment) {
        const auto cb = vae_file->list();
        std::size_t codebook = 128, embed = 512;
        for (const auto& t : cb)
            if (t.name == "_vq_vae._embedding" && t.shape.size() == 2) {
                codebook = t.shape[0];
                embed = t.shape[1];
            }
        const vision::vqvae_decoder vae({codebook, embed, 128}, weights::cursor(*vae_file));
        std::size_t with_mask = 0;
        for (const auto& o : objs) {
            masks.push_back(generation::object_mask(o, vae, r.image.height, r.image.width));
            if (!masks.back().empty()) {
                ++with_mask;
                std::size_t on = 0;
                for (auto v : masks.back()) on += v;
                std::printf("mask for \"%s\": %zu pixels\n", o.label.c_str(), on);
            }
        }
        if (with_mask == 0) std::printf("mask: none (the output has no box with 16 <seg> tokens)\n");
    }
    draw_overlay(r.image, objs, masks);
    io::write_png(out_path, r.image);
    tm.add(segment ? "parse + masks + overlay" : "parse + overlay", sw.ms());
    std::printf("overlay: %s\n", out_path.c_str());
    tm.print();
    return 0;
}
inline int detect(int argc, char** argv) { return detect_or_segment(argc, argv, false); }
inline int segment(int argc, char** argv) { return detect_or_segment(argc, argv, true); }

// ---- dump / embed: one tower alone, or the whole model --------------------------------------------

inline std::vector<std::int32_t> parse_ids(const std::string& spec, const std::string& flag) {
    std::vector<std::int32_t> ids;
    if (spec.size() > 4 && spec.compare(spec.size() - 4, 4, ".npy") == 0) {
        const auto bytes = weights::map_file(spec);
        const auto arr = weights::npz_detail::parse_npy(bytes.data, bytes.size, spec);
        const std::size_t n = shape_size(arr.shape);
        for (std::size_t i = 0; i < n; ++i) {
            if (arr.descr == "<i4") {
                std::int32_t v;
                std::memcpy(&v, arr.data + 4 * i, 4);
                ids.push_back(v);
            } else if (arr.descr == "<i8") {
                std::int64_t v;
                std::memcpy(&v, arr.data + 8 * i, 8);
                if (v < 0 || v > INT32_MAX) throw value_error(core::describe("token id out of range", spec, "0..2^31-1", v));
                ids.push_back(static_cast<std::int32_t>(v));
            } else {
                throw format_error(core::describe("token ids must be integers", spec, "<i4 or <i8", arr.descr));
            }
        }
        return ids;
    }
    std::size_t pos = 0;
    while (pos < spec.size()) {
        const auto comma = spec.find(',', pos);
        const std::string item = spec.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
        std::size_t used = 0;
        long v = -1;
        try {
            v = std::stol(item, &used);
        } catch (const std::exception&) {
            used = 0;
        }
        if (used != item.size() || item.empty() || v < 0 || v > INT32_MAX)
            throw value_error(core::describe("bad token id", "--" + flag, "comma-separated ids >= 0", "\"" + item + "\""));
        ids.push_back(static_cast<std::int32_t>(v));
        if (comma == std::string::npos) break;
        pos = comma + 1;
    }
    if (ids.empty()) throw value_error(core::describe("no token ids", "--" + flag, "1,2,3 or a .npy file", "nothing"));
    return ids;
}

inline std::vector<float> load_pixels(const std::string& spec, std::size_t size, bool antialias) {
    if (spec.size() > 4 && spec.compare(spec.size() - 4, 4, ".npy") == 0) {
        const auto bytes = weights::map_file(spec);
        const auto arr = weights::npz_detail::parse_npy(bytes.data, bytes.size, spec);
        if (arr.descr != "<f4" || arr.shape != shape_t{1, 3, size, size})
            throw shape_error(core::describe("preprocessed pixels", spec, "<f4 (1, 3, " + std::to_string(size) + ", " + std::to_string(size) + ")",
                                             arr.descr + " " + shape_string(arr.shape)));
        std::vector<float> px(3 * size * size);
        std::memcpy(px.data(), arr.data, px.size() * 4);
        return px;
    }
    return vision::preprocess(io::load_image(spec), {size, antialias});
}

// Writes every traced activation as DIR/<name>.npy; returns how many.
struct npy_dumper {
    std::filesystem::path dir;
    std::size_t count = 0, bytes = 0;
    void write(const std::string& name, std::span<const float> data, const shape_t& shape) {
        const std::string b = weights::npy_bytes("<f4", shape, data.data(), data.size() * 4);
        weights::write_file((dir / (name + ".npy")).string(), b);
        ++count;
        bytes += b.size();
    }
    layers::trace trace() {
        return layers::trace([this](const std::string& n, std::span<const float> d, const shape_t& s) { write(n, d, s); });
    }
};

template <weight_storage S>
int dump_typed(const args& a, const models::any_config& cfg, const weights::checkpoint& ckpt, const std::string& out_dir, std::size_t threads) {
    timings tm;
    stopwatch sw;
    const auto naming = weights::detect_naming(ckpt.names());
    const weights::mapped_source src(ckpt, weights::rules_for(naming, kind_name(cfg.kind)));
    std::filesystem::create_directories(out_dir);
    npy_dumper dump{out_dir};
    core::thread_pool pool(threads);
    const bool antialias = a.has("antialias");
    const std::string image = a.has("pixels") ? a.get("pixels") : (a.positional().empty() ? "" : a.positional()[0]);
    const std::string enc_spec = a.get("encoder-ids"), dec_spec = a.get("decoder-ids", "0"), prompt = a.get("prompt", "caption en");
    const std::string tok_path = a.get("tokenizer");
    a.check_all_used();
    if (cfg.kind == models::model_kind::vit) {
        const models::vision_tower<S> tower(cfg.vision, weights::cursor(src));
        tm.add("load", sw.ms());
        if (image.empty()) throw value_error(core::describe("no image", "pali3 dump", "IMAGE or --pixels X.npy", "neither"));
        const auto px = load_pixels(image, cfg.vision.image, antialias);
        dump.write("pixels", px, {1, 3, cfg.vision.image, cfg.vision.image});
        sw.reset();
        std::vector<float> tokens(cfg.vision.tokens() * cfg.vision.width), pooled(cfg.vision.width);
        core::workspace ws(tower.workspace_floats(1));
        tower.forward(px.data(), 1, layers::image_layout::nchw, tokens.data(), ws, pool, dump.trace());
        if (cfg.vision.map_head) {
            tower.pool(tokens.data(), 1, pooled.data(), ws, pool);
            dump.write("pooled", pooled, {1, cfg.vision.width});
        }
        tm.add("vision forward + dump", sw.ms());
    } else if (cfg.kind == models::model_kind::t5) {
        if (enc_spec.empty()) throw value_error(core::describe("no encoder ids", "pali3 dump", "--encoder-ids 1,2,3 or X.npy", "none"));
        const auto enc = parse_ids(enc_spec, "encoder-ids"), dec = parse_ids(dec_spec, "decoder-ids");
        for (const auto id : enc)
            if (static_cast<std::size_t>(id) >= cfg.text.vocab) throw value_error(core::describe("encoder id out of range", "--encoder-ids", "< vocab " + std::to_string(cfg.text.vocab), id));
        for (const auto id : dec)
            if (static_cast<std::size_t>(id) >= cfg.text.vocab) throw value_error(core::describe("decoder id out of range", "--decoder-ids", "< vocab " + std::to_string(cfg.text.vocab), id));
        const auto run = [&](const auto& model) {
            tm.add("load", sw.ms());
            sw.reset();
            const std::size_t t = enc.size(), d = cfg.text.d_model;
            std::vector<float> memory(t * d), logits(dec.size() * cfg.text.vocab);
            const std::vector<std::size_t> lens{t};
            core::workspace ws(model.workspace_floats(1, t, dec.size()));
            model.embed(enc.data(), t, memory.data());
            auto tr = dump.trace();
            model.encode(memory.data(), 1, t, lens, ws, pool, tr);
            auto state = model.start(memory.data(), 1, t, lens, dec.size(), pool);
            model.step(dec.data(), dec.size(), state, logits.data(), ws, pool, tr);
            tm.add("T5 forward + dump", sw.ms());
        };
        if (cfg.gated_ffn) run(models::t5_v11<S>(cfg.text, weights::cursor(src)));
        else run(models::t5_v10<S>(cfg.text, weights::cursor(src)));
    } else if (cfg.kind == models::model_kind::pali3) {
        const models::pali3_model<S> model(cfg.pali, weights::cursor(src));
        tm.add("load", sw.ms());
        if (image.empty()) throw value_error(core::describe("no image", "pali3 dump", "IMAGE or --pixels X.npy", "neither"));
        std::vector<std::int32_t> ids;
        if (!enc_spec.empty()) ids = parse_ids(enc_spec, "encoder-ids");
        else if (!tok_path.empty()) ids = text::tokenizer::load(tok_path).encode(prompt);
        else throw value_error(core::describe("no prompt ids", "pali3 dump", "--tokenizer T [--prompt P] or --encoder-ids", "neither"));
        const auto dec = parse_ids(dec_spec, "decoder-ids");
        const auto px = load_pixels(image, cfg.pali.vision.image, antialias);
        sw.reset();
        const std::size_t n = cfg.pali.vision.tokens(), d = cfg.pali.text.d_model;
        core::workspace ws(model.workspace_floats(1, ids.size(), dec.size()));
        std::vector<float> memory((n + ids.size()) * d), logits(cfg.pali.text.vocab);
        const std::vector<std::vector<std::int32_t>> prompts{ids};
        auto tr = dump.trace();
        const auto lens = model.encode(px.data(), prompts, memory.data(), ws, pool, tr);
        auto state = model.start(memory.data(), 1, lens, dec.size(), pool);
        for (std::size_t s = 0; s < dec.size(); ++s) model.step(&dec[s], state, logits.data(), ws, pool, tr.child("step" + std::to_string(s)));
        tm.add("PaLI forward + dump", sw.ms());
    } else {
        throw config_error(core::describe("dump does not support this model kind", "pali3 dump", "vit, t5 or pali3", kind_name(cfg.kind)));
    }
    std::printf("wrote %zu activations (%s) to %s\n", dump.count, human_bytes(static_cast<double>(dump.bytes)).c_str(), out_dir.c_str());
    tm.print();
    return 0;
}

inline int dump(int argc, char** argv) {
    args a(argc, argv, 2, {"antialias"});
    const std::string w = a.get("weights"), out = a.get("out", "activations");
    const std::size_t threads = a.get_size("threads", 2);
    const std::string dtype = a.get("dtype", "f32");
    if (w.empty()) throw value_error(core::describe("missing flag", "--weights", "a checkpoint", "none"));
    const auto ckpt = weights::checkpoint::open(w);
    const auto found = find_config(a, &ckpt);
    if (!found) throw config_error(core::describe("no config for the checkpoint", w, "pali3.config metadata, config.json beside it, --config or --preset", "none"));
    std::printf("config (%s): %s\n", found->source.c_str(), models::config_to_string(found->config).c_str());
    return dtype == "bf16" ? dump_typed<bf16>(a, found->config, ckpt, out, threads) : dump_typed<float>(a, found->config, ckpt, out, threads);
}

inline int embed(int argc, char** argv) {
    args a(argc, argv, 2, {"antialias"});
    const std::string w = a.get("weights"), texts = a.get("texts"), tok_path = a.get("tokenizer");
    const std::size_t threads = a.get_size("threads", 2);
    if (w.empty()) throw value_error(core::describe("missing flag", "--weights", "a SigLIP checkpoint", "none"));
    if (a.positional().empty() && !a.has("pixels")) throw value_error(core::describe("no image", "pali3 embed", "IMAGE or --pixels X.npy", "neither"));
    const std::string image = a.has("pixels") ? a.get("pixels") : a.positional()[0];
    const auto ckpt = weights::checkpoint::open(w);
    const auto found = find_config(a, &ckpt);
    const bool antialias = a.has("antialias");
    a.check_all_used();
    if (!found || (found->config.kind != models::model_kind::vit && found->config.kind != models::model_kind::siglip))
        throw config_error(core::describe("embed needs a SigLIP config", w, "a SigLIP vision or SiglipModel config (config.json, --preset vit:/siglip:)",
                                          found ? kind_name(found->config.kind) : std::string("none")));
    const bool pair = found->config.kind == models::model_kind::siglip;
    if (!texts.empty() && !pair)
        throw config_error(core::describe("--texts needs both SigLIP towers", w, "a SiglipModel checkpoint (vision_model + text_model)", "a vision tower alone"));
    if (!texts.empty() && tok_path.empty()) throw value_error(core::describe("missing flag", "--tokenizer", "the SigLIP text tokenizer", "none"));
    timings tm;
    stopwatch sw;
    const auto& cfg = found->config.vision;
    const weights::mapped_source src(ckpt, weights::rules_for(weights::detect_naming(ckpt.names()), kind_name(found->config.kind)));
    std::optional<models::siglip_model<float>> both;
    std::optional<models::vision_tower<float>> alone;
    if (pair) both.emplace(models::siglip_config{cfg, found->config.siglip_text}, weights::cursor(src));
    else alone.emplace(cfg, weights::cursor(src));
    const models::vision_tower<float>& tower = pair ? both->vision() : *alone;
    tm.add("load", sw.ms());
    if (!cfg.map_head) throw config_error(core::describe("embed needs the MAP head", w, "vision_use_head / map_head true", "no head"));
    const auto px = load_pixels(image, cfg.image, antialias);
    sw.reset();
    core::thread_pool pool(threads);
    core::workspace ws(tower.workspace_floats(1));
    std::vector<float> tokens(cfg.tokens() * cfg.width), pooled(cfg.width);
    tower.forward(px.data(), 1, layers::image_layout::nchw, tokens.data(), ws, pool);
    tower.pool(tokens.data(), 1, pooled.data(), ws, pool);
    tm.add("vision forward", sw.ms());
    double norm = 0;
    for (const float v : pooled) norm += static_cast<double>(v) * v;
    std::printf("image embedding (%zu values, L2 norm %.4f):", pooled.size(), std::sqrt(norm));
    for (std::size_t i = 0; i < std::min<std::size_t>(8, pooled.size()); ++i) std::printf(" %.5f", pooled[i]);
    std::printf(" ...\n");
    if (!texts.empty()) {
        sw.reset();
        const auto tok = text::tokenizer::load(tok_path);
        const auto& tc = found->config.siglip_text;
        std::vector<std::string> labels;
        for (std::size_t p = 0; p <= texts.size();) {
            const auto bar = texts.find('|', p);
            labels.push_back(texts.substr(p, bar == std::string::npos ? std::string::npos : bar - p));
            if (bar == std::string::npos) break;
            p = bar + 1;
        }
        std::vector<std::int32_t> ids(labels.size() * tc.max_len, tok.pad_id());
        for (std::size_t i = 0; i < labels.size(); ++i) {
            const auto t = tok.encode(labels[i]);  // SigLIP pads every text to max_len (HF: padding="max_length")
            if (t.size() > tc.max_len)
                throw value_error(core::describe("text too long for the SigLIP text tower", "\"" + labels[i] + "\"",
                                                 "<= " + std::to_string(tc.max_len) + " tokens", t.size()));
            for (const auto id : t)
                if (static_cast<std::size_t>(id) >= tc.vocab)
                    throw config_error(core::describe("tokenizer id beyond the text tower's vocabulary", tok_path, "< " + std::to_string(tc.vocab), id));
            std::copy(t.begin(), t.end(), ids.begin() + static_cast<std::ptrdiff_t>(i * tc.max_len));
        }
        core::workspace tws(both->text().workspace_floats(labels.size()));
        std::vector<float> temb(labels.size() * tc.out_dim());
        both->text().forward(ids.data(), labels.size(), temb.data(), tws, pool);
        const auto probs = models::contrastive_scores(pooled.data(), 1, temb.data(), labels.size(), tc.out_dim(), both->log_t(), both->bias());
        tm.add("text forward + scores", sw.ms());
        std::printf("zero-shot (t = %.3f, b = %.3f):\n", std::exp(both->log_t()), both->bias());
        for (std::size_t i = 0; i < labels.size(); ++i) std::printf("  %.4f  %s\n", probs[i], labels[i].c_str());
    }
    tm.print();
    return 0;
}

// ---- bench ---------------------------------------------------------------------------------------

template <weight_storage S>
int bench_typed(const models::pali3_config& cfg, const std::optional<weights::checkpoint>& ckpt, std::size_t threads, std::size_t steps,
                std::size_t prompt_len, bool prepack) {
    timings tm;
    stopwatch sw;
    std::optional<models::pali3_model<S>> model;
    if (ckpt) {
        const weights::mapped_source src(*ckpt, weights::rules_for(weights::detect_naming(ckpt->names()), "pali3"));
        model.emplace(cfg, weights::cursor(src));
    } else {
        const weights::random_source src(5, weights::random_source::distribution::uniform, weights::dtype_of<S>());
        model.emplace(cfg, weights::cursor(src));
    }
    tm.add(ckpt ? "load weights" : "random init", sw.ms());
    if (prepack) {
        sw.reset();
        const std::size_t extra = layers::prepack(*model);
        tm.add("prepack weights (+" + human_bytes(static_cast<double>(extra)) + ")", sw.ms());
    }
    core::thread_pool pool(threads);
    std::vector<std::int32_t> prompt(prompt_len);
    for (std::size_t i = 0; i < prompt_len; ++i) prompt[i] = static_cast<std::int32_t>((i * 7919 + 3) % cfg.text.vocab);
    const std::vector<std::vector<std::int32_t>> prompts{prompt};
    const std::size_t n = cfg.vision.tokens(), d = cfg.text.d_model;
    core::workspace ws(model->workspace_floats(1, prompt_len, steps));
    std::vector<float> image(3 * cfg.vision.image * cfg.vision.image), memory((n + prompt_len) * d), logits(cfg.text.vocab);
    for (std::size_t i = 0; i < image.size(); ++i) image[i] = static_cast<float>(i % 251) / 125.f - 1.f;
    double t_vision = 0;
    sw.reset();
    layers::trace marks([&](const std::string& name, std::span<const float>, const shape_t&) {
        if (name == "projector_out") t_vision = sw.ms();
    });
    const auto lens = model->encode(image.data(), prompts, memory.data(), ws, pool, marks);
    const double t_enc = sw.ms();
    tm.add("vision tower + projector (" + std::to_string(n) + " tok)", t_vision);
    tm.add("text encoder (" + std::to_string(lens[0]) + " tok)", t_enc - t_vision);
    sw.reset();
    auto state = model->start(memory.data(), 1, lens, steps, pool);
    tm.add("cross-attention K/V", sw.ms());
    std::int32_t id = 0;
    double best = 1e30, total = 0;
    for (std::size_t s = 0; s < steps; ++s) {
        stopwatch step;
        model->step(&id, state, logits.data(), ws, pool);
        best = std::min(best, step.ms());
        total += step.ms();
        id = static_cast<std::int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
    }
    const auto& t = cfg.text;
    const double bytes = (static_cast<double>(t.decoder_layers) * (6.0 * d * d + 3.0 * d * t.d_ff) + double(t.vocab) * d) * sizeof(S);
    tm.add("decode step (mean of " + std::to_string(steps) + ")", total / static_cast<double>(steps));
    tm.add("decode step (best)", best);
    std::printf("decode: %.1f tokens/s; each step reads %s of weights (%.1f GB/s at the best step)\n", 1e3 * static_cast<double>(steps) / total,
                human_bytes(bytes).c_str(), bytes / best / 1e6);
    tm.print();
    return 0;
}

inline int bench(int argc, char** argv) {
    args a(argc, argv, 2, {"prepack"});
    const std::size_t threads = a.get_size("threads", 2), steps = a.get_size("steps", 8), prompt_len = a.get_size("prompt-tokens", 8);
    const bool prepack = a.has("prepack");
    const std::string dtype = a.get("dtype", "bf16"), w = a.get("weights");
    std::optional<weights::checkpoint> ckpt;
    if (!w.empty()) ckpt = weights::checkpoint::open(w);
    const auto found = find_config(a, ckpt ? &*ckpt : nullptr);
    a.check_all_used();
    if (!found || found->config.kind != models::model_kind::pali3)
        throw config_error(core::describe("bench needs a PaLI-3 config", "pali3 bench", "--preset pali3_5b (etc.) or a pali3 checkpoint",
                                          found ? kind_name(found->config.kind) : std::string("none")));
    if (steps == 0 || threads == 0) throw value_error(core::describe("steps and threads", "pali3 bench", ">= 1", 0));
    std::printf("bench %s, %s weights%s, %zu thread(s)\n", found->source.c_str(), dtype.c_str(), ckpt ? "" : " (random)", threads);
    return dtype == "f32" ? bench_typed<float>(found->config.pali, ckpt, threads, steps, prompt_len, prepack)
                          : bench_typed<bf16>(found->config.pali, ckpt, threads, steps, prompt_len, prepack);
}

// ---- init / convert -------------------------------------------------------------------------------

// Builds the model a config describes from `src` and returns its tensors in our names.
template <weight_storage S, class Source>
weights::memory_source load_and_save(const models::any_config& c, const Source& src) {
    weights::memory_source out;
    const auto save = [&](auto&& model) { layers::save(model, out); };
    switch (c.kind) {
        case models::model_kind::vit: save(models::vision_tower<S>(c.vision, weights::cursor(src))); break;
        case models::model_kind::t5:
            if (c.gated_ffn) save(models::t5_v11<S>(c.text, weights::cursor(src)));
            else save(models::t5_v10<S>(c.text, weights::cursor(src)));
            break;
        case models::model_kind::pali3: save(models::pali3_model<S>(c.pali, weights::cursor(src))); break;
        case models::model_kind::siglip_text: save(models::text_tower<S>(c.siglip_text, weights::cursor(src))); break;
        case models::model_kind::siglip: save(models::siglip_model<S>({c.vision, c.siglip_text}, weights::cursor(src))); break;
    }
    return out;
}

inline std::vector<weights::map_rule> export_rules(const models::any_config& c) {
    switch (c.kind) {
        case models::model_kind::vit: return weights::name_maps::hf_siglip_vision();
        case models::model_kind::t5: return weights::name_maps::hf_t5();
        case models::model_kind::pali3: return weights::name_maps::hf_pali3();
        case models::model_kind::siglip_text: return weights::name_maps::hf_siglip_text();
        case models::model_kind::siglip: return weights::name_maps::hf_siglip();
    }
    return {};
}

// Writes `ours` as `out` in our naming (with pali3.config) or HF naming (with config.json beside it).
inline void write_named(const std::string& out, const weights::memory_source& ours, const models::any_config& c, const std::string& naming) {
    if (naming == "pali3") {
        weights::write_safetensors(out, ours, {{std::string(models::config_metadata_key), models::config_to_string(c)}});
    } else if (naming == "hf") {
        const auto theirs = weights::export_names(ours, export_rules(c));
        weights::write_safetensors(out, theirs, {{"format", "pt"}});
        if (c.kind == models::model_kind::vit || c.kind == models::model_kind::t5 || c.kind == models::model_kind::siglip) {
            const auto dir = std::filesystem::path(out).parent_path();
            weights::write_file((dir / "config.json").string(), json::dump(models::config_to_hf(c)));
        }
    } else {
        throw value_error(core::describe("output naming", "--naming", "pali3 or hf", naming));
    }
}

inline int init(int argc, char** argv) {
    args a(argc, argv, 2);
    if (a.positional().size() != 1) throw value_error(core::describe("init needs an output file", "pali3 init", "OUT.safetensors", a.positional().size()));
    const std::size_t seed = a.get_size("seed", 1);
    const std::string naming = a.get("naming", "pali3"), dtype = a.get("dtype", "f32");
    const auto found = find_config(a, nullptr);
    a.check_all_used();
    if (!found) throw config_error(core::describe("no config", "pali3 init", "--preset P or --config JSON", "none"));
    stopwatch sw;
    const weights::random_source rnd(seed);
    const auto ours = dtype == "bf16" ? load_and_save<bf16>(found->config, rnd) : load_and_save<float>(found->config, rnd);
    write_named(a.positional()[0], ours, found->config, naming);
    std::printf("wrote %s: %zu tensors, seeded random weights (%zu), %s naming, %s, in %.1f s\n", a.positional()[0].c_str(), ours.size(), seed,
                naming.c_str(), dtype.c_str(), sw.seconds());
    return 0;
}

inline int convert(int argc, char** argv) {
    args a(argc, argv, 2);
    if (a.positional().size() != 2) throw value_error(core::describe("convert needs input and output", "pali3 convert", "IN OUT", a.positional().size()));
    const std::string naming = a.get("naming", "pali3"), dtype = a.get("dtype", "f32");
    const auto ckpt = weights::checkpoint::open(a.positional()[0]);
    const auto found = find_config(a, &ckpt);
    a.check_all_used();
    if (!found) throw config_error(core::describe("no config for the input", a.positional()[0], "pali3.config, config.json, --config or --preset", "none"));
    stopwatch sw;
    const weights::mapped_source src(ckpt, weights::rules_for(weights::detect_naming(ckpt.names()), kind_name(found->config.kind)));
    const auto ours = dtype == "bf16" ? load_and_save<bf16>(found->config, src) : load_and_save<float>(found->config, src);
    write_named(a.positional()[1], ours, found->config, naming);
    std::printf("converted %s (%s) -> %s (%s naming, %s): %zu tensors in %.1f s\n", a.positional()[0].c_str(),
                std::string(weights::naming_name(weights::detect_naming(ckpt.names()))).c_str(), a.positional()[1].c_str(), naming.c_str(),
                dtype.c_str(), ours.size(), sw.seconds());
    return 0;
}

inline command_fn find_command(const std::string& name) {
    if (name == "make-demo") return make_demo;
    if (name == "caption") return caption;
    if (name == "vqa") return vqa;
    if (name == "detect") return detect;
    if (name == "segment") return segment;
    if (name == "generate") return generate_cmd;
    if (name == "dump") return dump;
    if (name == "embed") return embed;
    if (name == "bench") return bench;
    if (name == "init") return init;
    if (name == "convert") return convert;
    return nullptr;
}

}  // namespace pali3::cli
