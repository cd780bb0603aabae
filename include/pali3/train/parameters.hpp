// The trainable parameters of a model: f32 master weights the model reads from, one gradient
// buffer per tensor, and the names the checkpoint gave them (docs/training.md).
//
//   models::vision_tower<float> tower(cfg, cursor);   // loaded as usual (mapped, read-only)
//   train::parameters params(tower);                  // adopts: every tensor copied to owned f32
//   tower.forward_train(...); tower.backward(..., params, ...);   // gradients accumulate
//   optimizer.step();  params.zero_grad();
//
// Adoption walks the module's visit() list once, copies each tensor into memory it owns and
// points the module at it, so updates are seen by the next forward. Two parameters that were
// loaded from the same memory (a tied embedding) stay one tensor with one summed gradient.
// Backward passes find a parameter's gradient by its data address (the layers call grad(p)).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "pali3/layers/module.hpp"
#include "pali3/weights/memory_source.hpp"

namespace pali3::train {

struct parameter {
    std::string name;
    shape_t shape;
    float* value = nullptr;     // the master weights (the model reads them)
    std::vector<float> grad;    // d(loss)/d(value), accumulated by backward passes
    bool trainable = true;      // frozen: backward skips its products, the optimiser leaves it
    bool decay = true;          // AdamW weight decay applies (default: tensors of rank >= 2)
    float lr_scale = 1.f;       // this tensor's learning rate (and decay) = the schedule's x lr_scale
    std::size_t uses = 1;       // > 1: a tied tensor (several modules read it)

    std::size_t size() const { return shape_size(shape); }
};

class parameters {
public:
    // Adopts every tensor of `model` (names prefixed with `prefix`). Throws for weights that
    // are not f32 (train from an f32 model: convert or load with f32 storage), or unloaded.
    template <class M>
    explicit parameters(M& model, std::string prefix = {}) {
        adopt(model, std::move(prefix));
    }
    parameters() = default;

    // Adopts one more module (e.g. a stack's shared position bias held apart, or two towers).
    template <class M>
    void adopt(M& model, std::string prefix = {}) {
        adopter a{this, std::move(prefix)};
        model.visit(a);
        if constexpr (requires { model.release_prepacked(); }) model.release_prepacked();
    }
    parameters(const parameters&) = delete;
    parameters& operator=(const parameters&) = delete;
    parameters(parameters&&) = default;
    parameters& operator=(parameters&&) = default;

    // The gradient buffer of p (null when frozen). Every f32 tensor a backward pass touches
    // must have been adopted: a foreign one is an error naming its shape.
    template <weight_storage T>
    float* grad(const weights::param<T>& p) {
        const auto it = index_.find(static_cast<const void*>(p.data));
        if (it == index_.end())
            throw value_error(core::describe("gradient of a tensor these parameters did not adopt", "train::parameters",
                                             "a tensor of the adopted model", "shape " + shape_string(p.shape)));
        parameter& e = list_[it->second];
        return e.trainable ? e.grad.data() : nullptr;
    }

    std::vector<parameter>& list() { return list_; }
    const std::vector<parameter>& list() const { return list_; }
    std::size_t size() const { return list_.size(); }

    parameter& at(const std::string& name) {
        for (auto& p : list_)
            if (p.name == name) return p;
        throw value_error(core::describe("no such parameter", "train::parameters", "an adopted tensor name", name));
    }

    // Number of trainable scalars.
    std::size_t count() const {
        std::size_t n = 0;
        for (const auto& p : list_)
            if (p.trainable) n += p.size();
        return n;
    }

    void zero_grad() {
        for (auto& p : list_) std::fill(p.grad.begin(), p.grad.end(), 0.f);
    }

    // sqrt(sum of squared gradients) over trainable tensors.
    double grad_norm() const {
        double s = 0;
        for (const auto& p : list_)
            if (p.trainable)
                for (const float g : p.grad) s += static_cast<double>(g) * g;
        return std::sqrt(s);
    }

    void scale_grad(float f) {
        for (auto& p : list_)
            for (float& g : p.grad) g *= f;
    }

    // Freezes (trainable = false) every tensor whose name satisfies pred; returns how many.
    std::size_t freeze(const std::function<bool(const std::string&)>& pred) {
        std::size_t n = 0;
        for (auto& p : list_)
            if (p.trainable && pred(p.name)) {
                p.trainable = false;
                std::vector<float>().swap(p.grad);
                ++n;
            }
        return n;
    }

    // Scales the learning rate of every trainable tensor whose name satisfies pred (a LiT-style
    // slower tower: "img." x 0.1); returns how many. factor >= 0 and finite (0: frozen in effect,
    // but its gradient is still computed: prefer freeze).
    std::size_t scale_lr(const std::function<bool(const std::string&)>& pred, float factor) {
        if (!(factor >= 0.f && std::isfinite(factor)))
            throw value_error(core::describe("learning-rate scale", "train::parameters", "a finite factor >= 0", factor));
        std::size_t n = 0;
        for (auto& p : list_)
            if (p.trainable && pred(p.name)) {
                p.lr_scale = factor;
                ++n;
            }
        return n;
    }

    // Copies values (or gradients) into `out` under their names, as f32.
    void save_values(weights::memory_source& out, const std::string& prefix = {}) const {
        for (const auto& p : list_) out.add(prefix + p.name, std::vector<float>(p.value, p.value + p.size()), p.shape);
    }
    void save_grads(weights::memory_source& out, const std::string& prefix = {}) const {
        for (const auto& p : list_)
            if (p.trainable) out.add(prefix + p.name, p.grad, p.shape);
    }

private:
    struct adopter {
        parameters* self;
        std::string prefix;

        template <weight_storage T>
        void tensor(std::string_view name, weights::param<T>& p, const shape_t& shape) {
            const std::string full = weights::join_name(prefix, name);
            if constexpr (!std::is_same_v<T, float>) {
                throw config_error(core::describe("training needs f32 weights", full, "f32 storage",
                                                  std::string(storage_traits<T>::name)));
            } else {
                if (!p.data)
                    throw value_error(core::describe("training an unloaded parameter", full, "loaded f32 weights",
                                                     "none (not loaded, or swapped for int8 by quantize_int8)"));
                const void* old = p.data;
                if (const auto it = self->seen_.find(old); it != self->seen_.end()) {
                    parameter& e = self->list_[it->second];
                    if (e.shape != shape)
                        throw shape_error(core::describe("tied tensors of different shapes", full, shape_string(e.shape),
                                                         shape_string(shape)));
                    p.data = e.value;
                    p.owner = self->owned_[it->second];
                    ++e.uses;
                    return;
                }
                auto buf = std::make_shared<std::vector<float>>(p.data, p.data + shape_size(shape));
                parameter e;
                e.name = full;
                e.shape = shape;
                e.value = buf->data();
                e.grad.assign(buf->size(), 0.f);
                e.decay = shape.size() >= 2;
                const std::size_t idx = self->list_.size();
                self->seen_[old] = idx;
                self->index_[e.value] = idx;
                self->owned_.push_back(buf);
                self->list_.push_back(std::move(e));
                p.data = buf->data();
                p.owner = buf;
            }
        }
        template <class M>
        void child(std::string_view name, M& m) {
            adopter sub{self, weights::join_name(prefix, name)};
            m.visit(sub);
        }
    };

    std::vector<parameter> list_;
    std::vector<std::shared_ptr<std::vector<float>>> owned_;
    std::unordered_map<const void*, std::size_t> index_;  // adopted value address -> entry
    std::unordered_map<const void*, std::size_t> seen_;   // original address -> entry (ties)
};

static_assert(layers::gradient_sink<parameters>);

}  // namespace pali3::train
