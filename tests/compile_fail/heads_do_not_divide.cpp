// Must NOT compile: 10 heads do not divide a width of 768.
#include <pali3/layers/block.hpp>

using namespace pali3::layers;

struct misfit {
    static constexpr block_config value{{768, 1e-6f}, {768, 10, 0, true}, {768, 3072, true}};
};

int main() {
    fixed_block<misfit, layer_norm, attention<>, mlp<>> block;
    return static_cast<int>(block.config().attn.width);
}
