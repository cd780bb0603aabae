// Composing a custom vision tower from pali3 layers in under a page: a ViT-S/16-shaped encoder
// at 224 px with a bf16 MLP, seeded random weights, run on one image with named activations.
#include <cstdio>
#include <vector>

#include <pali3/layers/block.hpp>
#include <pali3/layers/vision.hpp>
#include <pali3/weights/random_source.hpp>

using namespace pali3;
using namespace pali3::layers;

// The block config fixed at compile time: a misfit here (say mlp width 400) is a compile error.
struct vit_s16 {
    static constexpr block_config value{{384, 1e-6f}, {384, 6, 0, true}, {384, 1536, true}};
};
using my_block = pre_norm_block<layer_norm, attention<attn::inv_sqrt_dim, float>, mlp<kernels::act::gelu_tanh, bf16>>;
static_assert(check_fit(vit_s16::value).ok());

int main() {
    const weights::random_source src(42);  // swap for a checkpoint source: same names, same code
    const weights::cursor root(src, "img");
    patch_embedding<> embed({3, 16, 384}, root.pp("embedding"));
    learned_position_embedding pos({14, 14, 384}, root.pp("pos_embedding"));
    stack<my_block> encoder({vit_s16::value, 12, true, std::nullopt}, root.pp("encoder"));

    const std::size_t h = 224, w = 224;
    std::vector<float> image(3 * h * w);
    for (std::size_t i = 0; i < image.size(); ++i) image[i] = static_cast<float>(i % 255) / 127.5f - 1.f;
    const auto [gh, gw] = embed.grid(h, w);
    std::vector<float> tokens(gh * gw * 384);  // (196, 384)

    core::thread_pool pool(2);
    core::workspace ws(std::max(decltype(embed)::workspace_floats(embed.config(), 1, h, w), encoder.workspace_floats(1, gh * gw)));
    embed.forward(image.data(), 1, h, w, image_layout::nchw, tokens.data(), ws, pool);
    pos.add_to(tokens.data(), 1, gh, gw);
    trace tr([](const std::string& name, std::span<const float> v, const shape_t& s) {
        if (name.ends_with("mlp_out")) std::printf("  %-28s %s first %+.4f\n", name.c_str(), shape_string(s).c_str(), v[0]);
    }, "img.encoder");
    encoder.forward(tokens.data(), 1, gh * gw, ws, pool, {}, {}, tr);

    std::size_t params = parameter_count(embed) + parameter_count(pos) + parameter_count(encoder);
    std::printf("ViT-S/16 variant: %zu tokens x %zu, %zu parameters, token 0 starts %+.4f %+.4f\n", gh * gw,
                std::size_t{384}, params, tokens[0], tokens[1]);
}
