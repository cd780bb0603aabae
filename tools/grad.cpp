// pali3 grad: d(loss)/d(parameter) of a checkpoint on one batch, one float32 .npy per tensor named
// exactly as in the checkpoint (HF names in, HF names out), plus loss.npy: the way to check our
// gradients against PyTorch's autograd on the same file (docs/training.md).
#include <filesystem>

#include <pali3/pipeline/gradients.hpp>

#include "common.hpp"

namespace pali3::cli {

void add_grad(CLI::App& app) {
    struct args {
        pipeline::config_request config;
        std::string weights, out = "grads", enc, mask, dec, targets, pixels, text;
        float smoothing = 0.f;
        std::size_t threads = 2;
        bool json = false;
    };
    auto a = std::make_shared<args>();
    auto* c = app.add_subcommand("grad", "d(loss)/d(parameter) of a checkpoint on a batch, as DIR/<checkpoint name>.npy");
    c->add_option("--weights", a->weights, "checkpoint (any naming; gradients come back in its names)")->required();
    add_nonfinite_flag(c);
    c->add_option("--out", a->out, "directory for the .npy files")->capture_default_str();
    c->add_option("--encoder-ids", a->enc, "T5: encoder ids; PaLI-3: prompt ids (batch, length) integer .npy");
    c->add_option("--encoder-mask", a->mask, "HF attention_mask for --encoder-ids: 0/1 per id, any pattern (.npy)");
    c->add_option("--decoder-ids", a->dec, "decoder input ids (batch, length), start token first (.npy)");
    c->add_option("--targets", a->targets, "target ids (batch, length), -100 ignored (.npy)");
    c->add_option("--pixels", a->pixels, "PaLI-3, SigLIP: (batch, 3, S, S) float32 .npy in [-1, 1]");
    c->add_option("--text-ids", a->text, "SigLIP: (batch, max_len) integer .npy, padded as SigLIP pads");
    c->add_option("--label-smoothing", a->smoothing, "T5, PaLI-3: label smoothing")->check(CLI::Range(0.f, 0.999f))->capture_default_str();
    c->add_option("--threads", a->threads, "worker threads")->check(CLI::Range(std::size_t{1}, max_threads))->capture_default_str();
    c->add_flag("--json", a->json, "one JSON object: loss, counted, tensors");
    add_config_flags(c, a->config);
    c->callback([a] {
        const auto ckpt = weights::checkpoint::open(a->weights);
        const auto found = pipeline::require_config(a->config, &ckpt, a->weights);
        pipeline::grad_inputs in;
        constexpr std::int64_t big = INT32_MAX;
        if (!a->enc.empty()) in.encoder_ids = pipeline::read_ids_npy(a->enc, 0, big);
        if (!a->mask.empty()) in.encoder_mask = pipeline::read_ids_npy(a->mask, 0, 1);
        if (!a->dec.empty()) in.decoder_ids = pipeline::read_ids_npy(a->dec, 0, big);
        if (!a->targets.empty()) in.targets = pipeline::read_ids_npy(a->targets, -100, big);
        if (!a->text.empty()) in.text_ids = pipeline::read_ids_npy(a->text, 0, big);
        if (!a->pixels.empty()) in.pixels = pipeline::read_pixels_npy(a->pixels, found.config.vision.image);
        in.label_smoothing = a->smoothing;
        auto r = pipeline::compute_gradients(found.config, ckpt, in, a->threads);
        namespace fs = std::filesystem;
        fs::create_directories(a->out);
        std::size_t bytes = 0;
        for (const auto& name : r.grads.names()) {
            const fs::path p = fs::path(a->out) / (name + ".npy");
            fs::create_directories(p.parent_path());
            const std::string b = weights::npy_bytes(*r.grads.find(name));
            weights::write_file(p.string(), b);
            bytes += b.size();
        }
        const float loss = static_cast<float>(r.loss);
        weights::write_file((fs::path(a->out) / "loss.npy").string(), weights::npy_bytes("<f4", {}, &loss, 4));
        if (a->json) {
            json::value v = json::value::make_object();
            v.set("command", json::string("grad"));
            v.set("loss", json::number(r.loss));
            v.set("counted", json::number(static_cast<std::uint64_t>(r.counted)));
            v.set("tensors", json::number(static_cast<std::uint64_t>(r.grads.size())));
            v.set("out", json::string(a->out));
            std::printf("%s\n", json::dump(v).c_str());
            return;
        }
        std::printf("config (%s): %s\n", found.source.c_str(), models::config_to_string(found.config).c_str());
        std::printf("loss %.6f over %zu %s\n", r.loss, r.counted,
                    found.config.kind == models::model_kind::siglip ? "pairs" : "targets");
        std::printf("wrote %zu gradients (%s) and loss.npy to %s\n", r.grads.size(),
                    pipeline::human_bytes(static_cast<double>(bytes)).c_str(), a->out.c_str());
        print_timings(r.times);
    });
}

}  // namespace pali3::cli
