// Feed-forward blocks.
//   mlp<Act>:       fc2(Act(fc1 x + b1)) + b2           ViT/SigLIP ("fc1", "fc2"), T5 v1.0 (no bias)
//   gated_mlp<Act>: wo(Act(wi_0 x) * wi_1 x)            T5 v1.1 / UL2 ("wi_0", "wi_1", "wo")
// The activation is fused into the first GEMM's epilogue; the second GEMM can accumulate into
// its output, which is how the residual connection is fused (x += mlp(LN(x))).
// Act is a policy (kernels::act::gelu_tanh, ...: fixed in the type; a config naming another one
// is refused) or kernels::act::by_config<Fused> (the config's `activation` picks it at run time;
// Fused stays fused in the epilogue, another runs as one elementwise pass: kernels/activation.hpp).
// Training: forward_train() keeps what backward() needs in a `saved` (the first GEMM's output
// before the activation; both halves for the gated form) and backward() turns dy into dx and
// parameter gradients.
#pragma once

#include <cstddef>
#include <type_traits>
#include <vector>

#include "pali3/core/threading.hpp"
#include "pali3/core/workspace.hpp"
#include "pali3/layers/linear.hpp"

namespace pali3::layers {

struct mlp_config {
    std::size_t width = 0;
    std::size_t hidden = 0;
    bool bias = true;
    kernels::activation_id activation = kernels::activation_id::of_type;  // of_type: the layer type's
};

namespace detail {
// f(std::type_identity<Policy>) with the policy a layer of choice Act runs for the resolved `id`.
template <kernels::activation_choice Act, class F>
decltype(auto) with_layer_activation(kernels::activation_id id, F&& f) {
    if constexpr (kernels::is_by_config_v<Act>) return kernels::with_activation(id, f);
    else return f(std::type_identity<Act>{});
}
template <class Act>
concept trainable_choice = kernels::is_by_config_v<Act> || kernels::differentiable_activation<Act>;
// Element-wise passes over the hidden activations are split across threads in parts of at least
// this many floats, on multiples of 16 (every SIMD width: the same bits on any thread count).
inline constexpr std::size_t elementwise_grain = 16 * 1024;
}  // namespace detail

template <kernels::activation_choice Act = kernels::act::gelu_tanh, weight_storage Storage = float>
class mlp {
public:
    using activation = Act;
    using storage_type = Storage;

    explicit mlp(const mlp_config& c)
        : cfg_(c), act_(kernels::resolve_activation<Act>(c.activation, "mlp")), fc1_({c.width, c.hidden, c.bias}),
          fc2_({c.hidden, c.width, c.bias}) {
        cfg_.activation = act_;
    }
    template <weights::weight_source S>
    mlp(const mlp_config& c, const weights::cursor<S>& cur) : mlp(c) {
        load(*this, cur);
    }

    template <class V>
    void visit(V& v) {
        v.child("fc1", fc1_);
        v.child("fc2", fc2_);
    }

    const mlp_config& config() const { return cfg_; }
    static std::size_t workspace_floats(const mlp_config& c, std::size_t rows) {
        return core::workspace::padded(rows * c.hidden);
    }

    // y (rows, width) = mlp(x) [+ y when accumulate]. y must not alias x unless accumulate is
    // false and the caller no longer needs x.
    template <core::executor E = core::sequential>
    void forward(const float* x, std::size_t rows, float* y, core::workspace& ws, E&& exec = E{},
                 bool accumulate = false, const trace& tr = {}) const {
        core::workspace::scope scope(ws);
        float* h = ws.alloc(rows * cfg_.hidden).data();  // (rows, hidden)
        if constexpr (kernels::is_by_config_v<Act>) {
            using fused = typename Act::fused;
            if (act_ == kernels::id_of<fused>()) {
                fc1_.template forward<fused>(x, cfg_.width, rows, h, cfg_.hidden, exec);
            } else {
                fc1_.forward(x, cfg_.width, rows, h, cfg_.hidden, exec);
                kernels::with_activation(act_, [&]<class A>(std::type_identity<A>) {
                    kernels::apply_activation<A>(h, rows * cfg_.hidden);
                });
            }
        } else {
            fc1_.template forward<Act>(x, cfg_.width, rows, h, cfg_.hidden, exec);
        }
        tr("hidden", h, {rows, cfg_.hidden});
        fc2_.forward(h, cfg_.hidden, rows, y, cfg_.width, exec, accumulate);
    }

    struct saved {
        core::buffer pre;  // fc1 output before the activation (rows, hidden)
    };

    // forward() that keeps the activations backward() needs.
    template <core::executor E = core::sequential>
        requires detail::trainable_choice<Act>
    void forward_train(const float* x, std::size_t rows, float* y, saved& s, E&& exec = E{}, bool accumulate = false) const {
        s.pre.resize(rows * cfg_.hidden);
        fc1_.forward(x, cfg_.width, rows, s.pre.data(), cfg_.hidden, exec);
        core::buffer h(s.pre.size());
        detail::with_layer_activation<Act>(act_, [&]<class A>(std::type_identity<A>) {
            core::for_ranges(exec, h.size(), detail::elementwise_grain, [&](std::size_t b, std::size_t e) {
                kernels::apply_activation<A>(s.pre.data() + b, h.data() + b, e - b);
            });
        });
        fc2_.forward(h.data(), cfg_.hidden, rows, y, cfg_.width, exec, accumulate);
    }

    // dx (rows, width) [+]= d mlp(x) / dx . dy; parameter gradients into g. dx may be null.
    template <gradient_sink G, core::executor E = core::sequential>
        requires detail::trainable_choice<Act>
    void backward(const float* x, std::size_t rows, const saved& s, const float* dy, float* dx, G& g, E&& exec = E{},
                  bool accumulate = false) const {
        core::buffer h(s.pre.size()), dh(rows * cfg_.hidden);
        detail::with_layer_activation<Act>(act_, [&]<class A>(std::type_identity<A>) {
            core::for_ranges(exec, h.size(), detail::elementwise_grain, [&](std::size_t b, std::size_t e) {
                kernels::apply_activation<A>(s.pre.data() + b, h.data() + b, e - b);
            });
        });
        fc2_.backward(h.data(), cfg_.hidden, rows, dy, cfg_.width, dh.data(), cfg_.hidden, g, exec);
        detail::with_layer_activation<Act>(act_, [&]<class A>(std::type_identity<A>) {
            core::for_ranges(exec, dh.size(), detail::elementwise_grain, [&](std::size_t b, std::size_t e) {
                kernels::activation_backward<A>(s.pre.data() + b, dh.data() + b, dh.data() + b, e - b);
            });
        });
        fc1_.backward(x, cfg_.width, rows, dh.data(), cfg_.hidden, dx, cfg_.width, g, exec, accumulate);
    }

    void release_prepacked() {
        fc1_.release_prepacked();
        fc2_.release_prepacked();
    }

private:
    mlp_config cfg_;
    kernels::activation_id act_;  // resolved: of_type becomes the type's (or Fused's) id
    linear<Storage> fc1_, fc2_;
};

template <kernels::activation_choice Act = kernels::act::gelu_tanh, weight_storage Storage = float>
class gated_mlp {
public:
    using activation = Act;
    using storage_type = Storage;

    explicit gated_mlp(const mlp_config& c)
        : cfg_(c), act_(kernels::resolve_activation<Act>(c.activation, "gated_mlp")), wi0_({c.width, c.hidden, false}),
          wi1_({c.width, c.hidden, false}), wo_({c.hidden, c.width, false}) {
        cfg_.activation = act_;
        if (c.bias)
            throw config_error(core::describe("gated MLP with biases", "gated_mlp", "bias = false (T5 v1.1 has none)", "bias = true"));
    }
    template <weights::weight_source S>
    gated_mlp(const mlp_config& c, const weights::cursor<S>& cur) : gated_mlp(c) {
        load(*this, cur);
    }

    template <class V>
    void visit(V& v) {
        v.child("wi_0", wi0_);
        v.child("wi_1", wi1_);
        v.child("wo", wo_);
    }

    const mlp_config& config() const { return cfg_; }
    static std::size_t workspace_floats(const mlp_config& c, std::size_t rows) {
        return 2 * core::workspace::padded(rows * c.hidden);
    }

    template <core::executor E = core::sequential>
    void forward(const float* x, std::size_t rows, float* y, core::workspace& ws, E&& exec = E{},
                 bool accumulate = false, const trace& tr = {}) const {
        core::workspace::scope scope(ws);
        float* g = ws.alloc(rows * cfg_.hidden).data();  // (rows, hidden)
        float* u = ws.alloc(rows * cfg_.hidden).data();  // (rows, hidden)
        wi0_.forward(x, cfg_.width, rows, g, cfg_.hidden, exec);
        wi1_.forward(x, cfg_.width, rows, u, cfg_.hidden, exec);
        detail::with_layer_activation<Act>(act_, [&]<class A>(std::type_identity<A>) {
            kernels::gated_activation<A>(g, u, g, rows * cfg_.hidden);
        });
        tr("hidden", g, {rows, cfg_.hidden});
        wo_.forward(g, cfg_.hidden, rows, y, cfg_.width, exec, accumulate);
    }

    struct saved {
        core::buffer gate, up;  // wi_0 x and wi_1 x (rows, hidden) each
    };

    template <core::executor E = core::sequential>
        requires detail::trainable_choice<Act>
    void forward_train(const float* x, std::size_t rows, float* y, saved& s, E&& exec = E{}, bool accumulate = false) const {
        s.gate.resize(rows * cfg_.hidden);
        s.up.resize(rows * cfg_.hidden);
        wi0_.forward(x, cfg_.width, rows, s.gate.data(), cfg_.hidden, exec);
        wi1_.forward(x, cfg_.width, rows, s.up.data(), cfg_.hidden, exec);
        core::buffer h(rows * cfg_.hidden);
        detail::with_layer_activation<Act>(act_, [&]<class A>(std::type_identity<A>) {
            core::for_ranges(exec, h.size(), detail::elementwise_grain, [&](std::size_t b, std::size_t e) {
                kernels::gated_activation<A>(s.gate.data() + b, s.up.data() + b, h.data() + b, e - b);
            });
        });
        wo_.forward(h.data(), cfg_.hidden, rows, y, cfg_.width, exec, accumulate);
    }

    template <gradient_sink G, core::executor E = core::sequential>
        requires detail::trainable_choice<Act>
    void backward(const float* x, std::size_t rows, const saved& s, const float* dy, float* dx, G& g, E&& exec = E{},
                  bool accumulate = false) const {
        const std::size_t n = rows * cfg_.hidden;
        core::buffer h(n), dh(n), dgate(n), dup(n);
        detail::with_layer_activation<Act>(act_, [&]<class A>(std::type_identity<A>) {
            core::for_ranges(exec, n, detail::elementwise_grain, [&](std::size_t b, std::size_t e) {
                kernels::gated_activation<A>(s.gate.data() + b, s.up.data() + b, h.data() + b, e - b);
            });
        });
        wo_.backward(h.data(), cfg_.hidden, rows, dy, cfg_.width, dh.data(), cfg_.hidden, g, exec);
        detail::with_layer_activation<Act>(act_, [&]<class A>(std::type_identity<A>) {
            core::for_ranges(exec, n, detail::elementwise_grain, [&](std::size_t b, std::size_t e) {
                kernels::gated_activation_backward<A>(s.gate.data() + b, s.up.data() + b, dh.data() + b, dgate.data() + b,
                                                      dup.data() + b, e - b);
            });
        });
        wi0_.backward(x, cfg_.width, rows, dgate.data(), cfg_.hidden, dx, cfg_.width, g, exec, accumulate);
        wi1_.backward(x, cfg_.width, rows, dup.data(), cfg_.hidden, dx, cfg_.width, g, exec, dx != nullptr);
    }

    void release_prepacked() {
        wi0_.release_prepacked();
        wi1_.release_prepacked();
        wo_.release_prepacked();
    }

private:
    mlp_config cfg_;
    kernels::activation_id act_;
    linear<Storage> wi0_, wi1_, wo_;
};

}  // namespace pali3::layers
