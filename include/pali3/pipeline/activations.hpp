// Every named activation of any model a config describes, for diffing against another
// implementation: run_traced() builds the model from a checkpoint (any naming, f32 or bf16), runs
// it on the given inputs and reports each intermediate to a trace; npy_dumper writes them as
// DIR/<name>.npy (e.g. "encoder.blocks.3.mlp_out.npy", "text.decoder.blocks.0.self_attn_out.npy").
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "pali3/core/threading.hpp"
#include "pali3/models/dispatch.hpp"
#include "pali3/pipeline/config_source.hpp"
#include "pali3/pipeline/siglip_pipeline.hpp"
#include "pali3/weights/checkpoint.hpp"
#include "pali3/weights/npy.hpp"

namespace pali3::pipeline {

// What the model is run on; which fields are needed depends on the model.
struct model_inputs {
    std::string image;                         // vision towers, PaLI-3: an image file or (1, 3, S, S) .npy pixels
    std::vector<std::int32_t> encoder_ids;     // T5: encoder input; PaLI-3: the prompt's ids
    std::vector<std::int32_t> decoder_ids{0};  // T5 / PaLI-3: decoder input (teacher forced), start token first
    preprocessing_request preprocessing;       // else preprocessor_config.json beside the checkpoint, else big_vision's
    std::string checkpoint;                    // where preprocessor_config.json is looked for (run_traced sets it)
};

// Writes each traced tensor as dir/<name>.npy.
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

namespace detail {
inline void check_ids(const std::vector<std::int32_t>& ids, std::size_t vocab, std::string_view what, std::string_view flag) {
    for (const auto id : ids)
        if (id < 0 || static_cast<std::size_t>(id) >= vocab)
            throw value_error(core::describe(std::string(what) + " id out of range", flag, "< vocab " + std::to_string(vocab), id));
}
inline void require_image(const model_inputs& in) {
    if (in.image.empty()) throw value_error(core::describe("no image", "pali3 dump", "IMAGE or --pixels X.npy", "neither"));
}

template <class Model, class Config>
void run_model(const Model& model, const Config& cfg, const model_inputs& in, core::thread_pool& pool, const layers::trace& tr) {
    if constexpr (requires { typename Model::projector_type; }) {  // PaLI-3
        require_image(in);
        if (in.encoder_ids.empty())
            throw value_error(core::describe("no prompt ids", "pali3 dump", "--tokenizer T [--prompt P] or --encoder-ids", "neither"));
        check_ids(in.encoder_ids, cfg.text.vocab, "encoder", "--encoder-ids");
        check_ids(in.decoder_ids, cfg.text.vocab, "decoder", "--decoder-ids");
        const auto px = load_pixels(in.image, resolve_preprocessing(in.preprocessing, in.checkpoint, cfg.vision.image));
        const std::size_t n = cfg.vision.tokens(), d = cfg.text.d_model, steps = in.decoder_ids.size();
        core::workspace ws(model.workspace_floats(1, in.encoder_ids.size(), steps));
        std::vector<float> memory((n + in.encoder_ids.size()) * d), logits(cfg.text.vocab);
        const std::vector<std::vector<std::int32_t>> prompts{in.encoder_ids};
        const auto lens = model.encode(px.data(), prompts, memory.data(), ws, pool, tr);
        auto state = model.start(memory.data(), 1, lens, steps, pool);
        for (std::size_t s = 0; s < steps; ++s)
            model.step(&in.decoder_ids[s], state, logits.data(), ws, pool, tr.child("step" + std::to_string(s)));
    } else if constexpr (models::encoder_decoder<Model>) {  // T5 / UL2: teacher forced
        if (in.encoder_ids.empty())
            throw value_error(core::describe("no encoder ids", "pali3 dump", "--encoder-ids 1,2,3 or X.npy", "none"));
        check_ids(in.encoder_ids, cfg.vocab, "encoder", "--encoder-ids");
        check_ids(in.decoder_ids, cfg.vocab, "decoder", "--decoder-ids");
        const std::size_t t = in.encoder_ids.size(), steps = in.decoder_ids.size();
        std::vector<float> memory(t * cfg.d_model), logits(steps * cfg.vocab);
        const std::vector<std::size_t> lens{t};
        core::workspace ws(model.workspace_floats(1, t, steps));
        model.embed(in.encoder_ids.data(), t, memory.data());
        model.encode(memory.data(), 1, t, lens, ws, pool, tr);
        auto state = model.start(memory.data(), 1, t, lens, steps, pool);
        model.step(in.decoder_ids.data(), steps, state, logits.data(), ws, pool, tr);
    } else if constexpr (models::vision_model<Model>) {  // a SigLIP vision tower
        require_image(in);
        const auto px = load_pixels(in.image, resolve_preprocessing(in.preprocessing, in.checkpoint, cfg.image));
        tr("pixels", px.data(), {1, 3, cfg.image, cfg.image});
        std::vector<float> tokens(cfg.tokens() * cfg.width), pooled(cfg.width);
        core::workspace ws(model.workspace_floats(1));
        model.forward(px.data(), 1, layers::image_layout::nchw, tokens.data(), ws, pool, tr);
        if (cfg.map_head) {
            model.pool(tokens.data(), 1, pooled.data(), ws, pool);
            tr("pooled", pooled.data(), {1, cfg.width});
        }
    } else if constexpr (requires { model.vision(); model.text(); }) {  // a SigLIP pair: both towers
        run_model(model.vision(), cfg.vision, in, pool, tr.child("vision"));
        if (!in.encoder_ids.empty()) {
            const std::size_t len = cfg.text.max_len;
            if (in.encoder_ids.size() != len)
                throw value_error(core::describe("SigLIP text ids", "--encoder-ids", std::to_string(len) + " ids (padded as SigLIP pads)",
                                                 in.encoder_ids.size()));
            check_ids(in.encoder_ids, cfg.text.vocab, "encoder", "--encoder-ids");
            std::vector<float> out(cfg.text.out_dim());
            core::workspace ws(model.text().workspace_floats(1));
            model.text().forward(in.encoder_ids.data(), 1, out.data(), ws, pool, tr.child("text"));
        }
    } else {
        throw config_error(core::describe("no activations to dump for this model kind", "pali3 dump", "vit, t5, pali3 or siglip", "siglip_text"));
    }
}
}  // namespace detail

// How run_traced() builds and runs the model.
struct run_options {
    std::string dtype = "f32";  // weight storage: f32 or bf16
    std::size_t threads = 2;
    bool prepack = false;       // also keep the weights in the GEMM's layout (layers::prepack)
    std::size_t repeat = 0;     // after the traced run, run this many more times untraced and time each
    std::size_t max_memory = 0;  // bytes the estimate may reach (0: the machine's memory)
};

struct run_result {
    timings times;                 // load, prepack, the traced run
    std::vector<double> repeat_ms;  // one per untraced repeat: the same inputs, outputs not reported
};

// Builds the model `config` describes from `ckpt` and runs it once on `in`, reporting to `tr`;
// then o.repeat untraced runs, each timed (a peer comparison on the same weights and inputs:
// scripts/peers.sh). `Models` as for pali3_pipeline.
template <class Models = models::runtime_models>
run_result run_traced(const models::any_config& config, const weights::checkpoint& ckpt, model_inputs in,
                      const run_options& o, const layers::trace& tr, const Models& make_model = {}) {
    if (in.checkpoint.empty()) in.checkpoint = ckpt.path();
    models::run_request req;
    req.weight_bytes = o.dtype == "bf16" ? 2 : 4;
    req.prepack = o.prepack;
    req.prompt_tokens = std::max<std::size_t>(in.encoder_ids.size(), 1);
    req.new_tokens = in.decoder_ids.size();
    models::require_memory(models::estimate_memory(config, req), o.max_memory, ckpt.path());
    run_result r;
    stopwatch sw;
    const weights::mapped_source src(ckpt, weights::rules_for(weights::detect_naming(ckpt.names()), models::kind_name(config.kind)));
    core::thread_pool pool(o.threads ? o.threads : 1);
    make_model(config, o.dtype, [&]<class M>(std::type_identity<M>, const auto& c) {
        M model(c, weights::cursor(src));
        r.times.add("load", sw.ms());
        if (o.prepack) {
            sw.reset();
            const std::size_t extra = layers::prepack(model);
            r.times.add("prepack weights (+" + human_bytes(static_cast<double>(extra)) + ")", sw.ms());
        }
        sw.reset();
        detail::run_model(std::as_const(model), c, in, pool, tr);
        r.times.add("forward + trace", sw.ms());
        for (std::size_t i = 0; i < o.repeat; ++i) {
            sw.reset();
            detail::run_model(std::as_const(model), c, in, pool, layers::trace{});
            r.repeat_ms.push_back(sw.ms());
        }
    });
    return r;
}

}  // namespace pali3::pipeline
