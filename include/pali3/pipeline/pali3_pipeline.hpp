// A PaLI-3 checkpoint as an application uses it: open the checkpoint (any naming), find its config,
// load the tokenizer (and the VQ-VAE for masks), build the model in the chosen storage, then
// caption / answer / detect / segment / generate from image files, with per-stage timings.
//
//     pali3::pipeline::options o;
//     o.weights = "model.safetensors";  o.tokenizer = "tokenizer.model";
//     pali3::pipeline::pali3_pipeline p(o);
//     auto a = p.caption("photo.jpg");       // a.text, a.best.tokens, a.objects, a.times
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "pali3/core/threading.hpp"
#include "pali3/generation/generate.hpp"
#include "pali3/generation/tasks.hpp"
#include "pali3/io/image.hpp"
#include "pali3/models/dispatch.hpp"
#include "pali3/pipeline/config_source.hpp"
#include "pali3/pipeline/preprocessing.hpp"
#include "pali3/pipeline/weight_dtype.hpp"
#include "pali3/text/tokenizer.hpp"
#include "pali3/vision/preprocess.hpp"
#include "pali3/vision/vqvae.hpp"
#include "pali3/weights/checkpoint.hpp"

namespace pali3::pipeline {

struct options {
    std::string weights, tokenizer, vqvae;  // checkpoint (file, shard index or directory), sentencepiece, vae-oid .npz
    config_request config;                  // --preset / --config / --resolution; default: the checkpoint's
    std::string dtype = "f32";              // weights in memory: f32, bf16 or int8 (pipeline/weight_dtype.hpp)
    std::size_t int8_group = 0;             // int8: a scale per row (0) or per this many values
    bool prepack = false;                   // keep weights in the GEMM's layout too (2x memory)
    std::size_t threads = 2;
    preprocessing_request preprocessing;    // --resize / --mean / --std / --antialias; else preprocessor_config.json, else big_vision's
    std::size_t max_new_tokens = 32, beam = 1, max_prompt_tokens = 64;
    float length_penalty = 0.f;
    std::size_t max_memory = 0;             // bytes a run may need (estimated before loading); 0: the machine's memory
};

// The run a pipeline with these options may make, for the memory estimate (models/footprint.hpp).
inline models::run_request run_request_of(const options& o) {
    models::run_request req;
    set_weight_request(req, o.dtype, o.int8_group);
    req.prepack = o.prepack;
    req.prompt_tokens = o.max_prompt_tokens;
    req.new_tokens = o.max_new_tokens;
    req.beam = o.beam;
    return req;
}

// What one image + prompt gave.
struct answer {
    std::string prompt;
    std::size_t prompt_tokens = 0;
    generation::hypothesis best;               // generated ids, log-prob, EOS reached
    std::string text;                          // decoded, ids beyond the tokenizer dropped
    std::size_t dropped_ids = 0;
    std::size_t steps = 0;                     // decoder steps run
    double decode_ms = 0;                      // time of those steps
    std::vector<generation::detection> objects;        // detect / segment: boxes in image pixels
    std::vector<std::vector<std::uint8_t>> masks;      // segment: one (height*width) mask per object, empty when none
    io::image image;                           // the input image as decoded
    timings times;
};

class pali3_pipeline {
public:
    // `Models` turns the config into model types (models::with_model by default); pass your own
    // to run a composed pali3_model<...> through the pipeline. A template, so only the programs
    // that construct a pipeline compile the models.
    template <class Models = models::runtime_models>
    explicit pali3_pipeline(const options& o, const Models& make_model = {}) : opts_(o) {
        if (o.weights.empty()) throw value_error(core::describe("missing flag", "--weights", "a checkpoint path", "none"));
        if (o.tokenizer.empty()) throw value_error(core::describe("missing flag", "--tokenizer", "a sentencepiece model", "none"));
        if (o.threads == 0 || o.threads > 256) throw value_error(core::describe("thread count", "--threads", "1..256", o.threads));
        check_dtype(o.dtype, o.int8_group);
        ckpt_.emplace(weights::checkpoint::open(o.weights));
        found_ = find_config(o.config, &*ckpt_);
        if (!found_ || found_->config.kind != models::model_kind::pali3)
            throw config_error(core::describe("no PaLI-3 config for the checkpoint", o.weights,
                                              "pali3.config metadata, --config or --preset naming a PaLI-3 model",
                                              found_ ? "a " + models::kind_name(found_->config.kind) + " config" : std::string("none")));
        const auto& cfg = found_->config.pali;
        pre_ = resolve_preprocessing(o.preprocessing, o.weights, cfg.vision.image, &pre_source_);
        // The tokenizer first: a misfit is reported before the (possibly long) weight load.
        stopwatch sw;
        tok_.emplace(text::tokenizer::load(o.tokenizer));
        if (tok_->vocab_size() > cfg.text.vocab)
            throw config_error(core::describe("tokenizer larger than the model's vocabulary", o.tokenizer,
                                              "<= " + std::to_string(cfg.text.vocab) + " ids", tok_->vocab_size()));
        load_times_.add("load tokenizer", sw.ms());
        // what the request implies, checked before anything is allocated for it
        models::require_memory(models::estimate_memory(found_->config, run_request_of(o)), o.max_memory, o.weights);
        if (!o.vqvae.empty()) {
            sw.reset();
            vae_file_.emplace(weights::checkpoint::open(o.vqvae));
            // vae-oid's sizes unless the file says otherwise (a smaller VQ-VAE, e.g. the shapes
            // world's: the codebook's shape and decoder.0's output width)
            std::size_t codebook = 128, embed = 512, width = 128;
            for (const auto& t : vae_file_->list()) {
                if (t.name == "_vq_vae._embedding" && t.shape.size() == 2) codebook = t.shape[0], embed = t.shape[1];
                if (t.name == "decoder.0.weight" && t.shape.size() == 4) width = t.shape[0];
            }
            vae_.emplace(vision::vqvae_config{codebook, embed, width}, weights::cursor(*vae_file_));
            load_times_.add("load VQ-VAE", sw.ms());
        }
        sw.reset();
        const weights::mapped_source src(*ckpt_, weights::rules_for(weights::detect_naming(ckpt_->names()), "pali3"));
        make_model(found_->config, storage_of(o.dtype), [&]<class M>(std::type_identity<M>, const auto& c) {
            if constexpr (requires { typename M::projector_type; })  // the PaLI-3 kinds
                engine_ = std::make_unique<engine_for<M>>(c, src, o.dtype, o.int8_group, load_times_);
        });
        if (o.prepack) {
            sw.reset();
            const std::size_t extra = engine_->prepack();
            load_times_.add("prepack weights (+" + human_bytes(static_cast<double>(extra)) + ")", sw.ms());
        }
        pool_ = std::make_unique<core::thread_pool>(o.threads);
    }

    const models::any_config& config() const { return found_->config; }
    const std::string& config_source() const { return found_->source; }
    const text::tokenizer& tokenizer() const { return *tok_; }
    const timings& load_times() const { return load_times_; }
    // Where the image preprocessing came from (flags, preprocessor_config.json, big_vision's).
    const std::string& preprocessing_source() const { return pre_source_; }
    const options& settings() const { return opts_; }

    // Any prompt; the answer's text is the decoded output.
    answer generate(const std::string& image_path, const std::string& prompt) {
        return std::move(generate_batch({image_path}, {prompt}).front());
    }

    // One batch: image i with prompt i (one prompt: the same for every image). The vision tower,
    // the encoder and each decoder step run once for all; prompts of different lengths are
    // padded and masked, and each answer is the one its image and prompt give alone (the
    // timings are the batch's, in every answer).
    std::vector<answer> generate_batch(const std::vector<std::string>& image_paths, const std::vector<std::string>& prompts) {
        const std::size_t batch = image_paths.size();
        if (batch == 0) throw value_error(core::describe("no image", "pali3_pipeline::generate_batch", "at least one", "none"));
        if (prompts.size() != batch && prompts.size() != 1)
            throw value_error(core::describe("prompts per image", "pali3_pipeline::generate_batch",
                                             "1 or " + std::to_string(batch), prompts.size()));
        std::vector<answer> out(batch);
        std::vector<std::vector<std::int32_t>> ids(batch);
        stopwatch sw;
        for (std::size_t b = 0; b < batch; ++b) {
            const std::string& prompt = prompts[prompts.size() == 1 ? 0 : b];
            out[b].prompt = prompt;
            ids[b] = tok_->encode(prompt);
            if (ids[b].size() > opts_.max_prompt_tokens)
                throw value_error(core::describe("prompt too long", "\"" + prompt.substr(0, 40) + "\"",
                                                 "<= " + std::to_string(opts_.max_prompt_tokens) + " tokens (--max-prompt-tokens)", ids[b].size()));
            out[b].prompt_tokens = ids[b].size();
        }
        timings shared;
        shared.add("encode prompt", sw.ms());
        sw.reset();
        std::vector<float> pixels;
        for (std::size_t b = 0; b < batch; ++b) {
            out[b].image = io::load_image(image_paths[b]);
            const auto px = vision::preprocess(out[b].image, pre_);
            pixels.insert(pixels.end(), px.begin(), px.end());
        }
        shared.add(batch > 1 ? "load + preprocess images" : "load + preprocess image", sw.ms());
        generation::options g;
        g.max_new_tokens = opts_.max_new_tokens;
        g.beam = opts_.beam;
        g.length_penalty = opts_.length_penalty;
        g.eos_id = tok_->eos_id();
        g.start_id = tok_->decoder_start_id();
        engine_->run(pixels, ids, g, *pool_, shared, out);
        for (auto& a : out) {
            a.times = shared;
            std::vector<std::int32_t> valid;
            for (const auto id : a.best.tokens)
                if (id >= 0 && static_cast<std::size_t>(id) < tok_->vocab_size()) valid.push_back(id);
            a.dropped_ids = a.best.tokens.size() - valid.size();
            a.text = tok_->decode(valid);
        }
        return out;
    }

    answer caption(const std::string& image, const std::string& lang = "en") { return generate(image, generation::caption_prompt(lang)); }
    answer vqa(const std::string& image, const std::string& question, const std::string& lang = "en") {
        return generate(image, generation::vqa_prompt(question, lang));
    }
    // Boxes of "thing" or "a ; b" (in image pixels).
    answer detect(const std::string& image, const std::string& things) {
        answer a = generate(image, generation::detect_prompt(things));
        stopwatch sw;
        a.objects = generation::parse_objects(a.best.tokens, *tok_, a.image.height, a.image.width);
        a.times.add("parse", sw.ms());
        return a;
    }
    // Boxes and masks (the VQ-VAE of options.vqvae decodes each box's 16 <seg> tokens).
    answer segment(const std::string& image, const std::string& thing) {
        if (!vae_) throw value_error(core::describe("missing flag", "--vqvae", "the VQ-VAE mask decoder (vae-oid.npz)", "none"));
        answer a = generate(image, generation::segment_prompt(thing));
        stopwatch sw;
        a.objects = generation::parse_objects(a.best.tokens, *tok_, a.image.height, a.image.width);
        for (const auto& o : a.objects) a.masks.push_back(generation::object_mask(o, *vae_, a.image.height, a.image.width));
        a.times.add("parse + masks", sw.ms());
        return a;
    }

private:
    // The model behind a virtual call: one per PaLI-3 type the config can describe.
    struct engine {
        virtual ~engine() = default;
        virtual std::size_t prepack() = 0;
        virtual void run(const std::vector<float>& pixels, const std::vector<std::vector<std::int32_t>>& prompts,
                         const generation::options& g, core::thread_pool& pool, timings& times, std::vector<answer>& out) = 0;
    };
    template <class Model>
    struct engine_for final : engine {
        Model model;
        template <class Config, class Source>
        engine_for(const Config& c, const Source& src, std::string_view dtype, std::size_t int8_group, timings& t) : model(c) {
            load_weights(model, weights::cursor(src), dtype, int8_group, t, "load weights (" + std::string(storage_of(dtype)) + ")");
        }
        std::size_t prepack() override { return layers::prepack(model); }
        void run(const std::vector<float>& pixels, const std::vector<std::vector<std::int32_t>>& prompts,
                 const generation::options& g, core::thread_pool& pool, timings& times, std::vector<answer>& out) override {
            const auto& cfg = model.config();
            const std::size_t batch = prompts.size(), n = cfg.vision.tokens(), d = cfg.text.d_model;
            std::size_t t_max = 0;
            for (const auto& p : prompts) t_max = std::max(t_max, p.size());
            core::workspace ws(model.workspace_floats(batch * std::max<std::size_t>(g.beam, 1), t_max, g.max_new_tokens));
            std::vector<float> memory(batch * (n + t_max) * d);
            double t_vision = 0;
            stopwatch sw;
            const layers::trace marks([&](const std::string& name, std::span<const float> x, const shape_t&) {
                if (name != "projector_out") return;
                t_vision = sw.ms();
                core::require_finite(x, d, "vision tower + projector output (image tokens)");
            });
            const auto lens = model.encode(pixels.data(), prompts, memory.data(), ws, pool, marks);
            const double t_enc = sw.ms();
            for (std::size_t b = 0; b < batch; ++b)
                core::require_finite(std::span<const float>(memory.data() + b * (n + t_max) * d, lens[b] * d), d, "text encoder output");
            const std::string per = batch > 1 ? std::to_string(batch) + " x " : "";
            times.add("vision tower + projector (" + per + std::to_string(n) + " tok)", t_vision);
            times.add("text encoder (" + per + std::to_string(n + t_max) + " tok)", t_enc - t_vision);
            sw.reset();
            auto state = model.start(memory.data(), batch, lens, g.max_new_tokens, pool);
            times.add("cross-attention K/V", sw.ms());
            sw.reset();
            std::size_t steps = 0;
            const auto best = generation::generate(
                [&](const std::int32_t* step_ids, models::t5_decoder_state& s, float* logits) {
                    ++steps;
                    model.step(step_ids, s, logits, ws, pool);
                },
                std::move(state), cfg.text.vocab, g);
            const double t_dec = sw.ms();
            times.add("decode (" + std::to_string(steps) + " steps, beam " + std::to_string(g.beam) + ")", t_dec);
            times.add("  per step", steps ? t_dec / static_cast<double>(steps) : 0.0);
            for (std::size_t b = 0; b < batch; ++b) {
                out[b].steps = steps;
                out[b].decode_ms = t_dec;
                out[b].best = best.at(b);
            }
        }
    };

    options opts_;
    std::optional<weights::checkpoint> ckpt_, vae_file_;
    std::optional<found_config> found_;
    vision::preprocess_options pre_;
    std::string pre_source_;
    std::optional<text::tokenizer> tok_;
    std::optional<vision::vqvae_decoder> vae_;
    std::unique_ptr<engine> engine_;
    std::unique_ptr<core::thread_pool> pool_;
    timings load_times_;
};

}  // namespace pali3::pipeline
