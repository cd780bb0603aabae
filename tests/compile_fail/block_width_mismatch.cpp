// Must NOT compile: a ViT-B block whose MLP is 1024 wide on a 768-wide attention.
// CTest builds this target and passes when the compiler's message names the misfit.
#include <pali3/layers/block.hpp>

using namespace pali3::layers;

struct misfit {
    static constexpr block_config value{{768, 1e-6f}, {768, 12, 0, true}, {1024, 3072, true}};
};

int main() {
    fixed_block<misfit, layer_norm, attention<>, mlp<>> block;
    return static_cast<int>(block.config().attn.width);
}
