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
#include "pali3/loss/siglip_loss.hpp"
#include "pali3/models/concepts.hpp"
#include "pali3/models/vit.hpp"

namespace pali3::models {

struct text_tower_config {
    std::size_t vocab = 0, width = 0, depth = 0, mlp = 0, heads = 0;
    std::size_t max_len = 64;     // SigLIP text length
    std::size_t embed_dim = 0;    // head output (0: width)
    float eps = 1e-6f;                                                       // every LayerNorm's
    kernels::activation_id activation = kernels::activation_id::gelu_tanh;  // every MLP's

    constexpr layers::block_config block() const {
        return {{width, eps}, {width, heads, 0, true}, {width, mlp, true, activation}};
    }
    constexpr std::size_t out_dim() const { return embed_dim ? embed_dim : width; }
};

// text_tower<Block>: any encoder block built from text_tower_config::block(); text_tower<S>
// with a weight storage S is SigLIP's (vit_block<S>).
template <class Block = float>
class text_tower {
public:
    using block_type = vision_block_of_t<Block>;
    using storage_type = layers::storage_of_t<block_type>;
    using config_type = text_tower_config;

    static_assert(layers::encoder_block<block_type>,
                  "text_tower<Block>: Block is not an encoder block (docs/concepts.md: block)");

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
    std::size_t out_dim() const { return cfg_.out_dim(); }
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
        encoder_.forward(x, batch, t, ws, exec, {}, tr.child("encoder"));
        for (std::size_t b = 0; b < batch; ++b)  // the last position
            head_.forward(x + (b * t + t - 1) * w, w, 1, out + b * cfg_.out_dim(), cfg_.out_dim(), exec);
        tr("out", out, {batch, cfg_.out_dim()});
    }

    // ---- training (docs/training.md) ---------------------------------------------------------
    struct saved {
        typename layers::stack<block_type>::saved encoder;
        core::buffer last;  // the encoder's output at the last position (batch, width)
    };

    template <core::executor E = core::sequential>
    void forward_train(const std::int32_t* ids, std::size_t batch, float* out, saved& s, E&& exec = E{},
                       bool recompute = false) const {
        const std::size_t t = cfg_.max_len, w = cfg_.width;
        core::buffer x(batch * t * w);
        embed_.forward(ids, batch * t, x.data());
        for (std::size_t b = 0; b < batch; ++b) kernels::add(x.data() + b * t * w, pos_.data, x.data() + b * t * w, t * w);
        encoder_.forward_train(x.data(), batch, t, s.encoder, exec, {}, recompute);
        s.last.resize(batch * w);
        for (std::size_t b = 0; b < batch; ++b) std::copy_n(x.data() + (b * t + t - 1) * w, w, s.last.data() + b * w);
        head_.forward(s.last.data(), w, batch, out, cfg_.out_dim(), exec);
    }

    // d_out (batch, out_dim) -> every parameter's gradient into g.
    template <layers::gradient_sink G, core::executor E = core::sequential>
    void backward(const std::int32_t* ids, std::size_t batch, const saved& s, const float* d_out, G& g,
                  E&& exec = E{}) const {
        const std::size_t t = cfg_.max_len, w = cfg_.width;
        core::buffer dx(batch * t * w, 0.f), dlast(batch * w);
        head_.backward(s.last.data(), w, batch, d_out, cfg_.out_dim(), dlast.data(), w, g, exec);
        for (std::size_t b = 0; b < batch; ++b) std::copy_n(dlast.data() + b * w, w, dx.data() + (b * t + t - 1) * w);
        encoder_.backward(dx.data(), batch, t, s.encoder, g, exec);
        if (float* dp = g.grad(pos_))
            for (std::size_t b = 0; b < batch; ++b) kernels::add(dp, dx.data() + b * t * w, dp, t * w);
        embed_.backward(ids, batch * t, dx.data(), g);
    }

    void release_prepacked() {
        encoder_.release_prepacked();
        head_.release_prepacked();
    }

private:
    text_tower_config cfg_;
    layers::embedding<storage_type> embed_;
    weights::param<float> pos_;
    layers::stack<block_type> encoder_;
    layers::linear<storage_type> head_;
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

// A SigLIP image-text pair (HF SiglipModel): a pooling vision tower, a text tower, and the
// learned t' (`logit_scale`, stored as log t) and bias. Names: vision.*, text.*, logit_scale (1),
// logit_bias (1).
template <class VisionConfig, class TextConfig>
struct basic_siglip_config {
    VisionConfig vision;
    TextConfig text;
};
using siglip_config = basic_siglip_config<vit_config, text_tower_config>;

inline void check(const siglip_config& c) {
    check(c.vision);
    if (!c.vision.map_head)
        throw config_error(core::describe("SigLIP pair without a MAP head", "siglip_config", "vision.map_head true", "false"));
    if (c.vision.width != c.text.out_dim())
        throw config_error(core::describe("SigLIP towers do not meet", "siglip_config", "vision width == text embedding width",
                                          std::to_string(c.vision.width) + " vs " + std::to_string(c.text.out_dim())));
}

// Intent in, config out: SigLIP's text tower has the vision tower's sizes.
constexpr siglip_config siglip_of(vit_config vision, std::size_t vocab, std::size_t max_len = 64) {
    vision.map_head = true;
    return {vision, {vocab, vision.width, vision.depth, vision.mlp, vision.heads, max_len, 0}};
}

namespace detail {
template <class VisionOrStorage>
struct siglip_parts {
    using vision = VisionOrStorage;
    using text = text_tower<layers::storage_of_t<VisionOrStorage>>;
};
template <class S>
    requires weight_storage<S>
struct siglip_parts<S> {
    using vision = vision_tower<S>;
    using text = text_tower<S>;
};
}  // namespace detail

// siglip_model<Vision, Text>: a vision tower whose head pools and a contrastive text tower whose
// embeddings have the pooled width. siglip_model<S> with a weight storage S is SigLIP's own.
template <class Vision = float, class Text = typename detail::siglip_parts<Vision>::text>
class siglip_model {
public:
    using vision_type = typename detail::siglip_parts<Vision>::vision;
    using text_type = Text;
    using config_type = basic_siglip_config<typename vision_type::config_type, typename Text::config_type>;

    static_assert(pooling_vision_model<vision_type>,
                  "siglip_model<Vision, Text>: Vision is not a vision tower whose head pools: give the tower a head "
                  "with `pools = true`, forward(...) and out_dim() (docs/concepts.md: vision head)");
    static_assert(contrastive_text_model<Text>,
                  "siglip_model<Vision, Text>: Text is not a contrastive text tower: it needs a config_type, "
                  "forward(ids, batch, out, ws, exec, trace), out_dim() and workspace_floats(batch) "
                  "(docs/concepts.md: contrastive text tower)");

    explicit siglip_model(const config_type& c) : cfg_(c), vision_(c.vision), text_(c.text) {
        if (vision_.pooled_dim() == 0)
            throw config_error(core::describe("SigLIP pair without a MAP head", "siglip_config", "vision.map_head true", "false"));
        if (vision_.pooled_dim() != text_.out_dim())
            throw config_error(core::describe("SigLIP towers do not meet", "siglip_config",
                                              "vision pooled width == text embedding width",
                                              std::to_string(vision_.pooled_dim()) + " vs " + std::to_string(text_.out_dim())));
    }
    template <weights::weight_source S>
    siglip_model(const config_type& c, const weights::cursor<S>& cur) : siglip_model(c) {
        layers::load(*this, cur);
    }

    template <class V>
    void visit(V& v) {
        v.child("vision", vision_);
        v.child("text", text_);
        v.tensor("logit_scale", scale_, {1});
        v.tensor("logit_bias", bias_, {1});
    }

    const config_type& config() const { return cfg_; }
    const vision_type& vision() const { return vision_; }
    const Text& text() const { return text_; }
    std::size_t embed_dim() const { return text_.out_dim(); }
    float log_t() const { return scale_.data[0]; }
    float bias() const { return bias_.data[0]; }

    std::size_t workspace_floats(std::size_t images, std::size_t texts) const {
        const std::size_t n = cfg_.vision.tokens();
        return std::max(core::workspace::padded(images * n * cfg_.vision.width) + vision_.workspace_floats(images),
                        text_.workspace_floats(texts));
    }

    // out (batch, embed_dim()) from images (batch, C, H, W) in [-1, 1]: tokens, then the head.
    template <core::executor E = core::sequential>
    void embed_images(const float* images, std::size_t batch, float* out, core::workspace& ws, E&& exec = E{},
                      const layers::trace& tr = {}) const {
        core::workspace::scope scope(ws);
        float* tokens = ws.alloc(batch * cfg_.vision.tokens() * cfg_.vision.width).data();  // (batch*N, width)
        vision_.forward(images, batch, layers::image_layout::nchw, tokens, ws, exec, tr.child("vision"));
        vision_.pool(tokens, batch, out, ws, exec, tr.child("vision"));
    }

    // out (batch, embed_dim()) from ids (batch, max_len).
    template <core::executor E = core::sequential>
    void embed_texts(const std::int32_t* ids, std::size_t batch, float* out, core::workspace& ws, E&& exec = E{},
                     const layers::trace& tr = {}) const {
        text_.forward(ids, batch, out, ws, exec, tr.child("text"));
    }

    // sigmoid(t <img, txt> + b) (or the logits) for every pair: (n_img, n_txt).
    std::vector<float> scores(const float* img, std::size_t n_img, const float* txt, std::size_t n_txt,
                              bool probabilities = true) const {
        return contrastive_scores(img, n_img, txt, n_txt, embed_dim(), log_t(), bias(), probabilities);
    }

    // ---- training (docs/training.md) ---------------------------------------------------------
    // The SigLIP loss of a batch of n (image, text) pairs, pair i positive, every other negative
    // (loss::siglip_loss: mean over images), and with g every parameter's gradient (both towers,
    // logit_scale, logit_bias). images (n, C, H, W) in [-1, 1], ids (n, max_len).
    struct loss_options {
        bool recompute = false;
        std::size_t block = 0;  // the loss's tile size (0: all pairs at once)
    };

    template <layers::gradient_sink G, core::executor E = core::sequential>
    double loss_and_grad(const float* images, const std::int32_t* ids, std::size_t n, G* g, E&& exec = E{},
                         const loss_options& opt = {}) const {
        core::buffer img, txt, d_img, d_txt;
        typename vision_type::saved vs;
        typename vision_type::head_type::saved hs;
        typename Text::saved ts;
        core::buffer tokens;
        embed_train<vision_type, Text>(images, ids, n, img, txt, tokens, vs, hs, ts, exec, opt.recompute);
        const std::size_t d = embed_dim();
        if (g) {
            d_img.resize(n * d);
            d_txt.resize(n * d);
        }
        const auto res = loss::siglip_loss(img.data(), txt.data(), n, d, log_t(), bias(),
                                           g ? loss::siglip_grads{d_img.data(), d_txt.data()} : loss::siglip_grads{},
                                           opt.block, 1e-8f, exec);
        if (g)
            backward_train<G, vision_type, Text>(images, ids, n, tokens, vs, hs, ts, d_img.data(), d_txt.data(), res.d_log_t,
                                                 res.d_bias, *g, exec);
        return res.loss;
    }

    // The two halves, for losses computed elsewhere (the MPI ring, train::data_parallel):
    // embeddings of both towers with what backward needs, then backward from their gradients.
    // (V and T default to the parts: parts without training members still make a usable model.)
    template <class V = vision_type, class T = Text, core::executor E = core::sequential>
    void embed_train(const float* images, const std::int32_t* ids, std::size_t n, core::buffer& img,
                     core::buffer& txt, core::buffer& tokens, typename V::saved& vs,
                     typename V::head_type::saved& hs, typename T::saved& ts, E&& exec = E{},
                     bool recompute = false) const {
        const std::size_t d = embed_dim();
        tokens.resize(n * cfg_.vision.tokens() * cfg_.vision.width);
        img.resize(n * d);
        txt.resize(n * d);
        vision_.forward_train(images, n, layers::image_layout::nchw, tokens.data(), vs, exec, recompute);
        vision_.pool_train(tokens.data(), n, img.data(), hs, exec);
        text_.forward_train(ids, n, txt.data(), ts, exec, recompute);
    }

    template <layers::gradient_sink G, class V = vision_type, class T = Text, core::executor E = core::sequential>
    void backward_train(const float* images, const std::int32_t* ids, std::size_t n, const core::buffer& tokens,
                        const typename V::saved& vs, const typename V::head_type::saved& hs, const typename T::saved& ts,
                        const float* d_img, const float* d_txt, double d_log_t, double d_bias, G& g,
                        E&& exec = E{}) const {
        if (float* p = g.grad(scale_)) p[0] += static_cast<float>(d_log_t);
        if (float* p = g.grad(bias_)) p[0] += static_cast<float>(d_bias);
        text_.backward(ids, n, ts, d_txt, g, exec);
        core::buffer d_tokens(tokens.size(), 0.f);
        vision_.pool_backward(tokens.data(), n, hs, d_img, d_tokens.data(), g, exec);
        vision_.backward(images, n, layers::image_layout::nchw, vs, d_tokens.data(), g, exec);
    }

private:
    config_type cfg_;
    vision_type vision_;
    Text text_;
    weights::param<float> scale_, bias_;
};

}  // namespace pali3::models
