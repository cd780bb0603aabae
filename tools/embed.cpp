// pali3 embed IMAGE --weights SIGLIP [--texts "a|b" --tokenizer T]: the SigLIP image embedding;
// with a two-tower checkpoint, zero-shot probabilities sigmoid(t <img, txt> + b) for each text.
#include <cmath>

#include "common.hpp"

namespace pali3::cli {

void add_embed(CLI::App& app) {
    struct args {
        pipeline::siglip_options o;
        std::vector<std::string> images;
        std::string pixels, texts;
        bool json = false;
    };
    auto a = std::make_shared<args>();
    auto* c = app.add_subcommand("embed", "SigLIP image embeddings; zero-shot scores of --texts with a two-tower checkpoint");
    c->add_option("images", a->images, "image files (one batch: each gives what it gives alone)");
    c->add_option("--pixels", a->pixels, "preprocessed (n, 3, S, S) float32 .npy instead of images");
    c->add_option("--weights", a->o.weights, "SigLIP checkpoint: vision tower, or both towers (SiglipModel)");
    add_nonfinite_flag(c);
    c->add_option("--texts", a->texts, "labels joined by '|', e.g. \"a cat|a dog\"");
    c->add_option("--tokenizer", a->o.tokenizer, "the text tower's sentencepiece model (with --texts)");
    c->add_option("--threads", a->o.threads, "worker threads")->check(CLI::Range(std::size_t{1}, max_threads))->capture_default_str();
    add_dtype_flags(c, a->o.dtype, a->o.int8_group);
    add_preprocessing_flags(c, a->o.preprocessing);
    add_config_flags(c, a->o.config);
    add_memory_flag(c, a->o.max_memory);
    c->add_flag("--json", a->json, "print one JSON object (embeddings, scores, timings)");
    c->callback([a] {
        std::vector<std::string> images = a->images;
        if (!a->pixels.empty()) images.push_back(a->pixels);
        if (images.empty()) throw value_error(core::describe("no image", "pali3 embed", "IMAGE... or --pixels X.npy", "neither"));
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
        std::vector<std::size_t> counts;  // images per file
        const auto img = p->embed_images(images, &counts);
        const std::size_t dim = p->embed_dim(), n = img.size() / dim;
        std::vector<float> probs;  // (n, labels)
        if (!labels.empty()) probs = p->scores(img, p->embed_texts(labels), labels.size());
        // The name of row i: the file, or file[k] for the k-th image of a pixels .npy.
        std::vector<std::string> names;
        for (std::size_t f = 0; f < images.size(); ++f)
            for (std::size_t k = 0; k < counts[f]; ++k) names.push_back(counts[f] > 1 ? images[f] + "[" + std::to_string(k) + "]" : images[f]);
        auto norm_of = [&](std::size_t i) {
            double s = 0;
            for (std::size_t d = 0; d < dim; ++d) s += static_cast<double>(img[i * dim + d]) * img[i * dim + d];
            return std::sqrt(s);
        };
        auto add_image = [&](json::value& v, std::size_t i) {
            json::value e = json::value::make_array();
            for (std::size_t d = 0; d < dim; ++d) e.push(json::number(double(img[i * dim + d])));
            v.set("embedding", std::move(e));
            v.set("l2_norm", json::number(norm_of(i)));
            json::value s = json::value::make_array();
            for (std::size_t j = 0; j < labels.size(); ++j) {
                json::value o = json::value::make_object();
                o.set("text", json::string(labels[j]));
                o.set("probability", json::number(double(probs[i * labels.size() + j])));
                s.push(std::move(o));
            }
            v.set("scores", std::move(s));
        };
        if (a->json) {
            // One image: its fields at the top too (as before batches); "images": one object per image.
            json::value v = json::value::make_object();
            v.set("command", json::string("embed"));
            if (n == 1) add_image(v, 0);
            json::value all = json::value::make_array();
            for (std::size_t i = 0; i < n; ++i) {
                json::value o = json::value::make_object();
                o.set("image", json::string(names[i]));
                add_image(o, i);
                all.push(std::move(o));
            }
            v.set("images", std::move(all));
            v.set("preprocessing", json::string(p->preprocessing_source()));
            v.set("timings_ms", timings_json(p->times()));
            return print_json(v);
        }
        std::printf("preprocessing: %s\n", p->preprocessing_source().c_str());
        for (std::size_t i = 0; i < n; ++i) {
            if (n > 1) std::printf("%s\n", names[i].c_str());
            std::printf("image embedding (%zu values, L2 norm %.4f):", dim, norm_of(i));
            for (std::size_t d = 0; d < std::min<std::size_t>(8, dim); ++d) std::printf(" %.5f", img[i * dim + d]);
            std::printf(" ...\n");
            if (!labels.empty()) {
                std::printf("zero-shot (t = %.3f, b = %.3f):\n", std::exp(p->log_t()), p->bias());
                for (std::size_t j = 0; j < labels.size(); ++j) std::printf("  %.4f  %s\n", probs[i * labels.size() + j], labels[j].c_str());
            }
        }
        print_timings(p->times());
    });
}

}  // namespace pali3::cli
