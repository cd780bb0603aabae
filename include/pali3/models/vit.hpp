// The SigLIP vision tower: patchify + learned position embedding (resampled when the resolution
// differs from the checkpoint's grid) + pre-LN ViT blocks + final LayerNorm, optionally a MAP
// head. The block and the head are template parameters (vision_tower<Block, Head>); sizes are a
// vit_config (models/vit_config.hpp: big_vision's size table and named presets).
//   names: embedding.{weight,bias}, pos_embedding.weight, encoder.blocks.{i}..., encoder.norm,
//          head.{probe,attn,norm,mlp}
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include "pali3/layers/block.hpp"
#include "pali3/layers/vision.hpp"
#include "pali3/models/concepts.hpp"
#include "pali3/models/vit_config.hpp"

namespace pali3::models {

// Heads (docs/concepts.md: vision head). PaLI-3 keeps every token: no_head. SigLIP pools with
// a MAP head: optional_map_head builds one when the config says map_head (the default head, so
// one tower type serves both configs); map_pool_head always has one.
struct no_head {
    static constexpr bool pools = false;
    explicit no_head(const vit_config& c) {
        if (c.map_head)
            throw config_error(core::describe("config asks for a MAP head", "vision_tower<Block, no_head>",
                                              "map_head = false", "true"));
    }
    template <class V>
    void visit(V&) {}
    std::size_t workspace_floats(std::size_t, std::size_t) const { return 0; }
};

template <weight_storage Storage = float, bool Optional = true>
class basic_map_head {
public:
    static constexpr bool pools = true;
    explicit basic_map_head(const vit_config& c) {
        if (c.map_head || !Optional) head_.emplace(layers::map_head_config{c.width, c.heads, c.mlp, c.eps, c.activation});
    }
    template <class V>
    void visit(V& v) {
        if (head_) head_->visit(v);
    }
    bool present() const { return head_.has_value(); }
    std::size_t out_dim() const { return head_ ? head_->config().width : 0; }
    std::size_t workspace_floats(std::size_t batch, std::size_t t) const {
        return head_ ? layers::map_head<Storage>::workspace_floats(head_->config(), batch, t) : 0;
    }
    template <core::executor E = core::sequential>
    void forward(const float* tokens, std::size_t batch, std::size_t t, float* out, core::workspace& ws, E&& exec = E{},
                 const layers::trace& tr = {}) const {
        if (!head_) throw config_error(core::describe("pooling without a MAP head", "vision_tower", "map_head = true", "false"));
        head_->forward(tokens, batch, t, out, ws, exec, tr);
    }

    using saved = typename layers::map_head<Storage>::saved;
    template <core::executor E = core::sequential>
    void forward_train(const float* tokens, std::size_t batch, std::size_t t, float* out, saved& s, E&& exec = E{}) const {
        if (!head_) throw config_error(core::describe("pooling without a MAP head", "vision_tower", "map_head = true", "false"));
        head_->forward_train(tokens, batch, t, out, s, exec);
    }
    template <layers::gradient_sink G, core::executor E = core::sequential>
    void backward(const float* tokens, std::size_t batch, std::size_t t, const saved& s, const float* d_out,
                  float* d_tokens, G& g, E&& exec = E{}) const {
        if (!head_) throw config_error(core::describe("pooling without a MAP head", "vision_tower", "map_head = true", "false"));
        head_->backward(tokens, batch, t, s, d_out, d_tokens, g, exec);
    }
    void release_prepacked() {
        if (head_) head_->release_prepacked();
    }

private:
    std::optional<layers::map_head<Storage>> head_;
};
template <weight_storage Storage = float>
using optional_map_head = basic_map_head<Storage, true>;
template <weight_storage Storage = float>
using map_pool_head = basic_map_head<Storage, false>;

namespace detail {
// vision_tower<S> (a weight storage) means the default SigLIP block in that storage.
template <class BlockOrStorage>
struct vision_block_of {
    using type = BlockOrStorage;
};
template <class S>
    requires weight_storage<S>
struct vision_block_of<S> {
    using type = layers::vit_block<S>;
};
}  // namespace detail
template <class BlockOrStorage>
using vision_block_of_t = typename detail::vision_block_of<BlockOrStorage>::type;

// vision_tower<Block, Head>: any encoder block (docs/concepts.md: block) built from
// vit_config::block(), and a head. vision_tower<S> with a weight storage S is the SigLIP tower
// (vit_block<S>, optional_map_head<S>) as before.
template <class Block = float, class Head = optional_map_head<layers::storage_of_t<vision_block_of_t<Block>>>>
class vision_tower {
public:
    using block_type = vision_block_of_t<Block>;
    using head_type = Head;
    using storage_type = layers::storage_of_t<block_type>;
    using config_type = vit_config;

    static_assert(layers::encoder_block<block_type>,
                  "vision_tower<Block, Head>: Block is not an encoder block: it needs a constructor from "
                  "block_config, visit(v), a norm_type, a static workspace_floats(config, batch, t) and "
                  "forward(x, batch, t, ws, exec, attention_inputs, trace) (docs/concepts.md: block)");
    static_assert(vision_head<Head>,
                  "vision_tower<Block, Head>: Head is not a vision head: it needs a constructor from vit_config, "
                  "visit(v), `static constexpr bool pools`, workspace_floats(batch, t), and when it pools "
                  "forward(tokens, batch, t, out, ws, exec, trace) and out_dim() (docs/concepts.md: vision head)");

    explicit vision_tower(const vit_config& c)
        : cfg_((check(c), c)),
          embed_({c.channels, c.patch, c.width}),
          pos_({c.table_grid(), c.table_grid(), c.width}),
          encoder_({c.block(), c.depth, true, std::nullopt}),
          head_(c) {}
    template <weights::weight_source S>
    vision_tower(const vit_config& c, const weights::cursor<S>& cur) : vision_tower(c) {
        layers::load(*this, cur);
    }

    template <class V>
    void visit(V& v) {
        v.child("embedding", embed_);
        v.child("pos_embedding", pos_);
        v.child("encoder", encoder_);
        v.child("head", head_);
    }

    const vit_config& config() const { return cfg_; }
    const Head& head() const { return head_; }
    // Width of pool()'s output (0 when the head is absent).
    std::size_t pooled_dim() const
        requires Head::pools
    {
        return head_.out_dim();
    }

    std::size_t workspace_floats(std::size_t batch) const {
        const std::size_t side = cfg_.image;
        return std::max({layers::patch_embedding<storage_type>::workspace_floats(embed_.config(), batch, side, side),
                         encoder_.workspace_floats(batch, cfg_.tokens()), head_.workspace_floats(batch, cfg_.tokens())});
    }

    // tokens (batch, grid^2, width) from images (batch, C, image, image) (or NHWC) in [-1, 1].
    template <core::executor E = core::sequential>
    void forward(const float* images, std::size_t batch, layers::image_layout layout, float* tokens,
                 core::workspace& ws, E&& exec = E{}, const layers::trace& tr = {}) const {
        const std::size_t g = cfg_.grid();
        embed_.forward(images, batch, cfg_.image, cfg_.image, layout, tokens, ws, exec);
        tr("embedding", tokens, {batch, g * g, cfg_.width});
        pos_.add_to(tokens, batch, g, g);
        tr("pos_embedding_out", tokens, {batch, g * g, cfg_.width});
        encoder_.forward(tokens, batch, g * g, ws, exec, {}, tr.child("encoder"));
    }

    // pooled (batch, pooled_dim()) by the head, from forward()'s tokens.
    template <core::executor E = core::sequential>
        requires Head::pools
    void pool(const float* tokens, std::size_t batch, float* pooled, core::workspace& ws, E&& exec = E{},
              const layers::trace& tr = {}) const {
        head_.forward(tokens, batch, cfg_.tokens(), pooled, ws, exec, tr.child("head"));
    }

    // ---- training (docs/training.md) ---------------------------------------------------------
    struct saved {
        typename layers::stack<block_type>::saved encoder;
    };

    // forward() keeping the activations backward() needs (recompute: only each block's input).
    template <core::executor E = core::sequential>
    void forward_train(const float* images, std::size_t batch, layers::image_layout layout, float* tokens, saved& s,
                       E&& exec = E{}, bool recompute = false) const {
        const std::size_t g = cfg_.grid();
        core::workspace ws(layers::patch_embedding<storage_type>::workspace_floats(embed_.config(), batch, cfg_.image,
                                                                                   cfg_.image));
        embed_.forward(images, batch, cfg_.image, cfg_.image, layout, tokens, ws, exec);
        pos_.add_to(tokens, batch, g, g);
        encoder_.forward_train(tokens, batch, g * g, s.encoder, exec, {}, recompute);
    }

    // d_tokens (batch, grid^2, width): the gradient of forward()'s tokens (overwritten); every
    // parameter's gradient into g.
    template <layers::gradient_sink G, core::executor E = core::sequential>
    void backward(const float* images, std::size_t batch, layers::image_layout layout, const saved& s, float* d_tokens,
                  G& g, E&& exec = E{}) const {
        const std::size_t gr = cfg_.grid();
        encoder_.backward(d_tokens, batch, gr * gr, s.encoder, g, exec);
        pos_.backward(d_tokens, batch, gr, gr, g);
        embed_.backward(images, batch, cfg_.image, cfg_.image, layout, d_tokens, g, exec);
    }

    // The head's training forward and backward (pooling towers): pooled (batch, pooled_dim())
    // from tokens; backward adds the tokens' gradient to d_tokens.
    // (H defaults to Head: a head without training members still makes a usable tower.)
    template <class H = Head, core::executor E = core::sequential>
        requires Head::pools
    void pool_train(const float* tokens, std::size_t batch, float* pooled, typename H::saved& s, E&& exec = E{}) const {
        head_.forward_train(tokens, batch, cfg_.tokens(), pooled, s, exec);
    }
    template <layers::gradient_sink G, class H = Head, core::executor E = core::sequential>
        requires Head::pools
    void pool_backward(const float* tokens, std::size_t batch, const typename H::saved& s, const float* d_pooled,
                       float* d_tokens, G& g, E&& exec = E{}) const {
        head_.backward(tokens, batch, cfg_.tokens(), s, d_pooled, d_tokens, g, exec);
    }

    void release_prepacked() {
        encoder_.release_prepacked();
        if constexpr (requires { head_.release_prepacked(); }) head_.release_prepacked();
    }

private:
    vit_config cfg_;
    layers::patch_embedding<storage_type> embed_;
    layers::learned_position_embedding pos_;
    layers::stack<block_type> encoder_;
    Head head_;
};

}  // namespace pali3::models
