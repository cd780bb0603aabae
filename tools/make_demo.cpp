// pali3 make-demo DIR: a tiny PaLI-3 with random weights (safetensors, config in the metadata), a
// sentencepiece tokenizer trained on the bundled corpus, and a VQ-VAE mask decoder (.npz).
#include <filesystem>

#include <pali3/layers/module.hpp>
#include <pali3/text/trainer.hpp>
#include <pali3/vision/vqvae.hpp>
#include <pali3/weights/npz.hpp>
#include <pali3/weights/random_source.hpp>
#include <pali3/weights/safetensors.hpp>

#include "common.hpp"

namespace pali3::cli {

namespace {
models::pali3_config demo_config(std::size_t vocab) {
    // 64 px, patch 8: 64 visual tokens; widths 64.
    return models::pali3_of(models::vit_config{64, 2, 128, 4, 8, 64}, models::t5_config{vocab, 64, 128, 4, 16, 2, 2});
}
}  // namespace

void add_make_demo(CLI::App& app) {
    struct args {
        std::string dir, corpus = std::string(PALI3_SOURCE_DIR) + "/examples/data/corpus.txt";
        std::uint64_t seed = 2023;
    };
    auto a = std::make_shared<args>();
    auto* c = app.add_subcommand("make-demo", "a tiny PaLI-3 (RANDOM weights), a trained tokenizer and a VQ-VAE in DIR");
    c->add_option("dir", a->dir, "output directory")->required();
    c->add_option("--seed", a->seed, "random seed of the weights")->capture_default_str();
    c->add_option("--corpus", a->corpus, "text to train the tokenizer on")->capture_default_str();
    c->callback([a] {
        const std::filesystem::path dir = a->dir;
        std::filesystem::create_directories(dir);
        pipeline::timings tm;
        pipeline::stopwatch sw;
        const std::string model_path = text::train_tokenizer(a->corpus, (dir / "tokenizer").string(), 300, false);
        const auto tok = text::tokenizer::load(model_path);
        tm.add("train tokenizer", sw.ms());
        std::printf("tokenizer: %s (%zu pieces + 1024 <loc> + 128 <seg> = %zu ids), trained on %s\n", model_path.c_str(),
                    tok.model_pieces(), tok.vocab_size(), a->corpus.c_str());
        sw.reset();
        models::any_config cfg;
        cfg.kind = models::model_kind::pali3;
        cfg.pali = demo_config(tok.vocab_size());
        const weights::random_source rnd(a->seed);
        models::pali3_model<float> model(cfg.pali, weights::cursor(rnd));
        weights::memory_source saved;
        layers::save(model, saved);
        const std::string weights_path = (dir / "model.safetensors").string();
        weights::write_safetensors(weights_path, saved, {{std::string(models::config_metadata_key), models::config_to_string(cfg)}});
        tm.add("write model", sw.ms());
        std::printf("model: %s (%zu parameters, RANDOM weights seeded %llu: outputs are not meaningful)\n", weights_path.c_str(),
                    layers::parameter_count(model), static_cast<unsigned long long>(a->seed));
        sw.reset();
        vision::vqvae_decoder vae(vision::vqvae_config{}, weights::cursor(rnd, "vqvae"));
        weights::memory_source vae_saved;
        layers::save(vae, vae_saved);
        const std::string vae_path = (dir / "vae.npz").string();
        weights::write_npz(vae_path, vae_saved);
        tm.add("write VQ-VAE", sw.ms());
        std::printf("VQ-VAE mask decoder: %s (vae-oid names, random weights)\n", vae_path.c_str());
        print_timings(tm);
    });
}

}  // namespace pali3::cli
