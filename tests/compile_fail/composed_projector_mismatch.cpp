// Must NOT compile: a composed PaLI-3 (a ViT-S/16 tower without head, T5 v1.0 small) whose preset
// gives the projector a ViT-B input width. CTest passes when the message names the misfit.
#include <pali3/models/pali3.hpp>

using namespace pali3::models;

using composed = pali3_model<vision_tower<pali3::layers::vit_block<>, no_head>, linear_projector<>, t5_v10<>>;

struct misfit {
    static constexpr pali3_config value{with(vit_sizes::S, 16, 224), {768, 512}, t5_sizes::v10_small()};
};

int main() {
    fixed_pali3<misfit, composed> model;
    return static_cast<int>(model.config().text.d_model);
}
