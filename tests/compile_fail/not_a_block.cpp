// Must NOT compile: a LayerNorm given to a vision tower where a transformer block belongs.
// CTest passes when the message says which part does not fit and what it lacks.
#include <pali3/models/vit.hpp>

using namespace pali3::models;

int main() {
    vision_tower<pali3::layers::layer_norm, no_head> tower(with(vit_sizes::Ti, 16, 224));
    return static_cast<int>(tower.config().width);
}
