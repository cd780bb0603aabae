// pali3 convert IN OUT: any supported naming in (HF, big_vision, ours), ours or HF's out.
#include <pali3/pipeline/convert.hpp>

#include "common.hpp"

namespace pali3::cli {

void add_convert(CLI::App& app) {
    struct args {
        pipeline::config_request config;
        std::string in, out, naming = "pali3", dtype = "f32";
        std::size_t int8_group = 0;
    };
    auto a = std::make_shared<args>();
    auto* c = app.add_subcommand("convert", "rewrite a checkpoint in our naming (config baked in) or HF's (config.json beside)");
    c->add_option("in", a->in, "input checkpoint (safetensors, shards, .npz; any naming)")->required();
    add_nonfinite_flag(c);
    c->add_option("out", a->out, "output .safetensors")->required();
    add_config_flags(c, a->config);
    c->add_option("--naming", a->naming, "output tensor names")->check(CLI::IsMember({"pali3", "hf"}))->capture_default_str();
    c->add_option("--dtype", a->dtype, "output storage: f32, bf16, or int8 (each linear layer's matrix as I8 values + an F32 "
                                       "NAME_scale tensor, the rest bf16; our naming only)")
        ->check(CLI::IsMember({"f32", "bf16", "int8"}))
        ->capture_default_str();
    c->add_option("--int8-group", a->int8_group, "with --dtype int8: a scale per row (0) or per this many values along the input (a multiple of 32)")
        ->check(CLI::Range(std::size_t{0}, std::size_t{1} << 20))
        ->capture_default_str();
    c->callback([a] {
        pipeline::check_dtype(a->dtype, a->int8_group);
        if (a->dtype == "int8" && a->naming != "pali3")
            throw value_error(core::describe("int8 checkpoint naming", "--naming", "pali3 (int8 weights are written in our naming)", a->naming));
        const auto ckpt = weights::checkpoint::open(a->in);
        const auto found = pipeline::require_config(a->config, &ckpt, a->in);
        pipeline::stopwatch sw;
        const auto naming = weights::detect_naming(ckpt.names());
        const weights::mapped_source src(ckpt, weights::rules_for(naming, models::kind_name(found.config.kind)));
        const auto ours = pipeline::load_and_save(found.config, a->dtype, src, models::runtime_models{}, a->int8_group);
        pipeline::write_checkpoint(a->out, ours, found.config, a->naming, a->int8_group);
        std::printf("converted %s (%s) -> %s (%s naming, %s): %zu tensors in %.1f s\n", a->in.c_str(),
                    std::string(weights::naming_name(naming)).c_str(), a->out.c_str(), a->naming.c_str(), a->dtype.c_str(),
                    ours.size(), sw.seconds());
    });
}

}  // namespace pali3::cli
