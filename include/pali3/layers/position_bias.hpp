// T5 relative position bias: a learned table (num_buckets, heads) - HF's
// `relative_attention_bias.weight` - that lives in block 0 of a stack and is shared by every
// layer of that stack. The bucket of a relative distance d = key - query follows Mesh
// TensorFlow / HF `_relative_position_bucket`: half the buckets (bidirectional: per sign) are
// exact for |d| < max_exact, the rest log-spaced up to max_distance, clamped to the last.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "pali3/kernels/attention.hpp"
#include "pali3/layers/module.hpp"

namespace pali3::layers {

struct position_bias_config {
    std::size_t heads = 0;
    std::size_t num_buckets = 32;
    std::size_t max_distance = 128;
    bool bidirectional = true;  // encoder: true; decoder self-attention: false
};

// Bucket index of relative distance d = key_position - query_position.
inline std::size_t relative_position_bucket(std::ptrdiff_t d, bool bidirectional, std::size_t num_buckets,
                                            std::size_t max_distance) {
    std::size_t bucket = 0;
    std::size_t n;
    if (bidirectional) {
        num_buckets /= 2;
        if (d > 0) bucket += num_buckets;
        n = static_cast<std::size_t>(d < 0 ? -d : d);
    } else {
        n = static_cast<std::size_t>(d < 0 ? -d : 0);  // keys after the query share bucket 0
    }
    const std::size_t max_exact = num_buckets / 2;
    if (n < max_exact) return bucket + n;
    // In f32 like the reference implementations, truncated toward zero.
    const float large = static_cast<float>(max_exact) +
                        std::log(static_cast<float>(n) / static_cast<float>(max_exact)) /
                            static_cast<float>(std::log(static_cast<double>(max_distance) / static_cast<double>(max_exact))) *
                            static_cast<float>(num_buckets - max_exact);
    const std::size_t big = std::min<std::size_t>(static_cast<std::size_t>(large), num_buckets - 1);
    return bucket + big;
}

class relative_position_bias {
public:
    explicit relative_position_bias(const position_bias_config& c) : cfg_(c) {
        if (c.heads == 0 || c.num_buckets < 4 || c.max_distance <= c.num_buckets / 4)
            throw config_error(core::describe("bad relative position bias config", "relative_position_bias",
                                              "heads > 0, num_buckets >= 4, max_distance > num_buckets / 4",
                                              "heads=" + std::to_string(c.heads) + ", num_buckets=" +
                                                  std::to_string(c.num_buckets) + ", max_distance=" +
                                                  std::to_string(c.max_distance)));
    }
    template <weights::weight_source S>
    relative_position_bias(const position_bias_config& c, const weights::cursor<S>& cur) : relative_position_bias(c) {
        load(*this, cur);
    }

    template <class V>
    void visit(V& v) {
        v.tensor("weight", table_, {cfg_.num_buckets, cfg_.heads});
    }

    const position_bias_config& config() const { return cfg_; }

    // Bias of head h for every distance a (tq queries from q_offset) x (tk keys) call can see:
    // out[d + zero] for d in [-(q_offset + tq - 1), tk - 1]; returns the kernel's view.
    kernels::distance_bias by_distance(std::size_t h, std::size_t q_offset, std::size_t tq, std::size_t tk,
                                       std::vector<float>& out) const {
        if (!table_.data) throw value_error(core::describe("position bias used before loading", "relative_position_bias", "loaded weights", "none"));
        const std::ptrdiff_t lo = -static_cast<std::ptrdiff_t>(q_offset + tq - 1);
        const std::ptrdiff_t hi = static_cast<std::ptrdiff_t>(tk) - 1;
        out.resize(static_cast<std::size_t>(std::max<std::ptrdiff_t>(hi - lo + 1, 1)));
        for (std::ptrdiff_t d = lo; d <= hi; ++d)
            out[static_cast<std::size_t>(d - lo)] =
                table_.data[relative_position_bucket(d, cfg_.bidirectional, cfg_.num_buckets, cfg_.max_distance) * cfg_.heads + h];
        return {out.data(), -lo};
    }

    // Backward of by_distance(h, q_offset, tq, tk): d_by_distance (indexed like its output)
    // summed into the table rows of the distances' buckets, column h.
    template <gradient_sink G>
    void backward(std::size_t h, std::size_t q_offset, std::size_t tq, std::size_t tk, const float* d_by_distance,
                  G& g) const {
        float* dt = g.grad(table_);
        if (!dt) return;
        const std::ptrdiff_t lo = -static_cast<std::ptrdiff_t>(q_offset + tq - 1);
        const std::ptrdiff_t hi = static_cast<std::ptrdiff_t>(tk) - 1;
        for (std::ptrdiff_t d = lo; d <= hi; ++d)
            dt[relative_position_bucket(d, cfg_.bidirectional, cfg_.num_buckets, cfg_.max_distance) * cfg_.heads + h] +=
                d_by_distance[d - lo];
    }

private:
    position_bias_config cfg_;
    param<float> table_;
};

}  // namespace pali3::layers
