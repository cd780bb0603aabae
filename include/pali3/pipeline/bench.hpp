// Per-stage timings of a PaLI-3 model (a preset with seeded random weights, or a checkpoint):
// vision tower + projector, text encoder, cross-attention K/V, and decode steps with the bytes
// of weights each step reads, so a run states its distance from the memory limit.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "pali3/core/threading.hpp"
#include "pali3/models/dispatch.hpp"
#include "pali3/pipeline/config_source.hpp"
#include "pali3/pipeline/weight_dtype.hpp"
#include "pali3/weights/checkpoint.hpp"
#include "pali3/weights/random_source.hpp"

namespace pali3::pipeline {

struct bench_options {
    std::string dtype = "bf16";  // f32, bf16 or int8 (pipeline/weight_dtype.hpp)
    std::size_t int8_group = 0;  // int8: a scale per row (0) or per this many values
    std::size_t threads = 2, steps = 8, prompt_tokens = 8;
    bool prepack = false;
    std::size_t max_memory = 0;  // bytes the estimate may reach (0: the machine's memory)
};

struct bench_result {
    timings times;
    std::size_t steps = 0;
    double step_mean_ms = 0, step_best_ms = 0;
    double bytes_per_step = 0;  // decoder weights + lm_head read by one step
};

// `Models` as for pali3_pipeline.
template <class Models = models::runtime_models>
bench_result bench_pali3(const models::any_config& config, const weights::checkpoint* ckpt, const bench_options& o,
                         const Models& make_model = {}) {
    if (config.kind != models::model_kind::pali3)
        throw config_error(core::describe("bench needs a PaLI-3 config", "pali3 bench", "--preset pali3_5b (etc.) or a pali3 checkpoint",
                                          models::kind_name(config.kind)));
    if (o.steps == 0 || o.threads == 0) throw value_error(core::describe("steps and threads", "pali3 bench", ">= 1", 0));
    models::run_request req;
    check_dtype(o.dtype, o.int8_group);
    set_weight_request(req, o.dtype, o.int8_group);
    req.prepack = o.prepack;
    req.prompt_tokens = o.prompt_tokens;
    req.new_tokens = o.steps;
    models::require_memory(models::estimate_memory(config, req), o.max_memory, "pali3 bench");
    bench_result r;
    make_model(config, storage_of(o.dtype), [&]<class M>(std::type_identity<M>, const auto& cfg) {
        if constexpr (requires { typename M::projector_type; }) {
            using S = typename M::text_type::storage_type;
            M model(cfg);
            if (ckpt) {
                const weights::mapped_source src(*ckpt, weights::rules_for(weights::detect_naming(ckpt->names()), "pali3"));
                load_weights(model, weights::cursor(src), o.dtype, o.int8_group, r.times, "load weights");
            } else {
                const weights::random_source src(5, weights::random_source::distribution::uniform, weights::dtype_of<S>());
                load_weights(model, weights::cursor(src), o.dtype, o.int8_group, r.times, "random init");
            }
            stopwatch sw;
            if (o.prepack) {
                sw.reset();
                const std::size_t extra = layers::prepack(model);
                r.times.add("prepack weights (+" + human_bytes(static_cast<double>(extra)) + ")", sw.ms());
            }
            core::thread_pool pool(o.threads);
            std::vector<std::int32_t> prompt(o.prompt_tokens);
            for (std::size_t i = 0; i < prompt.size(); ++i) prompt[i] = static_cast<std::int32_t>((i * 7919 + 3) % cfg.text.vocab);
            const std::vector<std::vector<std::int32_t>> prompts{prompt};
            const std::size_t n = cfg.vision.tokens(), d = cfg.text.d_model;
            core::workspace ws(model.workspace_floats(1, prompt.size(), o.steps));
            std::vector<float> image(3 * cfg.vision.image * cfg.vision.image), memory((n + prompt.size()) * d), logits(cfg.text.vocab);
            for (std::size_t i = 0; i < image.size(); ++i) image[i] = static_cast<float>(i % 251) / 125.f - 1.f;
            double t_vision = 0;
            sw.reset();
            const layers::trace marks([&](const std::string& name, std::span<const float>, const shape_t&) {
                if (name == "projector_out") t_vision = sw.ms();
            });
            const auto lens = model.encode(image.data(), prompts, memory.data(), ws, pool, marks);
            const double t_enc = sw.ms();
            r.times.add("vision tower + projector (" + std::to_string(n) + " tok)", t_vision);
            r.times.add("text encoder (" + std::to_string(lens[0]) + " tok)", t_enc - t_vision);
            sw.reset();
            auto state = model.start(memory.data(), 1, lens, o.steps, pool);
            r.times.add("cross-attention K/V", sw.ms());
            std::int32_t id = 0;
            double best = 1e30, total = 0;
            for (std::size_t s = 0; s < o.steps; ++s) {
                stopwatch step;
                model.step(&id, state, logits.data(), ws, pool);
                best = std::min(best, step.ms());
                total += step.ms();
                id = static_cast<std::int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
            }
            const auto& t = cfg.text;
            r.steps = o.steps;
            r.step_mean_ms = total / static_cast<double>(o.steps);
            r.step_best_ms = best;
            // int8: a byte per weight and an f32 scale per row (negligible) or per group
            const double per_weight = o.dtype == "int8" ? 1.0 + (o.int8_group ? 4.0 / static_cast<double>(o.int8_group) : 0.0)
                                                        : static_cast<double>(sizeof(S));
            r.bytes_per_step = (static_cast<double>(t.decoder_layers) * (6.0 * d * d + 3.0 * d * t.d_ff) + double(t.vocab) * d) * per_weight;
            r.times.add("decode step (mean of " + std::to_string(o.steps) + ")", r.step_mean_ms);
            r.times.add("decode step (best)", best);
        }
    });
    return r;
}

}  // namespace pali3::pipeline
