// Composing a variant: a ViT-S/16 tower whose MLP weights are bf16, plugged into a PaLI-3 with a
// T5 v1.0 text model, seeded random weights (a checkpoint source instead: same names, same code).
#include <algorithm>
#include <cstdio>
#include <vector>
#include <pali3/models/pali3.hpp>
#include <pali3/weights/random_source.hpp>

using namespace pali3;
using namespace pali3::models;

// The parts are types; a misfit between them is a compile error naming the part.
using my_block = layers::pre_norm_block<layers::layer_norm, layers::attention<>, layers::mlp<kernels::act::gelu_tanh, bf16>>;
using my_pali3 = pali3_model<vision_tower<my_block, no_head>, linear_projector<>, t5_v10<>>;
// The sizes are a value, each written once: ViT-S, patch 16, 224 px; T5 v1.0 small, 1000 tokens.
constexpr auto config = pali3_of(with(vit_sizes::S, 16, 224), t5_sizes::v10_small(1000));

int main() {
    const weights::random_source src(42);
    my_pali3 model(config, weights::cursor(src));
    core::thread_pool pool(2);
    const std::vector<std::vector<std::int32_t>> prompt{{5, 17, 3}};
    core::workspace ws(model.workspace_floats(1, 3, 8));
    std::vector<float> image(3 * 224 * 224), memory(model.sequence_length(3) * config.text.d_model);
    for (std::size_t i = 0; i < image.size(); ++i) image[i] = static_cast<float>(i % 255) / 127.5f - 1.f;
    const layers::trace tr([](const std::string& name, std::span<const float> v, const shape_t& s) {
        if (name.starts_with("img") && name.ends_with("mlp_out")) std::printf("  %-24s %s %+.4f\n", name.c_str(), shape_string(s).c_str(), v[0]);
    });
    const auto lens = model.encode(image.data(), prompt, memory.data(), ws, pool, tr);
    auto state = model.start(memory.data(), 1, lens, 8, pool);
    std::vector<float> logits(config.text.vocab);
    std::int32_t id = 0;  // the decoder start token, then greedy
    std::printf("ViT-S/16 (bf16 MLP) + T5 v1.0 small, %zu parameters; tokens:", layers::parameter_count(model));
    for (int s = 0; s < 8; ++s) {
        model.step(&id, state, logits.data(), ws, pool);
        id = static_cast<std::int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
        std::printf(" %d", id);
    }
    std::printf("\n");
}
