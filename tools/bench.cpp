// pali3 bench: per-stage timings of a PaLI-3 (a preset with seeded random weights, or a checkpoint).
#include <optional>

#include <pali3/pipeline/bench.hpp>

#include "common.hpp"

namespace pali3::cli {

void add_bench(CLI::App& app) {
    struct args {
        pipeline::bench_options o;
        pipeline::config_request config;
        std::string weights;
        bool json = false;
    };
    auto a = std::make_shared<args>();
    auto* c = app.add_subcommand("bench", "per-stage timings of a PaLI-3: vision, encoder, cross K/V, decode steps");
    c->add_option("--weights", a->weights, "a PaLI-3 checkpoint (default: seeded random weights for --preset)");
    add_nonfinite_flag(c);
    add_config_flags(c, a->config);
    add_memory_flag(c, a->o.max_memory);
    add_dtype_flags(c, a->o.dtype, a->o.int8_group);
    c->add_option("--threads", a->o.threads, "worker threads")->check(CLI::Range(std::size_t{1}, max_threads))->capture_default_str();
    c->add_option("--steps", a->o.steps, "decode steps")->check(CLI::Range(std::size_t{1}, max_new_tokens_limit))->capture_default_str();
    c->add_option("--prompt-tokens", a->o.prompt_tokens, "prompt length")->check(CLI::Range(std::size_t{1}, max_prompt_limit))->capture_default_str();
    c->add_flag("--prepack", a->o.prepack, "keep weights in the GEMM's layout too");
    c->add_flag("--json", a->json, "print one JSON object (timings, step times, bytes per step)");
    c->callback([a] {
        std::optional<weights::checkpoint> ckpt;
        if (!a->weights.empty()) ckpt = weights::checkpoint::open(a->weights);
        const auto found = pipeline::find_config(a->config, ckpt ? &*ckpt : nullptr);
        if (!found)
            throw config_error(core::describe("bench needs a PaLI-3 config", "pali3 bench", "--preset pali3_5b (etc.) or a pali3 checkpoint", "none"));
        if (!a->json)
            std::printf("bench %s, %s weights%s, %zu thread(s)\n", found->source.c_str(), a->o.dtype.c_str(), ckpt ? "" : " (random)",
                        a->o.threads);
        const auto r = pipeline::bench_pali3(found->config, ckpt ? &*ckpt : nullptr, a->o);
        if (a->json) {
            json::value v = json::value::make_object();
            v.set("command", json::string("bench"));
            v.set("steps", json::number(std::uint64_t{r.steps}));
            v.set("step_mean_ms", json::number(r.step_mean_ms));
            v.set("step_best_ms", json::number(r.step_best_ms));
            v.set("bytes_per_step", json::number(r.bytes_per_step));
            v.set("timings_ms", timings_json(r.times));
            return print_json(v);
        }
        std::printf("decode: %.1f tokens/s; each step reads %s of weights (%.1f GB/s at the best step)\n", 1e3 / r.step_mean_ms,
                    pipeline::human_bytes(r.bytes_per_step).c_str(), r.bytes_per_step / r.step_best_ms / 1e6);
        print_timings(r.times);
    });
}

}  // namespace pali3::cli
