// AdamW with decoupled weight decay (Loshchilov & Hutter; PyTorch's torch.optim.AdamW update),
// learning-rate schedules (linear warm-up, then constant, cosine or rsqrt), global-norm gradient
// clipping and gradient accumulation; and the whole training state (weights, both moments, step,
// the caller's RNG and data position) saved to one safetensors file and resumed exactly.
//
//   train::adamw opt(params, {.lr = 1e-3f, .weight_decay = 1e-4f}, {.kind = schedule::cosine, .warmup = 100, .total = 5000});
//   for (...) { params.zero_grad(); for (micro-batches) model.backward(..., params); opt.step(micro_batches); }
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "pali3/core/threading.hpp"
#include "pali3/train/parameters.hpp"
#include "pali3/weights/safetensors.hpp"

namespace pali3::train {

// lr(step) = base * warm-up factor * decay, step counted from 0.
struct schedule {
    enum kind_t { constant, cosine, rsqrt };
    kind_t kind = constant;
    std::size_t warmup = 0;   // linear from base/warmup to base over the first `warmup` steps
    std::size_t total = 0;    // cosine: steps to decay over (to min_ratio * base)
    float min_ratio = 0.f;    // cosine floor, as a fraction of base

    double factor(std::size_t step) const {
        const double s = static_cast<double>(step) + 1.0;
        double f = warmup > 0 ? std::min(1.0, s / static_cast<double>(warmup)) : 1.0;
        switch (kind) {
            case constant: break;
            case cosine: {
                if (total == 0)
                    throw config_error(core::describe("cosine schedule without a length", "train::schedule", "total > 0", 0));
                const double span = static_cast<double>(total > warmup ? total - warmup : 1);
                const double p = std::clamp((static_cast<double>(step) - static_cast<double>(warmup)) / span, 0.0, 1.0);
                f *= min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + std::cos(3.14159265358979323846 * p));
                break;
            }
            case rsqrt: {  // big_vision's rsqrt: 1/sqrt(max(step, warmup) / warmup)
                const double w = static_cast<double>(std::max<std::size_t>(warmup, 1));
                f *= 1.0 / std::sqrt(std::max(s, w) / w);
                break;
            }
        }
        return f;
    }
};

inline const char* to_string(schedule::kind_t k) {
    return k == schedule::cosine ? "cosine" : k == schedule::rsqrt ? "rsqrt" : "constant";
}

inline schedule::kind_t parse_schedule(const std::string& s) {
    if (s == "constant") return schedule::constant;
    if (s == "cosine") return schedule::cosine;
    if (s == "rsqrt") return schedule::rsqrt;
    throw config_error(core::describe("unknown learning-rate schedule", "train::schedule", "constant, cosine or rsqrt", s));
}

struct adamw_config {
    float lr = 1e-3f;
    float beta1 = 0.9f;
    float beta2 = 0.999f;
    float eps = 1e-8f;
    float weight_decay = 0.f;  // decoupled: w -= lr * wd * w (tensors with decay = true)
    float clip_norm = 0.f;     // > 0: gradients scaled so their global norm is at most this
};

inline void check(const adamw_config& c) {
    auto bad = [](const char* what, const char* rule, float v) {
        throw config_error(core::describe(what, "train::adamw_config", rule, v));
    };
    if (!(c.lr >= 0.f) || !std::isfinite(c.lr)) bad("learning rate", ">= 0 and finite", c.lr);
    if (!(c.beta1 >= 0.f && c.beta1 < 1.f)) bad("beta1", "0 <= beta1 < 1", c.beta1);
    if (!(c.beta2 >= 0.f && c.beta2 < 1.f)) bad("beta2", "0 <= beta2 < 1", c.beta2);
    if (!(c.eps > 0.f)) bad("eps", "> 0", c.eps);
    if (!(c.weight_decay >= 0.f) || !std::isfinite(c.weight_decay)) bad("weight decay", ">= 0 and finite", c.weight_decay);
    if (!(c.clip_norm >= 0.f) || !std::isfinite(c.clip_norm)) bad("clip norm", ">= 0 and finite", c.clip_norm);
}

struct step_stats {
    double lr = 0;
    double grad_norm = 0;  // before clipping, after dividing by the micro-batch count
};

class adamw {
public:
    adamw(parameters& params, const adamw_config& c = {}, const schedule& s = {}) : params_(&params), cfg_(c), sched_(s) {
        check(c);
        for (const auto& p : params.list()) {
            m_.emplace_back(p.size(), 0.f);
            v_.emplace_back(p.size(), 0.f);
        }
    }

    const adamw_config& config() const { return cfg_; }
    const schedule& lr_schedule() const { return sched_; }
    std::size_t steps() const { return step_; }
    double lr_at(std::size_t step) const { return cfg_.lr * sched_.factor(step); }

    // One update from the gradients accumulated over `micro_batches` backward passes (each a
    // mean over its own batch: they are divided by micro_batches first). A non-finite gradient
    // norm is an error naming the first tensor with a non-finite gradient (nothing is updated).
    // The element-wise update runs on exec's threads, each on an equal share of all trainable
    // elements (the result does not depend on the thread count).
    template <core::executor E = core::sequential>
    step_stats step(std::size_t micro_batches = 1, E&& exec = E{}) {
        if (micro_batches == 0)
            throw value_error(core::describe("optimizer step over no micro-batches", "train::adamw", ">= 1", 0));
        if (micro_batches > 1) params_->scale_grad(1.f / static_cast<float>(micro_batches));
        step_stats st;
        st.grad_norm = params_->grad_norm();
        if (!std::isfinite(st.grad_norm)) {
            for (const auto& p : params_->list())
                for (const float g : p.grad)
                    if (!std::isfinite(g))
                        throw value_error(core::describe("non-finite gradient", "train::adamw step " + std::to_string(step_),
                                                         "finite values", "a NaN or Inf in " + p.name));
        }
        const float clip = cfg_.clip_norm > 0.f && st.grad_norm > cfg_.clip_norm
                               ? static_cast<float>(cfg_.clip_norm / st.grad_norm)
                               : 1.f;
        st.lr = lr_at(step_);
        const std::size_t t = step_ + 1;
        const double c1 = 1.0 - std::pow(static_cast<double>(cfg_.beta1), static_cast<double>(t));
        const double c2 = 1.0 - std::pow(static_cast<double>(cfg_.beta2), static_cast<double>(t));
        const float lr = static_cast<float>(st.lr), b1 = cfg_.beta1, b2 = cfg_.beta2;
        const float step_size = static_cast<float>(st.lr / c1), inv_sqrt_c2 = static_cast<float>(1.0 / std::sqrt(c2));
        auto& list = params_->list();
        std::size_t total = 0;
        for (const auto& p : list)
            if (p.trainable) total += p.size();
        // Element-wise, so any cut of the trainable elements gives the same bits.
        core::for_ranges(exec, total, min_elements_per_thread, [&](std::size_t share_begin, std::size_t share_end) {
            const core::range share{share_begin, share_end};
            std::size_t offset = 0;  // tensor i's first element among all trainable elements
            for (std::size_t i = 0; i < list.size() && offset < share.end; ++i) {
                parameter& p = list[i];
                if (!p.trainable) continue;
                const std::size_t begin = offset;
                offset += p.size();
                if (offset <= share.begin) continue;
                const std::size_t first = std::max(begin, share.begin) - begin, last = std::min(offset, share.end) - begin;
                float* w = p.value;
                float* m = m_[i].data();
                float* v = v_[i].data();
                const float* grad = p.grad.data();
                const float decay = p.decay ? 1.f - lr * p.lr_scale * cfg_.weight_decay : 1.f;
                const float size = step_size * p.lr_scale;
                for (std::size_t j = first; j < last; ++j) {
                    const float g = grad[j] * clip;
                    m[j] = b1 * m[j] + (1.f - b1) * g;
                    v[j] = b2 * v[j] + (1.f - b2) * g * g;
                    w[j] = w[j] * decay - size * m[j] / (std::sqrt(v[j]) * inv_sqrt_c2 + cfg_.eps);
                }
            }
        });
        ++step_;
        return st;
    }

    // ---- state ------------------------------------------------------------------------------
    // Everything a resumed run needs: weights ("param/<name>"), moments ("adam_m/<name>",
    // "adam_v/<name>") and string metadata (step, the optimiser's settings, and the caller's
    // extras: RNG state, data position...).
    void save(const std::string& path, std::map<std::string, std::string> extra = {}) const {
        weights::memory_source out;
        params_->save_values(out, "param/");
        const auto& list = params_->list();
        for (std::size_t i = 0; i < list.size(); ++i) {
            out.add("adam_m/" + list[i].name, m_[i], list[i].shape);
            out.add("adam_v/" + list[i].name, v_[i], list[i].shape);
        }
        extra["pali3.train.step"] = std::to_string(step_);
        extra["pali3.train.format"] = "1";
        weights::write_safetensors(path, out, extra);
    }

    // Restores weights, moments and step from save()'s file; returns its metadata. Every adopted
    // tensor must be in the file with its shape (a state from another model is an error naming
    // the tensor).
    std::map<std::string, std::string> load(const std::string& path) {
        const auto src = weights::safetensors_source::open(path);
        const auto& meta = src.metadata();
        const auto it = meta.find("pali3.train.step");
        if (it == meta.end())
            throw format_error(core::describe("not a training state", path, "metadata pali3.train.step", "absent"));
        auto& list = params_->list();
        for (std::size_t i = 0; i < list.size(); ++i) {
            auto& p = list[i];
            copy_in(src, "param/" + p.name, p.shape, p.value);
            copy_in(src, "adam_m/" + p.name, p.shape, m_[i].data());
            copy_in(src, "adam_v/" + p.name, p.shape, v_[i].data());
        }
        try {
            step_ = std::stoull(it->second);
        } catch (const std::exception&) {
            throw format_error(core::describe("bad step in training state", path, "an integer", it->second));
        }
        return meta;
    }

private:
    static constexpr std::size_t min_elements_per_thread = std::size_t{1} << 16;  // below: fork/join costs more

    static void copy_in(const weights::safetensors_source& src, const std::string& name, const shape_t& shape, float* dst) {
        const weights::param<float> t = weights::to_param<float>(src.get(name, shape));
        std::copy_n(t.data, shape_size(shape), dst);
    }

    parameters* params_;
    adamw_config cfg_;
    schedule sched_;
    std::vector<std::vector<float>> m_, v_;
    std::size_t step_ = 0;
};

}  // namespace pali3::train
