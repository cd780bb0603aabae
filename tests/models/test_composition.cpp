// Whole models composed from parts through the public API only: (a) a PaLI-3 whose vision block
// is written here (a parallel attention + MLP block), (b) a PaLI-3 whose text model is T5 v1.0
// (ReLU, tied head), (c) a SigLIP two-tower model with a head written here. Each loads seeded
// random weights written to safetensors, runs forward, checks its output against the same parts
// run by hand, and its parameter count against the closed form.
#include <cmath>
#include <filesystem>
#include <numeric>
#include <vector>

#include <catch2/catch.hpp>

#include "pali3/models/pali3.hpp"
#include "pali3/models/siglip.hpp"
#include "pali3/weights/random_source.hpp"
#include "pali3/weights/safetensors.hpp"
#include "../common.hpp"

using namespace pali3;
using namespace pali3::models;

namespace {

// x += attn(LN(x)) + mlp(LN(x)): the parallel layout of GPT-J, PaLM and ViT-22B, one norm.
template <weight_storage S = float>
class parallel_block {
public:
    using norm_type = layers::layer_norm;
    using storage_type = S;
    using attention_type = layers::attention<layers::attn::inv_sqrt_dim, S>;
    using mlp_type = layers::mlp<kernels::act::gelu_tanh, S>;

    explicit parallel_block(const layers::block_config& c)
        : cfg_((layers::check(c, "parallel_block"), c)), norm_(c.norm), attn_(c.attn), mlp_(c.mlp) {}

    template <class V>
    void visit(V& v) {
        v.child("norm", norm_);
        v.child("attn", attn_);
        v.child("mlp", mlp_);
    }

    static std::size_t workspace_floats(const layers::block_config& c, std::size_t batch, std::size_t t) {
        const std::size_t rows = batch * t;
        return core::workspace::padded(rows * c.attn.width) +
               std::max(attention_type::workspace_floats(c.attn, rows, rows), mlp_type::workspace_floats(c.mlp, rows));
    }

    template <core::executor E = core::sequential>
    void forward(float* x, std::size_t batch, std::size_t t, core::workspace& ws, E&& exec = E{},
                 const layers::attention_inputs& in = {}, const layers::trace& tr = {}) const {
        const std::size_t w = cfg_.attn.width, rows = batch * t;
        core::workspace::scope scope(ws);
        float* h = ws.alloc(rows * w).data();  // (rows, width): LN(x) before either branch adds
        norm_.forward(x, w, rows, h, w);
        attn_.forward(h, batch, t, x, ws, exec, in.mask, in.keys, in.pos_bias, true, tr.child("attn"));
        mlp_.forward(h, rows, x, ws, exec, true, tr.child("mlp"));
        tr("out", x, {rows, w});
    }

private:
    layers::block_config cfg_;
    layers::layer_norm norm_;
    attention_type attn_;
    mlp_type mlp_;
};

// A pooling head: mean over the tokens, then Dense(width -> Dim). Names: head.{weight,bias}.
template <std::size_t Dim>
class mean_pool_head {
public:
    static constexpr bool pools = true;
    explicit mean_pool_head(const vit_config& c) : width_(c.width), dense_({c.width, Dim, true}) {}
    template <class V>
    void visit(V& v) {
        dense_.visit(v);
    }
    std::size_t out_dim() const { return Dim; }
    std::size_t workspace_floats(std::size_t batch, std::size_t) const { return core::workspace::padded(batch * width_); }
    template <core::executor E = core::sequential>
    void forward(const float* tokens, std::size_t batch, std::size_t t, float* out, core::workspace& ws, E&& exec = E{},
                 const layers::trace& tr = {}) const {
        core::workspace::scope scope(ws);
        float* mean = ws.alloc(batch * width_).data();  // (batch, width)
        for (std::size_t b = 0; b < batch; ++b)
            for (std::size_t d = 0; d < width_; ++d) {
                double s = 0;
                for (std::size_t i = 0; i < t; ++i) s += tokens[(b * t + i) * width_ + d];
                mean[b * width_ + d] = static_cast<float>(s / static_cast<double>(t));
            }
        dense_.forward(mean, width_, batch, out, Dim, exec);
        tr("out", out, {batch, Dim});
    }

private:
    std::size_t width_;
    layers::linear<float> dense_;
};

static_assert(layers::encoder_block<parallel_block<>>);
static_assert(pooling_head<mean_pool_head<24>>);

std::filesystem::path temp_file(const std::string& name) {
    const auto dir = std::filesystem::temp_directory_path() / "pali3_test_composition";
    std::filesystem::create_directories(dir);
    return dir / name;
}

// The model's seeded random weights written to safetensors and opened again.
template <class Model>
weights::safetensors_source through_safetensors(Model& model, const std::string& name) {
    weights::memory_source mem;
    layers::save(model, mem);
    const std::string path = temp_file(name).string();
    weights::write_safetensors(path, mem);
    return weights::safetensors_source::open(path);
}

std::size_t vit_params(const vit_config& c, std::size_t block) {
    const std::size_t w = c.width, g = c.table_grid();
    return c.channels * c.patch * c.patch * w + w + g * g * w + c.depth * block + 2 * w;
}
std::size_t parallel_block_params(std::size_t w, std::size_t m) { return 2 * w + 4 * (w * w + w) + 2 * w * m + m + w; }
std::size_t pre_norm_block_params(std::size_t w, std::size_t m) { return 4 * w + 4 * (w * w + w) + 2 * w * m + m + w; }

// T5 v1.0: ReLU MLP without biases, tied head (no lm_head tensor).
std::size_t t5_v10_params(const t5_config& c) {
    const std::size_t d = c.d_model, inner = c.heads * c.d_kv, ffn = 2 * d * c.d_ff;
    const std::size_t enc = 2 * d + 4 * d * inner + ffn, dec = 3 * d + 8 * d * inner + ffn;
    return c.vocab * d + 2 * c.num_buckets * c.heads + c.encoder_layers * enc + c.decoder_layers * dec + 2 * d;
}

// The decoder logits of `steps` greedy steps from the start token, (steps, vocab).
template <class Model>
std::vector<float> greedy_logits(const Model& m, const std::vector<float>& image, const std::vector<std::int32_t>& prompt,
                                 std::size_t steps) {
    const auto& c = m.config();
    const std::vector<std::vector<std::int32_t>> prompts{prompt};
    core::workspace ws(m.workspace_floats(1, prompt.size(), steps));
    std::vector<float> memory(m.sequence_length(prompt.size()) * c.text.d_model);
    const auto lens = m.encode(image.data(), prompts, memory.data(), ws);
    auto state = m.start(memory.data(), 1, lens, steps);
    std::vector<float> logits(c.text.vocab), all;
    std::int32_t id = 0;
    for (std::size_t s = 0; s < steps; ++s) {
        m.step(&id, state, logits.data(), ws);
        all.insert(all.end(), logits.begin(), logits.end());
        id = static_cast<std::int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
    }
    return all;
}


}  // namespace

TEST_CASE("composition (a): PaLI-3 with a vision block written by the user", "[models][composition]") {
    using tower = vision_tower<parallel_block<>, no_head>;
    using model_t = pali3_model<tower, linear_projector<>, t5_v11<>>;
    constexpr auto cfg = pali3_of(vit_config{40, 3, 72, 5, 8, 24}, t5_config{97, 24, 40, 3, 8, 2, 2});
    static_assert(cfg.projector.in == 40 && cfg.projector.out == 24);

    const weights::random_source rnd(21);
    model_t seeded(cfg, weights::cursor(rnd));
    const auto file = through_safetensors(seeded, "parallel.safetensors");
    const model_t model(cfg, weights::cursor(file));

    // Parameters: the parallel tower (one norm per block), the projector, T5 v1.1 (gated, untied).
    const std::size_t tower_params = vit_params(cfg.vision, parallel_block_params(40, 72));
    CHECK(layers::parameter_count(const_cast<tower&>(model.vision())) == tower_params);
    CHECK(layers::parameter_count(seeded) == tower_params + (40 * 24 + 24) + layers::parameter_count(const_cast<t5_v11<>&>(seeded.text())));
    // The names a checkpoint holds for the user's block.
    const auto names = layers::parameters(seeded);
    CHECK(std::any_of(names.begin(), names.end(), [](const auto& p) { return p.name == "img.encoder.blocks.2.norm.weight"; }));

    // Forward: the tower equals the parallel formula run by hand with the same weights.
    const auto image = test::random_vector(3 * 24 * 24, 5, 0.5f);
    std::vector<float> tokens(cfg.vision.tokens() * 40), by_hand(tokens.size());
    core::workspace ws(model.vision().workspace_floats(1) + 4 * tokens.size());
    model.vision().forward(image.data(), 1, layers::image_layout::nchw, tokens.data(), ws);
    {
        const weights::cursor img(file, "img");
        layers::patch_embedding<> embed({3, 8, 40}, img.pp("embedding"));
        layers::learned_position_embedding pos({3, 3, 40}, img.pp("pos_embedding"));
        embed.forward(image.data(), 1, 24, 24, layers::image_layout::nchw, by_hand.data(), ws);
        pos.add_to(by_hand.data(), 1, 3, 3);
        const std::size_t rows = 9, w = 40;
        std::vector<float> h(rows * w);
        for (std::size_t i = 0; i < 3; ++i) {
            const auto blk = img.pp("encoder.blocks").pp(i);
            layers::layer_norm norm({w, 1e-6f}, blk.pp("norm"));
            layers::attention<> attn({w, 5, 0, true}, blk.pp("attn"));
            layers::mlp<> mlp({w, 72, true}, blk.pp("mlp"));
            norm.forward(by_hand.data(), w, rows, h.data(), w);
            std::vector<float> a(rows * w), f(rows * w);
            attn.forward(h.data(), 1, rows, a.data(), ws);
            mlp.forward(h.data(), rows, f.data(), ws);
            for (std::size_t j = 0; j < a.size(); ++j) by_hand[j] += a[j] + f[j];
        }
        layers::layer_norm final_norm({w, 1e-6f}, img.pp("encoder.norm"));
        final_norm.forward(by_hand.data(), w, rows, by_hand.data(), w);
    }
    const double err = test::rel_diff(tokens, by_hand);
    INFO("relative error vs the parallel formula by hand: " << err);
    CHECK(err < 1e-6);

    // The whole model decodes, deterministically, and equals the seeded model it was saved from.
    const auto logits = greedy_logits(model, image, {5, 17, 3}, 3);
    CHECK(logits == greedy_logits(seeded, image, {5, 17, 3}, 3));
    CHECK(std::all_of(logits.begin(), logits.end(), [](float v) { return std::isfinite(v); }));
}

TEST_CASE("composition (b): PaLI-3 with a T5 v1.0 text model (ReLU, tied head)", "[models][composition]") {
    using model_t = pali3_model<vision_tower<>, linear_projector<>, t5_v10<>>;
    auto text = t5_sizes::v10_small(113);
    text.d_model = 32, text.d_ff = 56, text.heads = 4, text.d_kv = 8, text.encoder_layers = 2, text.decoder_layers = 3;
    const auto cfg = pali3_of(vit_config{48, 2, 96, 4, 8, 32}, text);
    CHECK(cfg.text.tied_embeddings);

    const weights::random_source rnd(22);
    model_t seeded(cfg, weights::cursor(rnd));
    const auto file = through_safetensors(seeded, "t5v10.safetensors");
    const model_t model(cfg, weights::cursor(file));

    const std::size_t vision = vit_params(cfg.vision, pre_norm_block_params(48, 96));
    CHECK(layers::parameter_count(const_cast<t5_v10<>&>(model.text())) == t5_v10_params(cfg.text));
    CHECK(layers::parameter_count(seeded) == vision + (48 * 32 + 32) + t5_v10_params(cfg.text));
    const auto names = layers::parameters(seeded);
    CHECK(std::none_of(names.begin(), names.end(), [](const auto& p) { return p.name.starts_with("text.lm_head"); }));

    // The composed model equals its parts run in sequence with the same weights.
    const auto image = test::random_vector(3 * 32 * 32, 6, 0.5f);
    const std::vector<std::int32_t> prompt{7, 100, 2, 55};
    const auto logits = greedy_logits(model, image, prompt, 3);
    {
        const weights::cursor root(file);
        const vision_tower<> tower(cfg.vision, root.pp("img"));
        const layers::linear<> projector({48, 32, true}, root.pp("projector"));
        const t5_v10<> t5(cfg.text, root.pp("text"));
        const std::size_t n = cfg.vision.tokens(), len = n + prompt.size();
        core::workspace ws(tower.workspace_floats(1) + t5.workspace_floats(1, len, 3) + n * 48);
        std::vector<float> tokens(n * 48), memory(len * 32);
        tower.forward(image.data(), 1, layers::image_layout::nchw, tokens.data(), ws);
        projector.forward(tokens.data(), 48, n, memory.data(), 32);
        t5.embed(prompt.data(), prompt.size(), memory.data() + n * 32);
        const std::vector<std::size_t> lens{len};
        t5.encode(memory.data(), 1, len, lens, ws);
        auto state = t5.start(memory.data(), 1, len, lens, 3);
        std::vector<float> step(113), all;
        std::int32_t id = 0;
        for (int s = 0; s < 3; ++s) {
            t5.step(&id, 1, state, step.data(), ws);
            all.insert(all.end(), step.begin(), step.end());
            id = static_cast<std::int32_t>(std::max_element(step.begin(), step.end()) - step.begin());
        }
        CHECK(all == logits);
    }
    CHECK(logits == greedy_logits(seeded, image, prompt, 3));
}

TEST_CASE("composition (c): SigLIP two-tower model with a head written by the user", "[models][composition]") {
    using tower = vision_tower<layers::vit_block<>, mean_pool_head<24>>;
    using model_t = siglip_model<tower, text_tower<>>;
    const basic_siglip_config<vit_config, text_tower_config> cfg{vit_config{40, 2, 64, 4, 8, 32},
                                                                 text_tower_config{50, 32, 1, 48, 4, 6, 24}};
    const weights::random_source rnd(23);
    model_t seeded(cfg, weights::cursor(rnd));
    const auto file = through_safetensors(seeded, "siglip_head.safetensors");
    const model_t model(cfg, weights::cursor(file));

    const std::size_t vision = vit_params(cfg.vision, pre_norm_block_params(40, 64)) + 40 * 24 + 24;
    const std::size_t text = 50 * 32 + 6 * 32 + pre_norm_block_params(32, 48) + 2 * 32 + 32 * 24 + 24;
    CHECK(layers::parameter_count(seeded) == vision + text + 2);

    const std::size_t n_img = 2, n_txt = 3;
    const auto images = test::random_vector(n_img * 3 * 32 * 32, 7, 0.5f);
    std::vector<std::int32_t> ids(n_txt * 6);
    for (std::size_t i = 0; i < ids.size(); ++i) ids[i] = static_cast<std::int32_t>((i * 7 + 3) % 50);
    core::workspace ws(model.workspace_floats(n_img, n_txt));
    std::vector<float> img(n_img * 24), txt(n_txt * 24);
    model.embed_images(images.data(), n_img, img.data(), ws);
    model.embed_texts(ids.data(), n_txt, txt.data(), ws);

    // The user's head by hand in double: mean of the tower's tokens, then the dense layer.
    std::vector<float> tokens(n_img * 16 * 40);
    model.vision().forward(images.data(), n_img, layers::image_layout::nchw, tokens.data(), ws);
    const auto w = weights::cursor(file).get<float>("vision.head.weight", {24, 40});  // (out, in)
    const auto b = weights::cursor(file).get<float>("vision.head.bias", {24});
    std::vector<float> by_hand(n_img * 24);
    for (std::size_t i = 0; i < n_img; ++i)
        for (std::size_t o = 0; o < 24; ++o) {
            double s = b.data[o];
            for (std::size_t d = 0; d < 40; ++d) {
                double mean = 0;
                for (std::size_t t = 0; t < 16; ++t) mean += tokens[(i * 16 + t) * 40 + d];
                s += double(w.data[o * 40 + d]) * (mean / 16);
            }
            by_hand[i * 24 + o] = static_cast<float>(s);
        }
    const double err = test::rel_diff(img, by_hand);
    INFO("relative error of the user's head vs double: " << err);
    CHECK(err < 1e-5);

    const auto p = model.scores(img.data(), n_img, txt.data(), n_txt);
    REQUIRE(p.size() == n_img * n_txt);
    CHECK(std::all_of(p.begin(), p.end(), [](float v) { return v > 0.f && v < 1.f; }));

    // Towers that do not meet are refused, naming both widths.
    auto bad = cfg;
    bad.text.embed_dim = 20;
    CHECK_THROWS_WITH(model_t(bad), Catch::Contains("SigLIP towers do not meet") && Catch::Contains("24 vs 20"));
    // A head-less tower asked for a MAP head is refused.
    CHECK_THROWS_WITH((vision_tower<layers::vit_block<>, no_head>(with(vit_sizes::Ti, 16, 32, true))),
                      Catch::Contains("config asks for a MAP head"));
}
