// d(loss)/d(parameter) of a checkpoint on a batch, under the checkpoint's own tensor names and
// layouts (HF names in, HF names out; big_vision's (in, out) kernels come back (in, out)): what
// `pali3 grad` writes, to check our gradients against PyTorch's autograd on the same file.
//   T5 / UL2:      mean token cross-entropy over targets != -100 (encoder mask: right padding)
//   PaLI-3:        the same, with the image tokens before the prompt (the encoder ids)
//   SigLIP pair:   the sigmoid loss of the batch (pair i positive)
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include "pali3/core/threading.hpp"
#include "pali3/models/dispatch.hpp"
#include "pali3/pipeline/config_source.hpp"
#include "pali3/train/parameters.hpp"
#include "pali3/weights/checkpoint.hpp"
#include "pali3/weights/npy.hpp"

namespace pali3::pipeline {

// A batch read from .npy files: integers as (batch, length), pixels as (batch, 3, S, S) f32.
template <class T>
struct array2d {
    std::vector<T> values;
    shape_t shape;
    std::size_t rows() const { return shape.empty() ? 0 : shape[0]; }
    std::size_t cols() const { return shape.size() < 2 ? 0 : shape_size(shape) / shape[0]; }
};

// Integer ids (<i4 or <i8, any rank >= 1; rank 1 = one row) from an .npy file, each in
// [lo, hi] (errors name the file, the position and the value).
inline array2d<std::int32_t> read_ids_npy(const std::string& path, std::int64_t lo, std::int64_t hi) {
    const auto bytes = weights::map_file(path);
    const auto arr = weights::parse_npy(bytes.data, bytes.size, path);
    if (arr.descr != "<i4" && arr.descr != "<i8")
        throw format_error(core::describe("token ids must be integers", path, "<i4 or <i8", arr.descr));
    array2d<std::int32_t> out;
    out.shape = arr.shape;
    if (out.shape.empty()) out.shape = {1};
    if (out.shape.size() == 1) out.shape.insert(out.shape.begin(), 1);
    const std::size_t n = shape_size(arr.shape);
    out.values.resize(n);
    for (std::size_t i = 0; i < n; ++i) {
        std::int64_t v = 0;
        if (arr.descr == "<i4") {
            std::int32_t x;
            std::memcpy(&x, arr.data + 4 * i, 4);
            v = x;
        } else {
            std::memcpy(&v, arr.data + 8 * i, 8);
        }
        if (v < lo || v > hi)
            throw value_error(core::describe("id out of range", path + ", element " + std::to_string(i),
                                             std::to_string(lo) + ".." + std::to_string(hi), v));
        out.values[i] = static_cast<std::int32_t>(v);
    }
    return out;
}

inline array2d<float> read_pixels_npy(const std::string& path, std::size_t size) {
    const auto bytes = weights::map_file(path);
    const auto arr = weights::parse_npy(bytes.data, bytes.size, path);
    if (arr.descr != "<f4" || arr.shape.size() != 4 || arr.shape[1] != 3 || arr.shape[2] != size || arr.shape[3] != size)
        throw shape_error(core::describe("pixels", path, "<f4 (batch, 3, " + std::to_string(size) + ", " + std::to_string(size) + ")",
                                         arr.descr + " " + shape_string(arr.shape)));
    array2d<float> out;
    out.shape = arr.shape;
    out.values.resize(shape_size(arr.shape));
    std::memcpy(out.values.data(), arr.data, out.values.size() * 4);
    return out;
}

// What a gradient is taken on; which fields are needed depends on the model kind.
struct grad_inputs {
    array2d<std::int32_t> encoder_ids;   // T5: (batch, enc_len); PaLI-3: the prompt ids
    array2d<std::int32_t> encoder_mask;  // optional, HF attention_mask 0/1, any pattern (PaLI-3: over the prompt ids)
    array2d<std::int32_t> decoder_ids;   // (batch, dec_len), start token first
    array2d<std::int32_t> targets;       // (batch, dec_len), -100 ignored
    array2d<float> pixels;               // PaLI-3, SigLIP: (batch, 3, S, S) in [-1, 1]
    array2d<std::int32_t> text_ids;      // SigLIP: (batch, max_len)
    float label_smoothing = 0.f;
};

struct grad_result {
    double loss = 0;
    std::size_t counted = 0;         // targets counted (T5, PaLI-3) or pairs (SigLIP)
    weights::memory_source grads;    // under the checkpoint's names and shapes, f32
    timings times;
};

namespace detail {
inline void require_rows(const array2d<std::int32_t>& a, std::size_t batch, const char* flag) {
    if (a.rows() != batch)
        throw shape_error(core::describe("batch size", flag, batch, shape_string(a.shape)));
}

// HF's attention_mask (batch, len) of 0/1, any pattern, as key-mask bytes (empty when no mask
// was given: every position is real). Each row keeps at least one position.
inline std::vector<std::uint8_t> keep_from_mask(const array2d<std::int32_t>& mask, std::size_t batch, std::size_t len,
                                                std::string_view flag = "--encoder-mask") {
    if (mask.values.empty()) return {};
    if (mask.rows() != batch || mask.cols() != len)
        throw shape_error(core::describe("encoder mask shape", flag,
                                         "(" + std::to_string(batch) + ", " + std::to_string(len) + ")", shape_string(mask.shape)));
    std::vector<std::uint8_t> keep(batch * len);
    for (std::size_t b = 0; b < batch; ++b) {
        bool any = false;
        for (std::size_t j = 0; j < len; ++j) {
            const std::int32_t v = mask.values[b * len + j];
            if (v != 0 && v != 1)
                throw value_error(core::describe("encoder mask", std::string(flag) + " row " + std::to_string(b), "0 or 1",
                                                 "value " + std::to_string(v) + " at position " + std::to_string(j)));
            keep[b * len + j] = static_cast<std::uint8_t>(v);
            any = any || v == 1;
        }
        if (!any) throw value_error(core::describe("encoder mask", std::string(flag) + " row " + std::to_string(b), "at least one 1", "none"));
    }
    return keep;
}

template <class Model, class Config>
std::pair<double, std::size_t> run_loss(const Model& model, const Config& cfg, const grad_inputs& in, train::parameters& ps,
                                        core::thread_pool& pool) {
    if constexpr (requires { typename Model::projector_type; } || models::encoder_decoder<Model>) {
        const models::t5_config* text = nullptr;
        if constexpr (requires { cfg.text.d_model; }) text = &cfg.text;
        else text = &cfg;
        const std::size_t batch = in.decoder_ids.rows(), dec = in.decoder_ids.cols();
        if (batch == 0) throw value_error(core::describe("no decoder ids", "--decoder-ids", "a (batch, length) .npy", "none"));
        require_rows(in.targets, batch, "--targets");
        if (in.targets.cols() != dec)
            throw shape_error(core::describe("targets shape", "--targets", shape_string(in.decoder_ids.shape), shape_string(in.targets.shape)));
        require_rows(in.encoder_ids, batch, "--encoder-ids");
        for (const auto id : in.decoder_ids.values)
            if (static_cast<std::size_t>(id) >= text->vocab)
                throw value_error(core::describe("decoder id out of range", "--decoder-ids", "< vocab " + std::to_string(text->vocab), id));
        for (const auto id : in.targets.values)
            if (id != -100 && (id < 0 || static_cast<std::size_t>(id) >= text->vocab))
                throw value_error(core::describe("target id out of range", "--targets", "-100 or < vocab " + std::to_string(text->vocab), id));
        const std::size_t enc = in.encoder_ids.cols();
        for (const auto id : in.encoder_ids.values)
            if (static_cast<std::size_t>(id) >= text->vocab)
                throw value_error(core::describe("encoder id out of range", "--encoder-ids", "< vocab " + std::to_string(text->vocab), id));
        if constexpr (requires { typename Model::projector_type; }) {
            const auto keep = keep_from_mask(in.encoder_mask, batch, enc);
            typename Model::text_type::loss_options opt;
            if (in.pixels.rows() != batch)
                throw shape_error(core::describe("pixels batch", "--pixels", batch, shape_string(in.pixels.shape)));
            std::vector<std::vector<std::int32_t>> prompts(batch);
            std::vector<std::vector<std::uint8_t>> masks(keep.empty() ? 0 : batch);
            for (std::size_t b = 0; b < batch; ++b) {
                prompts[b].assign(in.encoder_ids.values.begin() + static_cast<std::ptrdiff_t>(b * enc),
                                  in.encoder_ids.values.begin() + static_cast<std::ptrdiff_t>((b + 1) * enc));
                if (!keep.empty())
                    masks[b].assign(keep.begin() + static_cast<std::ptrdiff_t>(b * enc), keep.begin() + static_cast<std::ptrdiff_t>((b + 1) * enc));
            }
            opt.label_smoothing = in.label_smoothing;
            return model.loss_and_grad(in.pixels.values.data(), prompts, masks, in.decoder_ids.values.data(), dec,
                                       in.targets.values.data(), &ps, pool, opt);
        } else {
            typename Model::loss_options opt;
            opt.label_smoothing = in.label_smoothing;
            const auto keep = keep_from_mask(in.encoder_mask, batch, enc);
            return model.loss_and_grad(in.encoder_ids.values.data(), batch, enc, layers::key_mask({}, keep), in.decoder_ids.values.data(), dec,
                                       in.targets.values.data(), &ps, pool, opt);
        }
    } else if constexpr (requires { model.vision(); model.text(); typename Model::loss_options; }) {  // SigLIP pair
        const std::size_t n = in.pixels.rows();
        if (n == 0) throw value_error(core::describe("no pixels", "--pixels", "a (batch, 3, S, S) .npy", "none"));
        require_rows(in.text_ids, n, "--text-ids");
        if (in.text_ids.cols() != cfg.text.max_len)
            throw shape_error(core::describe("text ids length", "--text-ids", cfg.text.max_len, shape_string(in.text_ids.shape)));
        for (const auto id : in.text_ids.values)
            if (static_cast<std::size_t>(id) >= cfg.text.vocab)
                throw value_error(core::describe("text id out of range", "--text-ids", "< vocab " + std::to_string(cfg.text.vocab), id));
        return {model.loss_and_grad(in.pixels.values.data(), in.text_ids.values.data(), n, &ps, pool), n};
    } else {
        throw config_error(core::describe("no loss for this model kind", "pali3 grad", "t5, pali3 or siglip", "a single tower"));
    }
}
}  // namespace detail

// Loads `config`'s model from `ckpt` (any naming, f32 master weights), computes the loss of `in`
// and every parameter's gradient, and returns them under the checkpoint's names.
inline grad_result compute_gradients(const models::any_config& config, const weights::checkpoint& ckpt,
                                     const grad_inputs& in, std::size_t threads) {
    grad_result r;
    stopwatch sw;
    const weights::mapped_source src(ckpt, weights::rules_for(weights::detect_naming(ckpt.names()), models::kind_name(config.kind)));
    core::thread_pool pool(threads ? threads : 1);
    models::with_model<float>(config, [&]<class M>(std::type_identity<M>, const auto& c) {
        M model(c, weights::cursor(src));
        train::parameters ps(model);
        r.times.add("load", sw.ms());
        sw.reset();
        std::tie(r.loss, r.counted) = detail::run_loss(model, c, in, ps, pool);
        r.times.add("forward + backward", sw.ms());
        weights::memory_source ours;
        ps.save_grads(ours);
        r.grads = weights::export_like_source(src, ours);
    });
    return r;
}

}  // namespace pali3::pipeline
