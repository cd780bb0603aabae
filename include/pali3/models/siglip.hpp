// SigLIP text tower and contrastive scoring. The text tower is the vision tower's transformer
// over tokens: embedding + learned position embedding + pre-LN blocks + final LN, then the last
// token's output through a Dense head (big_vision / HF take the last position). Zero-shot
// scoring: normalised embeddings, logit = t <img, txt> + b, probability = sigmoid(logit).
//   names: embedding.weight, pos_embedding.weight (max_len, width), encoder.*, head.{weight,bias}
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "pali3/layers/block.hpp"
#include "pali3/layers/linear.hpp"
#include "pali3/models/vit.hpp"

namespace pali3::models {

struct text_tower_config {
    std::size_t vocab = 0, width = 0, depth = 0, mlp = 0, heads = 0;
    std::size_t max_len = 64;     // SigLIP text length
    std::size_t embed_dim = 0;    // head output (0: width)

    constexpr layers::block_config block() const { return {{width, 1e-6f}, {width, heads, 0, true}, {width, mlp, true}}; }
    constexpr std::size_t out_dim() const { return embed_dim ? embed_dim : width; }
};

template <weight_storage Storage = float>
class text_tower {
public:
    explicit text_tower(const text_tower_config& c)
        : cfg_(c), embed_({c.vocab, c.width}), encoder_({c.block(), c.depth, true, std::nullopt}),
          head_({c.width, c.out_dim(), true}) {
        if (c.max_len == 0) throw config_error(core::describe("text length", "text_tower", "> 0", 0));
    }
    template <weights::weight_source S>
    text_tower(const text_tower_config& c, const weights::cursor<S>& cur) : text_tower(c) {
        layers::load(*this, cur);
    }

    template <class V>
    void visit(V& v) {
        v.child("embedding", embed_);
        v.tensor("pos_embedding.weight", pos_, {cfg_.max_len, cfg_.width});
        v.child("encoder", encoder_);
        v.child("head", head_);
    }

    const text_tower_config& config() const { return cfg_; }
    std::size_t workspace_floats(std::size_t batch) const {
        return core::workspace::padded(batch * cfg_.max_len * cfg_.width) + encoder_.workspace_floats(batch, cfg_.max_len);
    }

    // out (batch, out_dim) from ids (batch, max_len), each sequence padded to max_len as SigLIP does.
    template <core::executor E = core::sequential>
    void forward(const std::int32_t* ids, std::size_t batch, float* out, core::workspace& ws, E&& exec = E{},
                 const layers::trace& tr = {}) const {
        const std::size_t t = cfg_.max_len, w = cfg_.width;
        core::workspace::scope scope(ws);
        float* x = ws.alloc(batch * t * w).data();  // (batch*t, width)
        embed_.forward(ids, batch * t, x);
        for (std::size_t b = 0; b < batch; ++b) kernels::add(x + b * t * w, pos_.data, x + b * t * w, t * w);
        encoder_.forward(x, batch, t, ws, exec, {}, {}, tr.child("encoder"));
        for (std::size_t b = 0; b < batch; ++b)  // the last position
            head_.forward(x + (b * t + t - 1) * w, w, 1, out + b * cfg_.out_dim(), cfg_.out_dim(), exec);
        tr("out", out, {batch, cfg_.out_dim()});
    }

private:
    text_tower_config cfg_;
    layers::embedding<Storage> embed_;
    weights::param<float> pos_;
    layers::stack<layers::vit_block<Storage>> encoder_;
    layers::linear<Storage> head_;
};

// Zero-shot scores: sigmoid(t <img_i/|img_i|, txt_j/|txt_j|> + b) for every pair; (n_img, n_txt).
// t = exp(log_t) as SigLIP stores it (t' init log 10, b init -10).
inline std::vector<float> contrastive_scores(const float* img, std::size_t n_img, const float* txt, std::size_t n_txt,
                                             std::size_t dim, float log_t, float bias, bool probabilities = true) {
    auto norms = [dim](const float* v, std::size_t n) {
        std::vector<double> out(n);
        for (std::size_t i = 0; i < n; ++i) {
            double s = 0;
            for (std::size_t d = 0; d < dim; ++d) s += double(v[i * dim + d]) * v[i * dim + d];
            out[i] = std::sqrt(s) + 1e-8;
        }
        return out;
    };
    const auto ni = norms(img, n_img), nt = norms(txt, n_txt);
    const double t = std::exp(double(log_t));
    std::vector<float> out(n_img * n_txt);
    for (std::size_t i = 0; i < n_img; ++i)
        for (std::size_t j = 0; j < n_txt; ++j) {
            double dot = 0;
            for (std::size_t d = 0; d < dim; ++d) dot += double(img[i * dim + d]) * txt[j * dim + d];
            const double logit = t * dot / (ni[i] * nt[j]) + bias;
            out[i * n_txt + j] = static_cast<float>(probabilities ? 1.0 / (1.0 + std::exp(-logit)) : logit);
        }
    return out;
}

// A SigLIP image-text pair (HF SiglipModel): vision tower with MAP head, text tower, and the
// learned t' (`logit_scale`, stored as log t) and bias. Names: vision.*, text.*, logit_scale (1),
// logit_bias (1).
struct siglip_config {
    vit_config vision;
    text_tower_config text;
};

inline void check(const siglip_config& c) {
    check(c.vision);
    if (!c.vision.map_head)
        throw config_error(core::describe("SigLIP pair without a MAP head", "siglip_config", "vision.map_head true", "false"));
    if (c.vision.width != c.text.out_dim())
        throw config_error(core::describe("SigLIP towers do not meet", "siglip_config", "vision width == text embedding width",
                                          std::to_string(c.vision.width) + " vs " + std::to_string(c.text.out_dim())));
}

template <weight_storage Storage = float>
class siglip_model {
public:
    explicit siglip_model(const siglip_config& c) : cfg_((check(c), c)), vision_(c.vision), text_(c.text) {}
    template <weights::weight_source S>
    siglip_model(const siglip_config& c, const weights::cursor<S>& cur) : siglip_model(c) {
        layers::load(*this, cur);
    }

    template <class V>
    void visit(V& v) {
        v.child("vision", vision_);
        v.child("text", text_);
        v.tensor("logit_scale", scale_, {1});
        v.tensor("logit_bias", bias_, {1});
    }

    const siglip_config& config() const { return cfg_; }
    const vision_tower<Storage>& vision() const { return vision_; }
    const text_tower<Storage>& text() const { return text_; }
    float log_t() const { return scale_.data[0]; }
    float bias() const { return bias_.data[0]; }

private:
    siglip_config cfg_;
    vision_tower<Storage> vision_;
    text_tower<Storage> text_;
    weights::param<float> scale_, bias_;
};

}  // namespace pali3::models
