// What a model-level part must provide: a vision head, a vision tower, a projector, an
// encoder-decoder text model, a contrastive text tower. With layers/concepts.hpp (norm,
// attention, MLP, blocks) this is the whole contract of composition; docs/concepts.md says per
// concept what a part needs (members, shapes, weight names, workspace) with a worked example.
// Each model template static_asserts them with a message in plain words.
#pragma once

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "pali3/layers/concepts.hpp"
#include "pali3/layers/vision.hpp"
#include "pali3/models/vit_config.hpp"

namespace pali3::models {

// A vision head turns a tower's tokens into one vector per image (SigLIP's MAP head), or is
// absent (PaLI-3 keeps every token). Built from the tower's vit_config; `pools` says whether it
// pools. A pooling head: out (batch, out_dim()) from tokens (batch*t, width).
template <class H>
concept vision_head_base = std::constructible_from<H, const vit_config&> && layers::visitable<H> &&
                           requires(const H& h, std::size_t n) {
                               { H::pools } -> std::convertible_to<bool>;
                               { h.workspace_floats(n, n) } -> std::convertible_to<std::size_t>;
                           };
template <class H>
concept pooling_head = vision_head_base<H> && H::pools &&
                       requires(const H& h, const float* x, float* y, std::size_t n, core::workspace& ws,
                                core::sequential& e, const layers::trace& tr) {
                           h.forward(x, n, n, y, ws, e, tr);
                           { h.out_dim() } -> std::convertible_to<std::size_t>;
                       };
template <class H>
concept vision_head = vision_head_base<H> && (!H::pools || pooling_head<H>);

// A vision tower: images (batch, C, H, W) in [-1, 1] -> tokens (batch, tokens(), width).
template <class V>
concept vision_model =
    layers::visitable<V> &&
    requires(const V& v, const typename V::config_type& c, const float* img, float* out, std::size_t n,
             core::workspace& ws, core::sequential& e, const layers::trace& tr) {
        { c.width } -> std::convertible_to<std::size_t>;
        { c.image } -> std::convertible_to<std::size_t>;
        { c.channels } -> std::convertible_to<std::size_t>;
        { c.tokens() } -> std::convertible_to<std::size_t>;
        { v.config() } -> std::convertible_to<const typename V::config_type&>;
        v.forward(img, n, layers::image_layout::nchw, out, ws, e, tr);
        { v.workspace_floats(n) } -> std::convertible_to<std::size_t>;
    };

// A vision tower that also pools (a pooling head): needed by a contrastive (SigLIP) model.
template <class V>
concept pooling_vision_model = vision_model<V> && requires(const V& v, const float* x, float* y, std::size_t n,
                                                           core::workspace& ws, core::sequential& e, const layers::trace& tr) {
    v.pool(x, n, y, ws, e, tr);
    { v.pooled_dim() } -> std::convertible_to<std::size_t>;
};

// A projector: visual tokens (rows, in) -> (rows, out), rows of y `ldy` floats apart (PaLI-3
// writes each image's tokens at the head of its text sequence).
template <class P>
concept projector_model =
    layers::visitable<P> && std::constructible_from<P, const typename P::config_type&> &&
    requires(const P& p, const typename P::config_type& c, const float* x, float* y, std::size_t n,
             core::workspace& ws, core::sequential& e, const layers::trace& tr) {
        { c.in } -> std::convertible_to<std::size_t>;
        { c.out } -> std::convertible_to<std::size_t>;
        p.forward(x, n, y, n, ws, e, tr);
        { p.workspace_floats(n) } -> std::convertible_to<std::size_t>;
    };

// An encoder-decoder text model: embeds ids, encodes embedded rows in place (padding by
// lengths or any 0/1 key mask), and decodes step by step against an explicit state (KV caches).
template <class T>
concept encoder_decoder =
    layers::visitable<T> && std::constructible_from<T, const typename T::config_type&> &&
    requires(const T& m, const typename T::config_type& c, typename T::state_type& s, const std::int32_t* ids,
             float* x, std::size_t n, const layers::key_mask& keys, core::workspace& ws, core::sequential& e,
             const layers::trace& tr) {
        { c.d_model } -> std::convertible_to<std::size_t>;
        { c.vocab } -> std::convertible_to<std::size_t>;
        m.embed(ids, n, x);
        m.encode(x, n, n, keys, ws, e, tr);
        { m.start(x, n, n, keys, n, e) } -> std::same_as<typename T::state_type>;
        m.step(ids, n, s, x, ws, e, tr);
        { m.workspace_floats(n, n, n) } -> std::convertible_to<std::size_t>;
    };

// A contrastive text tower (SigLIP): ids (batch, max_len) -> embeddings (batch, out_dim()).
template <class T>
concept contrastive_text_model =
    layers::visitable<T> && std::constructible_from<T, const typename T::config_type&> &&
    requires(const T& m, const std::int32_t* ids, float* y, std::size_t n, core::workspace& ws, core::sequential& e,
             const layers::trace& tr) {
        m.forward(ids, n, y, ws, e, tr);
        { m.out_dim() } -> std::convertible_to<std::size_t>;
        { m.workspace_floats(n) } -> std::convertible_to<std::size_t>;
    };

}  // namespace pali3::models
