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
#include "pali3/pipeline/weight_dtype.hpp"
#include "pali3/weights/checkpoint.hpp"
#include "pali3/weights/npy.hpp"

namespace pali3::pipeline {

// What the model is run on; which fields are needed depends on the model. A batch of N items
// runs as one batch (the traces then have N rows), each item giving the result it gives alone.
struct model_inputs {
    // Vision towers, PaLI-3, SigLIP pairs: image files, or .npy pixels (n, 3, S, S) already
    // preprocessed; all of them together are the batch of images.
    std::vector<std::string> images;
    // T5: encoder input; PaLI-3: prompt ids; SigLIP pair: text ids padded to max_len. Row-major
    // (encoder_rows, length): one row per item (one row with several images: the same prompt for each).
    std::vector<std::int32_t> encoder_ids;
    std::size_t encoder_rows = 1;
    // HF's attention_mask for encoder_ids (same shape), 0/1, any pattern (left padding, holes);
    // PaLI-3: over the prompt ids (its image tokens are always seen). Empty: all ids real.
    std::vector<std::uint8_t> encoder_mask;
    // T5 / PaLI-3: decoder input (teacher forced), start token first; (decoder_rows, steps),
    // one row for every item or one per item.
    std::vector<std::int32_t> decoder_ids{0};
    std::size_t decoder_rows = 1;
    preprocessing_request preprocessing;  // else preprocessor_config.json beside the checkpoint, else big_vision's
    std::string checkpoint;               // where preprocessor_config.json is looked for (run_traced sets it)
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

// The images of a batch, preprocessed: (n, 3, S, S). Each spec is an image file or an .npy of
// (k, 3, S, S) preprocessed pixels.
inline std::vector<float> load_pixel_batch(const model_inputs& in, const vision::preprocess_options& o, std::size_t& n) {
    if (in.images.empty()) throw value_error(core::describe("no image", "pali3 dump", "IMAGE... or --pixels X.npy", "neither"));
    std::vector<float> px;
    for (const auto& spec : in.images) {
        const auto one = load_pixels(spec, o, /*batch=*/true);
        px.insert(px.end(), one.begin(), one.end());
    }
    n = px.size() / (3 * o.size * o.size);
    return px;
}

// Rows of a row-major id matrix: `rows` of equal length; one row may serve `batch` items.
template <class T>
std::vector<T> rows_for_batch(const std::vector<T>& ids, std::size_t rows, std::size_t batch, std::string_view flag) {
    if (rows == 0 || ids.size() % rows != 0)
        throw shape_error(core::describe("id rows of one length", flag, "a multiple of " + std::to_string(rows) + " ids", ids.size()));
    if (rows == batch) return ids;
    if (rows != 1)
        throw shape_error(core::describe("one id row per item, or one for all", flag, "1 or " + std::to_string(batch) + " rows", rows));
    std::vector<T> out;
    out.reserve(ids.size() * batch);
    for (std::size_t b = 0; b < batch; ++b) out.insert(out.end(), ids.begin(), ids.end());
    return out;
}

// The encoder mask against encoder ids of `rows` rows: same size, 0/1 (a row of zeros is
// refused by the model's key_mask check, naming the row).
inline void check_mask(const model_inputs& in) {
    if (in.encoder_mask.empty()) return;
    if (in.encoder_mask.size() != in.encoder_ids.size())
        throw shape_error(core::describe("encoder mask size", "--encoder-mask", "one 0/1 per encoder id: " + std::to_string(in.encoder_ids.size()),
                                         in.encoder_mask.size()));
    for (std::size_t i = 0; i < in.encoder_mask.size(); ++i)
        if (in.encoder_mask[i] > 1)
            throw value_error(core::describe("encoder mask value", "--encoder-mask", "0 or 1",
                                             "value " + std::to_string(in.encoder_mask[i]) + " at index " + std::to_string(i)));
}

template <class Model, class Config>
void run_model(const Model& model, const Config& cfg, const model_inputs& in, core::thread_pool& pool, const layers::trace& tr) {
    check_mask(in);
    if constexpr (requires { typename Model::projector_type; }) {  // PaLI-3
        if (in.encoder_ids.empty())
            throw value_error(core::describe("no prompt ids", "pali3 dump", "--tokenizer T [--prompt P] or --encoder-ids", "neither"));
        check_ids(in.encoder_ids, cfg.text.vocab, "encoder", "--encoder-ids");
        check_ids(in.decoder_ids, cfg.text.vocab, "decoder", "--decoder-ids");
        std::size_t batch = 0;
        const auto px = load_pixel_batch(in, resolve_preprocessing(in.preprocessing, in.checkpoint, cfg.vision.image), batch);
        const auto ids = rows_for_batch(in.encoder_ids, in.encoder_rows, batch, "--encoder-ids");
        const auto dec = rows_for_batch(in.decoder_ids, in.decoder_rows, batch, "--decoder-ids");
        const auto mask = in.encoder_mask.empty() ? in.encoder_mask
                                                  : rows_for_batch(in.encoder_mask, in.encoder_rows, batch, "--encoder-mask");
        const std::size_t t = ids.size() / batch, steps = dec.size() / batch;
        // Each prompt is its row; with a mask, the row's 0/1 (any pattern) hides ids from every query.
        std::vector<std::vector<std::int32_t>> prompts(batch);
        std::vector<std::vector<std::uint8_t>> masks(mask.empty() ? 0 : batch);
        for (std::size_t b = 0; b < batch; ++b) {
            prompts[b].assign(ids.begin() + static_cast<std::ptrdiff_t>(b * t), ids.begin() + static_cast<std::ptrdiff_t>((b + 1) * t));
            if (!mask.empty())
                masks[b].assign(mask.begin() + static_cast<std::ptrdiff_t>(b * t), mask.begin() + static_cast<std::ptrdiff_t>((b + 1) * t));
        }
        const std::size_t n = cfg.vision.tokens(), d = cfg.text.d_model;
        core::workspace ws(model.workspace_floats(batch, t, steps));
        std::vector<float> memory(batch * (n + t) * d), logits(batch * cfg.text.vocab);
        const auto prefix = model.encode(px.data(), prompts, masks, memory.data(), ws, pool, tr);
        auto state = model.start(memory.data(), batch, prefix, steps, pool);
        std::vector<std::int32_t> step_ids(batch);
        for (std::size_t s = 0; s < steps; ++s) {
            for (std::size_t b = 0; b < batch; ++b) step_ids[b] = dec[b * steps + s];
            model.step(step_ids.data(), state, logits.data(), ws, pool, tr.child("step" + std::to_string(s)));
        }
    } else if constexpr (models::encoder_decoder<Model>) {  // T5 / UL2: teacher forced
        if (in.encoder_ids.empty())
            throw value_error(core::describe("no encoder ids", "pali3 dump", "--encoder-ids 1,2,3 or X.npy", "none"));
        check_ids(in.encoder_ids, cfg.vocab, "encoder", "--encoder-ids");
        check_ids(in.decoder_ids, cfg.vocab, "decoder", "--decoder-ids");
        const std::size_t batch = in.encoder_rows;
        const auto& ids = in.encoder_ids;
        const auto dec = rows_for_batch(in.decoder_ids, in.decoder_rows, batch, "--decoder-ids");
        (void)rows_for_batch(ids, batch, batch, "--encoder-ids");
        const std::size_t t = ids.size() / batch, steps = dec.size() / batch;
        std::vector<float> memory(batch * t * cfg.d_model), logits(batch * steps * cfg.vocab);
        const layers::key_mask keys({}, in.encoder_mask);
        core::workspace ws(model.workspace_floats(batch, t, steps));
        model.embed(ids.data(), ids.size(), memory.data());
        model.encode(memory.data(), batch, t, keys, ws, pool, tr);
        auto state = model.start(memory.data(), batch, t, keys, steps, pool);
        model.step(dec.data(), steps, state, logits.data(), ws, pool, tr);
    } else if constexpr (models::vision_model<Model>) {  // a SigLIP vision tower
        std::size_t batch = 0;
        const auto px = load_pixel_batch(in, resolve_preprocessing(in.preprocessing, in.checkpoint, cfg.image), batch);
        tr("pixels", px.data(), {batch, 3, cfg.image, cfg.image});
        std::vector<float> tokens(batch * cfg.tokens() * cfg.width), pooled(batch * cfg.width);
        core::workspace ws(model.workspace_floats(batch));
        model.forward(px.data(), batch, layers::image_layout::nchw, tokens.data(), ws, pool, tr);
        if (cfg.map_head) {
            model.pool(tokens.data(), batch, pooled.data(), ws, pool);
            tr("pooled", pooled.data(), {batch, cfg.width});
        }
    } else if constexpr (requires { model.vision(); model.text(); }) {  // a SigLIP pair: both towers
        run_model(model.vision(), cfg.vision, in, pool, tr.child("vision"));
        if (!in.encoder_ids.empty()) {
            const std::size_t len = cfg.text.max_len, batch = in.encoder_rows;
            if (batch == 0 || in.encoder_ids.size() != batch * len)
                throw value_error(core::describe("SigLIP text ids", "--encoder-ids",
                                                 "rows of " + std::to_string(len) + " ids (padded as SigLIP pads)",
                                                 std::to_string(in.encoder_ids.size()) + " ids in " + std::to_string(batch) + " row(s)"));
            if (!in.encoder_mask.empty())
                throw value_error(core::describe("SigLIP text tower and --encoder-mask", "--encoder-mask",
                                                 "no mask (SigLIP's text tower sees its padding, as trained)", "a mask"));
            check_ids(in.encoder_ids, cfg.text.vocab, "encoder", "--encoder-ids");
            std::vector<float> out(batch * cfg.text.out_dim());
            core::workspace ws(model.text().workspace_floats(batch));
            model.text().forward(in.encoder_ids.data(), batch, out.data(), ws, pool, tr.child("text"));
        }
    } else {
        throw config_error(core::describe("no activations to dump for this model kind", "pali3 dump", "vit, t5, pali3 or siglip", "siglip_text"));
    }
}
}  // namespace detail

// How run_traced() builds and runs the model.
struct run_options {
    std::string dtype = "f32";  // weights in memory: f32, bf16 or int8 (pipeline/weight_dtype.hpp)
    std::size_t int8_group = 0;  // int8: a scale per row (0) or per this many values
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
    check_dtype(o.dtype, o.int8_group);
    set_weight_request(req, o.dtype, o.int8_group);
    req.prepack = o.prepack;
    req.batch = std::max<std::size_t>({in.images.size(), in.encoder_rows, 1});
    req.prompt_tokens = std::max<std::size_t>(in.encoder_ids.size() / std::max<std::size_t>(in.encoder_rows, 1), 1);
    req.new_tokens = in.decoder_ids.size() / std::max<std::size_t>(in.decoder_rows, 1);
    models::require_memory(models::estimate_memory(config, req), o.max_memory, ckpt.path());
    run_result r;
    stopwatch sw;
    const weights::mapped_source src(ckpt, weights::rules_for(weights::detect_naming(ckpt.names()), models::kind_name(config.kind)));
    core::thread_pool pool(o.threads ? o.threads : 1);
    make_model(config, storage_of(o.dtype), [&]<class M>(std::type_identity<M>, const auto& c) {
        M model(c);
        load_weights(model, weights::cursor(src), o.dtype, o.int8_group, r.times, "load");
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
