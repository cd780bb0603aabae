// Runs the PaLI-3 5B preset on this machine: bf16 weights (seeded random, uniform init - the
// output is meaningless, the cost is real), one 224 px image through the vision tower, the
// projector and the UL2 encoder, then a few decoder steps. Prints time per stage, bytes read per
// decoded token and peak RSS. With beams > 1 each step decodes that many rows at once (a beam
// search's step: the weights are still read once per step). With `int8`, every linear layer is
// quantised to int8 as it is loaded (layers::load_int8: a scale per output row): half the bytes
// per step, ~6.7 GB peak instead of ~10.
//   usage: pali3_5b [threads=2] [steps=4] [beams=1] [bf16|int8]
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include <pali3/models/pali3.hpp>
#include <pali3/weights/random_source.hpp>

using namespace pali3;
using clk = std::chrono::steady_clock;

static double seconds_since(clk::time_point t0) { return std::chrono::duration<double>(clk::now() - t0).count(); }
static double peak_rss_gb() {
    rusage u{};
    getrusage(RUSAGE_SELF, &u);
    return static_cast<double>(u.ru_maxrss) / (1024.0 * 1024.0);
}

int main(int argc, char** argv) {
    const std::size_t threads = argc > 1 ? std::strtoul(argv[1], nullptr, 10) : 2;
    const std::size_t steps = argc > 2 ? std::strtoul(argv[2], nullptr, 10) : 4;
    const std::size_t beams = argc > 3 ? std::strtoul(argv[3], nullptr, 10) : 1;
    const std::string dtype = argc > 4 ? argv[4] : "bf16";
    if (threads == 0 || steps == 0 || beams == 0 || (dtype != "bf16" && dtype != "int8")) {
        std::fprintf(stderr, "usage: pali3_5b [threads>=1] [steps>=1] [beams>=1] [bf16|int8]\n");
        return 2;
    }
    const bool int8 = dtype == "int8";
    // Matrices generated directly as bf16: no transient f32 copy (the embedding alone is 2 GB in f32).
    const weights::random_source src(5, weights::random_source::distribution::uniform, weights::dtype::bf16);

    auto t0 = clk::now();
    models::fixed_pali3<models::presets::pali3_5b, bf16> model;
    const auto quantised = int8 ? layers::load_int8(model, weights::cursor(src)) : layers::int8_summary{};
    if (!int8) layers::load(model, weights::cursor(src));
    const double t_load = seconds_since(t0);
    const auto& c = model.config();
    std::printf("PaLI-3 5B preset, %s weights (random: the text is not meaningful), %zu thread(s)\n", dtype.c_str(), threads);
    if (int8) std::printf("  int8: %zu linear layers, %.2f GB with their scales\n", quantised.layers, quantised.bytes / 1e9);
    std::printf("  parameters: vision %zu, projector %zu, text %zu, total %zu\n",
                layers::parameter_count(const_cast<models::vision_tower<bf16>&>(model.vision())),
                c.projector.in * c.projector.out + c.projector.out,
                layers::parameter_count(const_cast<models::t5_v11<bf16>&>(model.text())), layers::parameter_count(model));
    std::printf("  init + load: %.1f s, RSS %.2f GB\n", t_load, peak_rss_gb());

    core::thread_pool pool(threads);
    const std::vector<std::vector<std::int32_t>> prompt{{259, 1203, 7, 88, 4021, 1}};  // ~ "caption en" ids
    const std::size_t n = c.vision.tokens(), d = c.text.d_model, vocab = c.text.vocab;
    core::workspace ws(model.workspace_floats(beams, prompt[0].size(), steps));
    std::vector<float> image(3 * c.vision.image * c.vision.image);
    for (std::size_t i = 0; i < image.size(); ++i) image[i] = static_cast<float>(i % 251) / 125.f - 1.f;
    std::vector<float> memory((n + prompt[0].size()) * d);

    double t_vision = 0, t_projector = 0;
    t0 = clk::now();
    layers::trace marks([&](const std::string& name, std::span<const float>, const shape_t&) {
        if (name == "img.encoder.norm_out") t_vision = seconds_since(t0);
        if (name == "projector_out") t_projector = seconds_since(t0);
    });
    const auto lens = model.encode(image.data(), prompt, memory.data(), ws, pool, marks);
    const double t_encode = seconds_since(t0);
    std::printf("  vision tower (%zu tokens): %.2f s; projector: %.3f s; UL2 encoder (%zu tokens): %.2f s\n", n, t_vision,
                t_projector - t_vision, lens[0], t_encode - t_projector);

    t0 = clk::now();
    auto state = model.start(memory.data(), 1, lens, steps, pool);
    std::printf("  cross-attention K/V for 24 layers: %.2f s\n", seconds_since(t0));
    if (beams > 1) state = state.gather(std::vector<std::size_t>(beams, 0));  // every row from the one prompt
    std::vector<float> logits(beams * vocab);
    std::vector<std::int32_t> ids(beams, 0);
    // Per token: self-attention q/k/v/o and cross-attention q/o (cross k/v are precomputed), the
    // three FFN matrices of every decoder layer, and the lm_head: 2 bytes each in bf16, 1 in int8.
    const double bytes = (c.text.decoder_layers * (6.0 * d * d + 3.0 * d * c.text.d_ff) + double(vocab) * d) * (int8 ? 1 : 2);
    for (std::size_t s = 0; s < steps; ++s) {
        t0 = clk::now();
        model.step(ids.data(), state, logits.data(), ws, pool);
        const double dt = seconds_since(t0);
        for (std::size_t b = 0; b < beams; ++b) {
            const float* row = logits.data() + b * vocab;
            ids[b] = static_cast<std::int32_t>(std::max_element(row, row + vocab) - row);
        }
        std::printf("  decode step %zu (%zu row%s): %.0f ms (%.2f GB of weights read: %.1f GB/s) -> token %d\n", s, beams,
                    beams > 1 ? "s" : "", dt * 1e3, bytes / 1e9, bytes / dt / 1e9, ids[0]);
    }
    std::printf("  peak RSS %.2f GB\n", peak_rss_gb());
}
