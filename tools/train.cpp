// pali3 train: trains a PaLI-3, a SigLIP pair or a T5 from a JSONL file of examples (docs/training.md):
// AdamW with warm-up and a cosine or rsqrt decay, gradient accumulation and clipping, checkpoints,
// exact resume, a progress line per step and the loss curve in DIR/loss.csv (scripts/plot_loss.py).
#include <pali3/pipeline/training.hpp>

#include "common.hpp"

namespace pali3::cli {

void add_train(CLI::App& app) {
    struct args {
        pipeline::train_options o;
        std::string schedule = "cosine";
        std::size_t warmup = 0;
        float min_lr_ratio = 0.f;
        bool quiet = false;
        std::string loc_init = "random";
        std::vector<std::string> lr_scale;
    };
    auto a = std::make_shared<args>();
    a->o.adamw.lr = 1e-3f;
    a->o.adamw.weight_decay = 1e-4f;
    a->o.adamw.clip_norm = 1.f;
    auto* c = app.add_subcommand("train", "train a PaLI-3, SigLIP or T5 model on a JSONL file of examples");
    c->add_option("--data", a->o.data, "examples, one JSON object per line (docs/training.md)")->required();
    c->add_option("--tokenizer", a->o.tokenizer, "sentencepiece model")->required();
    c->add_option("--out", a->o.out, "output directory: model.safetensors, state.safetensors, loss.csv")->capture_default_str();
    c->add_option("--init", a->o.init, "start from this checkpoint (any naming) instead of random weights");
    add_nonfinite_flag(c);
    c->add_option("--init-vision", a->o.init_vision,
                  "start the image tower from this SigLIP / ViT / PaLI-3 checkpoint (any naming); the rest random");
    add_config_flags(c, a->o.config);
    c->add_option("--steps", a->o.steps, "optimiser steps in all")->check(CLI::Range(std::size_t{1}, std::size_t{1} << 32))->capture_default_str();
    c->add_option("--batch", a->o.batch, "examples per micro-batch")->check(CLI::Range(std::size_t{1}, std::size_t{4096}))->capture_default_str();
    c->add_option("--accumulate", a->o.accumulate, "micro-batches per step")->check(CLI::Range(std::size_t{1}, std::size_t{1024}))->capture_default_str();
    c->add_option("--lr", a->o.adamw.lr, "peak learning rate")->check(CLI::Range(0.f, 10.f))->capture_default_str();
    c->add_option("--schedule", a->schedule, "learning-rate decay after the warm-up")->check(CLI::IsMember({"constant", "cosine", "rsqrt"}))->capture_default_str();
    c->add_option("--warmup", a->warmup, "linear warm-up steps")->check(CLI::Range(std::size_t{0}, std::size_t{1} << 32))->capture_default_str();
    c->add_option("--min-lr-ratio", a->min_lr_ratio, "cosine floor as a fraction of --lr")->check(CLI::Range(0.f, 1.f))->capture_default_str();
    c->add_option("--weight-decay", a->o.adamw.weight_decay, "AdamW decoupled weight decay (not on norms and biases)")->check(CLI::Range(0.f, 1.f))->capture_default_str();
    c->add_option("--beta1", a->o.adamw.beta1, "AdamW beta1")->check(CLI::Range(0.f, 0.9999f))->capture_default_str();
    c->add_option("--beta2", a->o.adamw.beta2, "AdamW beta2")->check(CLI::Range(0.f, 0.99999f))->capture_default_str();
    c->add_option("--clip", a->o.adamw.clip_norm, "global gradient-norm clip (0: off)")->check(CLI::Range(0.f, 1e6f))->capture_default_str();
    c->add_option("--label-smoothing", a->o.label_smoothing, "PaLI-3, T5: label smoothing")->check(CLI::Range(0.f, 0.999f))->capture_default_str();
    c->add_option("--max-prompt", a->o.max_prompt, "prompt / input tokens kept")->check(CLI::Range(std::size_t{1}, max_prompt_limit))->capture_default_str();
    c->add_option("--max-target", a->o.max_target, "target tokens kept (with EOS)")->check(CLI::Range(std::size_t{2}, max_new_tokens_limit))->capture_default_str();
    c->add_option("--save-every", a->o.save_every, "write the checkpoint and state every N steps (0: at the end)")->capture_default_str();
    c->add_option("--stop-at", a->o.stop_at, "stop at this step (the schedule still spans --steps; continue with --resume)");
    c->add_option("--seed", a->o.seed, "random initial weights and example order")->capture_default_str();
    c->add_option("--threads", a->o.threads, "worker threads")->check(CLI::Range(std::size_t{1}, max_threads))->capture_default_str();
    c->add_flag("--resume", a->o.resume, "continue from DIR/state.safetensors when it exists");
    add_memory_flag(c, a->o.max_memory);
    c->add_flag("--recompute", a->o.recompute, "keep only each block's input; recompute its activations in backward");
    c->add_flag("--antialias", a->o.antialias, "resize images with an antialiasing filter");
    c->add_option("--image-cache-mb", a->o.image_cache_mb, "preprocessed images kept in memory (0: decode on every use)")
        ->check(CLI::Range(std::size_t{0}, std::size_t{1} << 20))->capture_default_str();
    c->add_option("--freeze", a->o.freeze, "keep tensors under this name prefix fixed (repeatable; img. = the image tower, PaLI-3's stage 1)");
    c->add_option("--lr-scale", a->lr_scale,
                  "PREFIX=F: tensors under this name prefix learn at F x the learning rate (repeatable; img.=0.1: a slower image tower)");
    c->add_option("--loc-init", a->loc_init, "rows of PaLI's <loc> tokens: random, or ordinal (sinusoids of the bin: nearby bins start close)")
        ->check(CLI::IsMember({"random", "ordinal"}))->capture_default_str();
    c->add_flag("--quiet", a->quiet, "no progress line per step");
    c->callback([a] {
        auto& o = a->o;
        o.schedule.kind = train::parse_schedule(a->schedule);
        o.schedule.warmup = a->warmup;
        o.schedule.total = o.steps;
        o.schedule.min_ratio = a->min_lr_ratio;
        const bool quiet = a->quiet;
        o.ordinal_loc = a->loc_init == "ordinal";
        for (const auto& arg : a->lr_scale) {
            const auto eq = arg.rfind('=');
            float f = -1.f;
            std::size_t used = 0;
            if (eq != std::string::npos && eq > 0 && eq + 1 < arg.size()) {
                try {
                    f = std::stof(arg.substr(eq + 1), &used);
                } catch (const std::exception&) {
                    used = 0;
                }
            }
            if (eq == std::string::npos || eq == 0 || used == 0 || eq + 1 + used != arg.size())
                throw value_error(core::describe("--lr-scale", arg, "PREFIX=FACTOR (img.=0.1)", arg));
            o.lr_scale.emplace_back(arg.substr(0, eq), f);
        }
        o.note = [](const std::string& s) { std::printf("%s\n", s.c_str()); };
        const std::size_t last = pipeline::run_training(o, [quiet](const pipeline::train_progress& p) {
            if (quiet && p.step != p.steps) return;
            std::printf("step %zu/%zu  loss %.4f  lr %.3g  |g| %.3g  %.0f ms  %.1f examples/s\n", p.step, p.steps, p.loss, p.lr,
                        p.grad_norm, p.ms, p.examples_per_s);
            std::fflush(stdout);
        });
        std::printf("trained to step %zu: %s/model.safetensors, state.safetensors, loss.csv\n", last, o.out.c_str());
    });
}

}  // namespace pali3::cli
