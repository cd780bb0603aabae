// pali3 init OUT --preset P: seeded random weights for any config, in our naming or HF's.
#include <pali3/pipeline/convert.hpp>
#include <pali3/weights/random_source.hpp>

#include "common.hpp"

namespace pali3::cli {

void add_init(CLI::App& app) {
    struct args {
        pipeline::config_request config;
        std::string out, naming = "pali3", dtype = "f32";
        std::uint64_t seed = 1;
    };
    auto a = std::make_shared<args>();
    auto* c = app.add_subcommand("init", "seeded random weights for a config, written as safetensors");
    c->add_option("out", a->out, "output .safetensors")->required();
    add_config_flags(c, a->config);
    c->add_option("--seed", a->seed, "random seed")->capture_default_str();
    c->add_option("--naming", a->naming, "tensor names: ours (config in the metadata) or HF (config.json beside)")
        ->check(CLI::IsMember({"pali3", "hf"}))->capture_default_str();
    c->add_option("--dtype", a->dtype, "weight storage")->check(CLI::IsMember({"f32", "bf16"}))->capture_default_str();
    c->callback([a] {
        const auto found = pipeline::find_config(a->config, nullptr);
        if (!found) throw config_error(core::describe("no config", "pali3 init", "--preset P or --config JSON", "none"));
        pipeline::stopwatch sw;
        const weights::random_source rnd(a->seed);
        const auto ours = pipeline::load_and_save(found->config, a->dtype, rnd);
        pipeline::write_checkpoint(a->out, ours, found->config, a->naming);
        std::printf("wrote %s: %zu tensors, seeded random weights (%llu), %s naming, %s, in %.1f s\n", a->out.c_str(), ours.size(),
                    static_cast<unsigned long long>(a->seed), a->naming.c_str(), a->dtype.c_str(), sw.seconds());
    });
}

}  // namespace pali3::cli
