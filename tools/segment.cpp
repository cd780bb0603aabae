// pali3 segment IMAGE THING --vqvae V: box and mask of the thing, drawn on an overlay PNG.
#include "common.hpp"
#include "overlay.hpp"

namespace pali3::cli {

void add_segment(CLI::App& app) {
    struct args {
        pipeline::options o;
        std::string image, thing, out = "segment.png";
        bool json = false;
    };
    auto a = std::make_shared<args>();
    auto* c = app.add_subcommand("segment", "box and mask of a thing (prompt \"segment THING\", masks by the VQ-VAE)");
    c->add_option("image", a->image, "image file")->required();
    c->add_option("thing", a->thing, "what to segment")->required();
    c->add_option("--vqvae", a->o.vqvae, "the VQ-VAE mask decoder (big_vision's vae-oid.npz, or examples/models/shapes/vqvae.safetensors)");
    c->add_option("--out", a->out, "overlay PNG to write")->capture_default_str();
    add_pipeline_flags(c, a->o, a->json);
    c->callback([a, c] {
        default_segment_tokens(c, a->o);
        if (a->o.vqvae.empty()) throw value_error(core::describe("missing flag", "--vqvae", "the VQ-VAE mask decoder (vae-oid.npz)", "none"));
        const auto p = open_pali3(a->o);
        auto ans = p->segment(a->image, a->thing);
        report_objects("segment", *p, ans, a->out, a->json);
    });
}

}  // namespace pali3::cli
