// What every layer shares: the parameter visitor protocol and the named-activation trace.
//
// A module lists its tensors once, in `template <class V> void visit(V& v)`:
//     v.tensor("weight", weight_, {out, in});     // a param<T> member and its shape
//     v.child("fc1", fc1_);                       // a sub-module
// and every whole-model operation is a visitor over that list: loading from a weight source,
// enumerating (name, shape, storage), counting parameters, saving. One list, so the names that
// are loaded, counted and saved cannot drift apart.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "pali3/core/tensor.hpp"
#include "pali3/kernels/int8_matrix.hpp"
#include "pali3/weights/memory_source.hpp"
#include "pali3/weights/source.hpp"

namespace pali3::layers {

using weights::param;

struct param_info {
    std::string name;
    shape_t shape;
    std::string_view storage;
};

// Loads every tensor from a cursor (names relative to the cursor's prefix).
template <weights::weight_source S>
struct loader {
    weights::cursor<S> cur;

    template <weight_storage T>
    void tensor(std::string_view name, param<T>& p, const shape_t& shape) {
        p = cur.template get<T>(name, shape);
    }
    template <class M>
    void child(std::string_view name, M& m) {
        loader<S> sub{cur.pp(name)};
        m.visit(sub);
    }
};

// Lists (full name, shape, storage) without touching data.
struct lister {
    std::string prefix;
    std::vector<param_info>* out;

    template <weight_storage T>
    void tensor(std::string_view name, param<T>&, const shape_t& shape) {
        out->push_back({weights::join_name(prefix, name), shape, storage_traits<T>::name});
    }
    template <class M>
    void child(std::string_view name, M& m) {
        lister sub{weights::join_name(prefix, name), out};
        m.visit(sub);
    }
};

// Copies every tensor into an in-memory source under its full name (as stored, any dtype; an
// int8 linear layer as its int8 values and scales).
struct saver {
    std::string prefix;
    weights::memory_source* out;

    template <weight_storage T>
    void tensor(std::string_view name, param<T>& p, const shape_t& shape) {
        if (!p.data)
            throw value_error(core::describe("saving an unloaded parameter", weights::join_name(prefix, name),
                                             "loaded weights", "none"));
        out->add(weights::join_name(prefix, name), std::vector<T>(p.data, p.data + p.size()), shape);
    }
    template <class M>
    void child(std::string_view name, M& m) {
        const std::string full = weights::join_name(prefix, name);
        if constexpr (requires { m.int8_weight(); }) {
            if (const kernels::int8_matrix* q = m.int8_weight()) return save_int8(full, *q, m.bias());
        }
        saver sub{full, out};
        m.visit(sub);
    }
    // An int8 linear layer as stored in int8 checkpoints (weights/source.hpp's int8_weight): I8
    // `weight` (n, k), F32 `weight_scale` (n, groups), and the f32 bias.
    void save_int8(const std::string& full, const kernels::int8_matrix& q, const float* bias) {
        auto values = std::make_shared<std::vector<std::int8_t>>(q.n * q.k);
        for (std::size_t j = 0; j < q.n; ++j) std::copy_n(q.q + j * q.ld, q.k, values->data() + j * q.k);
        weights::tensor_data t;
        t.type = weights::dtype::i8;
        t.shape = {q.n, q.k};
        t.data = values->data();
        t.owner = std::move(values);
        out->add_data(weights::join_name(full, "weight"), std::move(t));
        out->add(weights::join_name(full, "weight") + std::string(weights::int8_scale_suffix),
                 std::vector<float>(q.scales, q.scales + q.n * q.groups()), {q.n, q.groups()});
        if (bias) out->add(weights::join_name(full, "bias"), std::vector<float>(bias, bias + q.n), {q.n});
    }
};

template <class M, weights::weight_source S>
void load(M& module, const weights::cursor<S>& cur) {
    loader<S> l{cur};
    module.visit(l);
}

template <class M>
std::vector<param_info> parameters(M& module, std::string prefix = {}) {
    std::vector<param_info> out;
    lister l{std::move(prefix), &out};
    module.visit(l);
    return out;
}

template <class M>
std::size_t parameter_count(M& module) {
    std::size_t n = 0;
    for (const auto& p : parameters(module)) n += shape_size(p.shape);
    return n;
}

template <class M>
void save(M& module, weights::memory_source& out, std::string prefix = {}) {
    saver s{std::move(prefix), &out};
    module.visit(s);
}

// Prepares every layer that can cache its weights in a faster layout (f32 linears, bf16 linears
// with a bf16-product engine: see linear::prepack). Opt-in because it keeps a second copy of
// those weights; returns the bytes added.
struct prepacker {
    std::size_t bytes = 0;

    template <weight_storage T>
    void tensor(std::string_view, param<T>&, const shape_t&) {}
    template <class M>
    void child(std::string_view, M& m) {
        if constexpr (requires { m.prepack(); }) bytes += m.prepack();
        else m.visit(*this);
    }
};

template <class M>
std::size_t prepack(M& module) {
    prepacker p;
    module.visit(p);
    return p.bytes;
}

// True when `full` is one of the names in `keep` or under one ("img" keeps "img.x", not "imgs").
inline bool kept_by(const std::string& full, const std::vector<std::string>& keep) {
    for (const auto& k : keep)
        if (full == k || (full.size() > k.size() && full.compare(0, k.size(), k) == 0 && full[k.size()] == '.')) return true;
    return false;
}

// Swaps the matrix of every linear layer for its int8 form (linear::quantize_int8, one scale per
// output row or per `group` values), except the layers under a name prefix in `keep` (full
// names as in the checkpoint, e.g. "text.lm_head"). Embedding tables, the patch embedding, norms,
// biases and position tables keep their storage. For inference: the quantised layers refuse
// backward. Returns the layers quantised and the bytes of their int8 form.
struct int8_quantizer {
    std::size_t group = 0;
    std::vector<std::string> keep;
    std::string prefix;
    std::size_t layers = 0, bytes = 0;

    template <weight_storage T>
    void tensor(std::string_view, param<T>&, const shape_t&) {}
    template <class M>
    void child(std::string_view name, M& m) {
        const std::string full = weights::join_name(prefix, name);
        if (kept_by(full, keep)) return;
        if constexpr (requires { m.quantize_int8(group); }) {
            bytes += m.quantize_int8(group);
            ++layers;
        } else {
            int8_quantizer sub{group, keep, full};
            m.visit(sub);
            layers += sub.layers;
            bytes += sub.bytes;
        }
    }
};

struct int8_summary {
    std::size_t layers = 0, bytes = 0;
};

template <class M>
int8_summary quantize_int8(M& module, std::size_t group = 0, std::vector<std::string> keep = {}) {
    int8_quantizer q{group, std::move(keep), {}};
    module.visit(q);
    return {q.layers, q.bytes};
}

// load() and quantize_int8() in one pass: each linear layer is quantised as soon as its tensors are
// in, so the f32 / bf16 matrices never all coexist. The peak is the int8 model plus the layers
// that keep their storage plus one matrix (the 5B preset: ~6 GB, where loading in bf16 and then
// quantising peaks at its 10 GB of bf16).
template <weights::weight_source S>
struct int8_loader {
    weights::cursor<S> cur;
    std::size_t group = 0;
    const std::vector<std::string>* keep = nullptr;
    std::string prefix;
    std::size_t layers = 0, bytes = 0;

    template <weight_storage T>
    void tensor(std::string_view name, param<T>& p, const shape_t& shape) {
        p = cur.template get<T>(name, shape);
    }
    template <class M>
    void child(std::string_view name, M& m) {
        const std::string full = weights::join_name(prefix, name);
        if (kept_by(full, *keep)) {
            load(m, cur.pp(name));
        } else if constexpr (requires { m.load_int8(cur.pp(name), group); }) {
            bytes += m.load_int8(cur.pp(name), group);
            ++layers;
        } else {
            int8_loader sub{cur.pp(name), group, keep, full};
            m.visit(sub);
            layers += sub.layers;
            bytes += sub.bytes;
        }
    }
};

template <class M, weights::weight_source S>
int8_summary load_int8(M& module, const weights::cursor<S>& cur, std::size_t group = 0, const std::vector<std::string>& keep = {}) {
    kernels::check_int8_group(group, "layers::load_int8");  // named before anything is loaded
    int8_loader<S> l{cur, group, &keep, {}};
    module.visit(l);
    return {l.layers, l.bytes};
}

// Where backward passes put parameter gradients (train/parameters.hpp holds one): g.grad(p)
// is the f32 gradient buffer of parameter p (p.size() floats, accumulated into), or null when
// p is frozen (the layer then skips that product).
template <class G>
concept gradient_sink = requires(G& g, const param<float>& p) {
    { g.grad(p) } -> std::convertible_to<float*>;
};

// Named activations. A module reports intermediate outputs as `trace(name, data, shape)`; the
// names nest like parameter names ("vision.blocks.3.mlp_out"). A default trace has no callback
// and costs one branch per report.
class trace {
public:
    using callback = std::function<void(const std::string& name, std::span<const float> data, const shape_t& shape)>;

    trace() = default;
    explicit trace(callback fn, std::string prefix = {})
        : fn_(std::make_shared<callback>(std::move(fn))), prefix_(std::move(prefix)) {}

    bool enabled() const { return fn_ != nullptr; }
    trace child(std::string_view name) const {
        trace t;
        if (fn_) {
            t.fn_ = fn_;
            t.prefix_ = weights::join_name(prefix_, name);
        }
        return t;
    }
    trace child(std::size_t index) const { return fn_ ? child(std::to_string(index)) : trace{}; }

    void operator()(std::string_view name, const float* data, const shape_t& shape) const {
        if (fn_) (*fn_)(weights::join_name(prefix_, name), std::span<const float>(data, shape_size(shape)), shape);
    }

private:
    std::shared_ptr<callback> fn_;
    std::string prefix_;
};

}  // namespace pali3::layers
