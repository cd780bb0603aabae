// The SigLIP ViT's sizes as a value: vit_config (usable at compile time as a preset and at run
// time from a file), big_vision's size table, named presets, and vit_variant("B/16").
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <utility>

#include "pali3/core/error.hpp"
#include "pali3/layers/concepts.hpp"

namespace pali3::models {

struct vit_config {
    std::size_t width = 0, depth = 0, mlp = 0, heads = 0;
    std::size_t patch = 14;
    std::size_t image = 224;        // resolution the tower runs at (square)
    std::size_t posemb_grid = 0;    // grid side the position table was trained at; 0: image / patch
    bool map_head = false;
    std::size_t channels = 3;
    float eps = 1e-6f;                                                          // every LayerNorm's
    kernels::activation_id activation = kernels::activation_id::gelu_tanh;     // every MLP's

    constexpr std::size_t grid() const { return patch ? image / patch : 0; }
    constexpr std::size_t tokens() const { return grid() * grid(); }
    constexpr std::size_t table_grid() const { return posemb_grid ? posemb_grid : grid(); }
    constexpr layers::block_config block() const {
        return {{width, eps}, {width, heads, 0, true}, {width, mlp, true, activation}};
    }
};

inline constexpr std::size_t max_image_grid = 256;

inline void check(const vit_config& c) {
    if (c.patch == 0 || c.image == 0 || c.image % c.patch != 0)
        throw config_error(core::describe("image size is not a multiple of the patch size", "vit_config",
                                          "image % patch == 0", std::to_string(c.image) + " % " + std::to_string(c.patch)));
    if (c.depth == 0) throw config_error(core::describe("ViT depth", "vit_config", "> 0", 0));
    // Attention over more patches than this costs hours per image on a CPU (PaLI-3 at 1064 px has
    // 76 x 76); the bound also keeps every token count's products far from wrapping.
    const std::size_t g = c.image / c.patch;
    if (g > max_image_grid)
        throw config_error(core::describe("image too large for the tower", "vit_config",
                                          "at most a " + std::to_string(max_image_grid) + " x " + std::to_string(max_image_grid) +
                                              " grid of patches",
                                          std::to_string(c.image) + " px / patch " + std::to_string(c.patch) + " = " +
                                              std::to_string(g) + " x " + std::to_string(g)));
    if (c.posemb_grid > max_image_grid)
        throw config_error(core::describe("position table too large", "vit_config posemb_grid",
                                          "at most " + std::to_string(max_image_grid), c.posemb_grid));
    layers::check(c.block(), "vit_config block");
}

// Variant sizes (width, depth, mlp, heads) from big_vision models/vit.py decode_variant;
// G-opt is PaLI-3's "ViT-G" with width 1536 (PaLI-3 paper, footnote on hardware utilisation).
namespace vit_sizes {
inline constexpr vit_config Ti{192, 12, 768, 3};
inline constexpr vit_config S{384, 12, 1536, 6};
inline constexpr vit_config M{512, 12, 2048, 8};
inline constexpr vit_config B{768, 12, 3072, 12};
inline constexpr vit_config L{1024, 24, 4096, 16};
inline constexpr vit_config So400m{1152, 27, 4304, 16};
inline constexpr vit_config H{1280, 32, 5120, 16};
inline constexpr vit_config g{1408, 40, 6144, 16};
inline constexpr vit_config G{1664, 48, 8192, 16};
inline constexpr vit_config G_opt{1536, 48, 8192, 16};
inline constexpr vit_config e{1792, 56, 15360, 16};
}  // namespace vit_sizes

// Intent in, config out: a size from the table, a patch, a resolution (and the grid the position
// table was trained at, when it differs: PaLI-3 812/1064 px from a 224 px table is 16).
constexpr vit_config with(vit_config c, std::size_t patch, std::size_t image, bool map_head = false,
                          std::size_t posemb_grid = 0) {
    c.patch = patch;
    c.image = image;
    c.map_head = map_head;
    c.posemb_grid = posemb_grid;
    return c;
}

// Named presets: a type per configuration, usable as a compile-time constant.
namespace presets {
struct vit_b16_224 { static constexpr vit_config value = with(vit_sizes::B, 16, 224); };
struct vit_so400m14_224 { static constexpr vit_config value = with(vit_sizes::So400m, 14, 224); };
struct vit_g14_224 { static constexpr vit_config value = with(vit_sizes::G, 14, 224); };
struct vit_g_opt14_224 { static constexpr vit_config value = with(vit_sizes::G_opt, 14, 224); };
struct vit_g_opt14_812 { static constexpr vit_config value = with(vit_sizes::G_opt, 14, 812); };
struct vit_g_opt14_1064 { static constexpr vit_config value = with(vit_sizes::G_opt, 14, 1064); };
}  // namespace presets

// A size by big_vision's name ("B/16", "G-opt/14", "So400m/14"...) at a resolution; checked.
inline vit_config vit_variant(std::string_view name, std::size_t image = 224) {
    const auto slash = name.find('/');
    if (slash == std::string_view::npos)
        throw config_error(core::describe("ViT variant name", "vit_variant", "SIZE/PATCH, e.g. B/16", name));
    const std::string_view size = name.substr(0, slash);
    const std::size_t patch = static_cast<std::size_t>(std::stoul(std::string(name.substr(slash + 1))));
    const std::pair<std::string_view, vit_config> table[] = {
        {"Ti", vit_sizes::Ti}, {"S", vit_sizes::S},   {"M", vit_sizes::M}, {"B", vit_sizes::B},
        {"L", vit_sizes::L},   {"So400m", vit_sizes::So400m}, {"H", vit_sizes::H}, {"g", vit_sizes::g},
        {"G", vit_sizes::G},   {"G-opt", vit_sizes::G_opt},   {"e", vit_sizes::e}};
    for (const auto& [n, c] : table)
        if (n == size) {
            const vit_config out = with(c, patch, image);
            check(out);
            return out;
        }
    throw config_error(core::describe("unknown ViT size", name, "Ti, S, M, B, L, So400m, H, g, G, G-opt, e", size));
}

}  // namespace pali3::models
