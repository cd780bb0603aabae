// Must NOT compile: a ViT-L vision tower (1024) feeding a projector built for G-opt (1536).
#include <pali3/models/pali3.hpp>

using namespace pali3::models;

struct misfit {
    static constexpr pali3_config value{with(vit_sizes::L, 14, 224), {1536, 2048}, t5_sizes::xl()};
};

int main() {
    fixed_pali3<misfit> model;
    return static_cast<int>(model.config().text.d_model);
}
