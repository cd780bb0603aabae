// pali3 embed IMAGE --weights SIGLIP [--texts "a|b" --tokenizer T]: the SigLIP image embedding;
// with a two-tower checkpoint, zero-shot probabilities sigmoid(t <img, txt> + b) for each text.
#include <cmath>

#include "common.hpp"

namespace pali3::cli {

void add_embed(CLI::App& app) {
    struct args {
        pipeline::siglip_options o;
        std::string image, pixels, texts;
        bool json = false;
    };
    auto a = std::make_shared<args>();
    auto* c = app.add_subcommand("embed", "SigLIP image embedding; zero-shot scores of --texts with a two-tower checkpoint");
    c->add_option("image", a->image, "image file");
    c->add_option("--pixels", a->pixels, "preprocessed (1, 3, S, S) float32 .npy instead of an image");
    c->add_option("--weights", a->o.weights, "SigLIP checkpoint: vision tower, or both towers (SiglipModel)");
    add_nonfinite_flag(c);
    c->add_option("--texts", a->texts, "labels joined by '|', e.g. \"a cat|a dog\"");
    c->add_option("--tokenizer", a->o.tokenizer, "the text tower's sentencepiece model (with --texts)");
    c->add_option("--threads", a->o.threads, "worker threads")->check(CLI::Range(std::size_t{1}, max_threads))->capture_default_str();
    add_preprocessing_flags(c, a->o.preprocessing);
    add_config_flags(c, a->o.config);
    add_memory_flag(c, a->o.max_memory);
    c->add_flag("--json", a->json, "print one JSON object (embedding, scores, timings)");
    c->callback([a] {
        const std::string image = a->pixels.empty() ? a->image : a->pixels;
        if (image.empty()) throw value_error(core::describe("no image", "pali3 embed", "IMAGE or --pixels X.npy", "neither"));
        std::vector<std::string> labels;
        for (std::size_t p = 0; !a->texts.empty() && p <= a->texts.size();) {
            const auto bar = a->texts.find('|', p);
            labels.push_back(a->texts.substr(p, bar == std::string::npos ? std::string::npos : bar - p));
            if (bar == std::string::npos) break;
            p = bar + 1;
        }
        const auto p = open_siglip(a->o);
        if (!labels.empty() && !p->has_text())
            throw config_error(core::describe("--texts needs both SigLIP towers", a->o.weights,
                                              "a SiglipModel checkpoint (vision_model + text_model)", "a vision tower alone"));
        const auto img = p->embed_image(image);
        std::vector<float> probs;
        if (!labels.empty()) probs = p->scores(img, p->embed_texts(labels), labels.size());
        double norm = 0;
        for (const float v : img) norm += static_cast<double>(v) * v;
        if (a->json) {
            json::value v = json::value::make_object();
            v.set("command", json::string("embed"));
            json::value e = json::value::make_array();
            for (const float x : img) e.push(json::number(double(x)));
            v.set("embedding", std::move(e));
            v.set("l2_norm", json::number(std::sqrt(norm)));
            json::value s = json::value::make_array();
            for (std::size_t i = 0; i < probs.size(); ++i) {
                json::value o = json::value::make_object();
                o.set("text", json::string(labels[i]));
                o.set("probability", json::number(double(probs[i])));
                s.push(std::move(o));
            }
            v.set("scores", std::move(s));
            v.set("preprocessing", json::string(p->preprocessing_source()));
            v.set("timings_ms", timings_json(p->times()));
            return print_json(v);
        }
        std::printf("preprocessing: %s\n", p->preprocessing_source().c_str());
        std::printf("image embedding (%zu values, L2 norm %.4f):", img.size(), std::sqrt(norm));
        for (std::size_t i = 0; i < std::min<std::size_t>(8, img.size()); ++i) std::printf(" %.5f", img[i]);
        std::printf(" ...\n");
        if (!labels.empty()) {
            std::printf("zero-shot (t = %.3f, b = %.3f):\n", std::exp(p->log_t()), p->bias());
            for (std::size_t i = 0; i < labels.size(); ++i) std::printf("  %.4f  %s\n", probs[i], labels[i].c_str());
        }
        print_timings(p->times());
    });
}

}  // namespace pali3::cli
