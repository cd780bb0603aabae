// Linear layer (y = x W^T + b) and token embedding. The matrix is held in `Storage` (f32, bf16,
// f16) as (out, in); vectors (bias) are f32. Forward runs the GEMM with a fused epilogue. For
// inference a linear layer can swap its matrix for an int8 form (quantize_int8).
#pragma once

#include <cstddef>
#include <memory>
#include <vector>
#include <string>
#include <type_traits>

#include "pali3/core/threading.hpp"
#include "pali3/kernels/backward.hpp"
#include "pali3/kernels/gemm.hpp"
#include "pali3/kernels/int8.hpp"
#include "pali3/layers/module.hpp"

namespace pali3::layers {

struct linear_config {
    std::size_t in = 0;
    std::size_t out = 0;
    bool bias = true;
};

inline void check(const linear_config& c, std::string_view where) {
    if (c.in == 0 || c.out == 0)
        throw config_error(core::describe("linear layer with an empty side", where, "in > 0 and out > 0",
                                          "in=" + std::to_string(c.in) + ", out=" + std::to_string(c.out)));
}

template <weight_storage Storage = float>
class linear {
public:
    using storage = Storage;

    explicit linear(const linear_config& c) : cfg_(c) { check(c, "linear"); }
    template <weights::weight_source S>
    linear(const linear_config& c, const weights::cursor<S>& cur) : linear(c) {
        load(*this, cur);
    }

    template <class V>
    void visit(V& v) {
        v.tensor("weight", weight_, {cfg_.out, cfg_.in});
        if (cfg_.bias) v.tensor("bias", bias_, {cfg_.out});
    }

    const linear_config& config() const { return cfg_; }
    kernels::weight_ref<Storage> weight() const {
        auto w = kernels::weight_nk(weight_.data, cfg_.out, cfg_.in);
        if (packed_ && packed_source_ == static_cast<const void*>(weight_.data)) w.prepacked = packed_.get();
        return w;
    }

    // Keeps a copy of the matrix in the layout its GEMM streams, so forward passes skip packing
    // it (the weights are immutable after loading): f32 -> the f32 GEMM's panels (+4 bytes per
    // weight), bf16 with a bf16-product engine -> the VNNI panels (+2 bytes per weight), int8 with
    // one scale per row and an integer-product engine (AVX512-VNNI) -> its quad panels (+1 byte
    // per weight). Returns the bytes added (0 when not applicable: f16, bf16 without an engine,
    // int8 per group or without one). GEMV (m <= 4 rows) keeps reading the original.
    std::size_t prepack() {
        require_loaded();
        if (int8_active()) {
            auto p = kernels::int8_products::pack_weights(int8_->view);
            const std::size_t bytes = p ? p->bytes() : 0;
            packed_ = std::move(p);
            packed_source_ = int8_->view.q;
            return bytes;
        }
        const auto w = kernels::weight_nk(weight_.data, cfg_.out, cfg_.in);
        std::size_t bytes = 0;
        if constexpr (std::is_same_v<Storage, bf16>) {
            auto p = kernels::bf16_products::pack_weights(w);
            bytes = p ? p->bytes() : 0;
            packed_ = std::move(p);
        } else if constexpr (std::is_same_v<Storage, float>) {
            auto p = kernels::pack_panels(w);
            bytes = p ? p->bytes() : 0;
            packed_ = std::move(p);
        }
        packed_source_ = weight_.data;
        return bytes;
    }
    const float* bias() const { return cfg_.bias ? bias_.data : nullptr; }

    // Replaces the matrix by its int8 form, for inference (kernels/int8.hpp: symmetric, one f32
    // scale per output row, or per `group` values along the input, a multiple of 32). forward()
    // then runs gemm_int8: up to 4 rows read one byte per weight with integer products; more rows
    // run the f32 GEMM, dequantising W as it is packed. The f32/bf16 matrix is released (its memory freed
    // when nothing else holds it); backward() refuses the layer. Returns the bytes of the int8
    // form (values and scales). Loading weights again brings the f32/bf16 matrix back in use.
    std::size_t quantize_int8(std::size_t group = 0) {
        require_loaded();
        if (int8_active()) {
            if (int8_->group != group)
                throw value_error(core::describe("quantising an int8 layer again with another group", "linear::quantize_int8",
                                                 int8_->group, group));
            return int8_->bytes();
        }
        auto q = std::make_shared<int8_form>();
        q->n = cfg_.out;
        q->k = cfg_.in;
        q->group = group;
        q->values.resize(q->n * q->k);
        q->scales.resize(q->n * kernels::int8_groups(q->k, group));
        q->view = kernels::int8_matrix{q->values.data(), q->n, q->k, q->k, q->scales.data(), group};
        q->view.check("linear::quantize_int8");
        constexpr std::size_t rows = 64;  // converted to f32 a few rows at a time: no f32 copy of the matrix
        std::vector<float> wf(rows * q->k);
        const std::size_t groups = kernels::int8_groups(q->k, group);
        for (std::size_t j0 = 0; j0 < q->n; j0 += rows) {
            const std::size_t nb = std::min(rows, q->n - j0);
            for (std::size_t j = 0; j < nb; ++j) kernels::convert(weight_.data + (j0 + j) * q->k, wf.data() + j * q->k, q->k);
            kernels::quantize_int8(wf.data(), nb, q->k, q->k, group, q->values.data() + j0 * q->k, q->k,
                                   q->scales.data() + j0 * groups);
        }
        int8_ = std::move(q);
        release_prepacked();
        weight_ = {};
        return int8_->bytes();
    }
    // Loads the layer for int8 inference from `cur`: a weight stored as int8 (a checkpoint written
    // by `pali3 convert --dtype int8`: I8 values and their scales, weights/source.hpp) is taken as
    // it is, with its own group size, so its values are not quantised a second time; any other
    // weight is loaded and quantised with `group`. Returns the bytes of the int8 form.
    template <weights::weight_source S>
    std::size_t load_int8(const weights::cursor<S>& cur, std::size_t group = 0) {
        auto stored = cur.get_int8("weight", {cfg_.out, cfg_.in});
        if (!stored) {
            load(*this, cur);
            return quantize_int8(group);
        }
        if (cfg_.bias) bias_ = cur.template get<float>("bias", {cfg_.out});
        auto q = std::make_shared<int8_form>();
        q->n = cfg_.out;
        q->k = cfg_.in;
        q->group = stored->group;
        q->scales = std::move(stored->scales);
        q->owner = std::move(stored->owner);
        q->view = kernels::int8_matrix{stored->values, q->n, q->k, q->k, q->scales.data(), q->group};
        q->view.check(cur.full_name("weight"));
        int8_ = std::move(q);
        release_prepacked();
        weight_ = {};
        return int8_->bytes();
    }
    // The int8 form in use (null when the layer runs its f32/bf16 matrix).
    const kernels::int8_matrix* int8_weight() const { return int8_active() ? &int8_->view : nullptr; }

    // y (rows, out) = Act(x (rows, in) W^T + b) [+ y when accumulate]. Rows are ldx / ldy apart.
    template <kernels::activation Act = kernels::act::identity, core::executor E = core::sequential>
    void forward(const float* x, std::size_t ldx, std::size_t rows, float* y, std::size_t ldy, E&& exec = E{},
                 bool accumulate = false) const {
        require_loaded();
        kernels::epilogue<Act> ep{bias(), 1.f, accumulate};
        if (int8_active()) {
            kernels::int8_matrix w = int8_->view;
            if (packed_ && packed_source_ == static_cast<const void*>(w.q)) w.prepacked = packed_.get();
            return kernels::gemm_int8(rows, x, ldx, w, y, ldy, ep, exec);
        }
        kernels::gemm(rows, x, ldx, weight(), y, ldy, ep, exec);
    }

    // Backward of forward() without activation: given dy (rows, out), accumulates dW and db
    // into g, and writes dx (rows, in) = dy W (added to dx when accumulate; null: not needed).
    // bias_grad = false leaves the bias gradient untouched (attention's key bias: its gradient
    // is zero in exact arithmetic, see attention::backward).
    template <gradient_sink G, core::executor E = core::sequential>
    void backward(const float* x, std::size_t ldx, std::size_t rows, const float* dy, std::size_t lddy, float* dx,
                  std::size_t lddx, G& g, E&& exec = E{}, bool accumulate = false, bool bias_grad = true) const {
        require_loaded();
        if (int8_active())
            throw value_error(core::describe("training through an int8-quantised linear layer", "linear::backward",
                                             "f32 or bf16 weights (int8 is for inference)", "int8"));
        if (float* dw = g.grad(weight_))
            kernels::weight_grad(rows, dy, lddy, cfg_.out, x, ldx, cfg_.in, dw, cfg_.in, exec);
        if (cfg_.bias && bias_grad)
            if (float* db = g.grad(bias_)) kernels::bias_grad(rows, cfg_.out, dy, lddy, db);
        if (dx) kernels::input_grad(rows, dy, lddy, kernels::weight_nk(weight_.data, cfg_.out, cfg_.in), dx, lddx, accumulate, exec);
    }

    // Drops the prepacked copy (training updates the weights in place; a pack would go stale).
    void release_prepacked() {
        packed_.reset();
        packed_source_ = nullptr;
    }

    // xtensor convenience: (rows, in) -> (rows, out).
    template <core::executor E = core::sequential>
    tensor<2> operator()(const tensor<2>& x, E&& exec = E{}) const {
        if (x.shape()[1] != cfg_.in)
            throw shape_error(core::describe("linear input width", "linear", cfg_.in, x.shape()[1]));
        tensor<2> y = tensor<2>::from_shape({x.shape()[0], cfg_.out});
        forward(x.data(), cfg_.in, x.shape()[0], y.data(), cfg_.out, exec);
        return y;
    }

private:
    // int8 values and scales, and the kernel's view of them.
    struct int8_form {
        std::vector<std::int8_t> values;     // quantised here (empty when borrowed from a checkpoint)
        std::shared_ptr<const void> owner;   // keeps borrowed values alive (a mapped int8 checkpoint)
        std::vector<float> scales;
        std::size_t n = 0, k = 0, group = 0;
        kernels::int8_matrix view;
        std::size_t bytes() const { return n * k + scales.size() * sizeof(float); }
    };
    bool int8_active() const { return int8_ && !weight_.data; }

    void require_loaded() const {
        if ((!weight_.data && !int8_) || (cfg_.bias && !bias_.data))
            throw value_error(core::describe("linear layer used before loading", "linear", "loaded weights", "none"));
    }

    linear_config cfg_;
    param<Storage> weight_;
    param<float> bias_;
    std::shared_ptr<const void> packed_;  // kernels::packed_panels (f32), bf16_products::packed_weights (bf16) or int8_products::packed_weights
    const void* packed_source_ = nullptr;
    std::shared_ptr<const int8_form> int8_;  // set by quantize_int8, in use while weight_ is released
};

struct embedding_config {
    std::size_t vocab = 0;
    std::size_t width = 0;
};

// Token embedding: rows of a (vocab, width) table, optionally scaled (tied T5 v1.0 heads use
// d_model^-0.5 on the other side; PaLI's scaling choices live in the models).
template <weight_storage Storage = float>
class embedding {
public:
    explicit embedding(const embedding_config& c) : cfg_(c) {
        if (c.vocab == 0 || c.width == 0)
            throw config_error(core::describe("empty embedding", "embedding", "vocab > 0 and width > 0",
                                              std::to_string(c.vocab) + " x " + std::to_string(c.width)));
    }
    template <weights::weight_source S>
    embedding(const embedding_config& c, const weights::cursor<S>& cur) : embedding(c) {
        load(*this, cur);
    }

    template <class V>
    void visit(V& v) {
        v.tensor("weight", table_, {cfg_.vocab, cfg_.width});
    }

    const embedding_config& config() const { return cfg_; }
    const param<Storage>& table() const { return table_; }

    // out (n, width) = table[ids]; an id outside the vocabulary is an error naming it.
    void forward(const std::int32_t* ids, std::size_t n, float* out, float scale = 1.f) const {
        if (!table_.data) throw value_error(core::describe("embedding used before loading", "embedding", "loaded weights", "none"));
        for (std::size_t i = 0; i < n; ++i) {
            if (ids[i] < 0 || static_cast<std::size_t>(ids[i]) >= cfg_.vocab)
                throw value_error(core::describe("token id out of range", "embedding, position " + std::to_string(i),
                                                 "0.." + std::to_string(cfg_.vocab - 1), ids[i]));
            const Storage* row = table_.data + static_cast<std::size_t>(ids[i]) * cfg_.width;
            kernels::convert(row, out + i * cfg_.width, cfg_.width);
            if (scale != 1.f) kernels::scale(out + i * cfg_.width, scale, cfg_.width);
        }
    }

    // Backward of forward(ids, n, out, scale): table rows of the ids accumulate scale * dy.
    template <gradient_sink G>
    void backward(const std::int32_t* ids, std::size_t n, const float* dy, G& g, float scale = 1.f) const {
        float* dt = g.grad(table_);
        if (!dt) return;
        for (std::size_t i = 0; i < n; ++i) {
            if (ids[i] < 0 || static_cast<std::size_t>(ids[i]) >= cfg_.vocab)
                throw value_error(core::describe("token id out of range", "embedding backward, position " + std::to_string(i),
                                                 "0.." + std::to_string(cfg_.vocab - 1), ids[i]));
            kernels::axpy(scale, dy + i * cfg_.width, dt + static_cast<std::size_t>(ids[i]) * cfg_.width, cfg_.width);
        }
    }

private:
    embedding_config cfg_;
    param<Storage> table_;
};

}  // namespace pali3::layers
