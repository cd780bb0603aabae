// pali3 make-scenes: the world of shapes (docs/shapes.md) as files: DIR/NNNNNN.png (or .jpg), the ground
// truth DIR/scenes.jsonl (objects with pixel boxes, caption, questions and answers) and the
// training examples DIR/train.jsonl that `pali3 train` reads (PaLI-3 prefix/suffix; "text" = the
// caption, for SigLIP).
#include <filesystem>
#include <fstream>
#include <random>

#include <pali3/data/shapes.hpp>
#include <pali3/io/image.hpp>
#include <pali3/text/trainer.hpp>

#include "common.hpp"

namespace pali3::cli {

void add_make_scenes(CLI::App& app) {
    struct args {
        std::string dir;
        std::size_t count = 1000, seed = 0, max_objects = 3;
        bool no_antialias = false, tokenizer = false;
        float noise = 4.f;
        std::vector<int> jpeg;  // quality range; empty: PNG
    };
    auto a = std::make_shared<args>();
    auto* c = app.add_subcommand("make-scenes", "scenes of coloured shapes with their captions, boxes and answers (docs/shapes.md)");
    c->add_option("dir", a->dir, "output directory")->required();
    c->add_option("--count", a->count, "number of scenes")->check(CLI::Range(std::size_t{1}, std::size_t{1000000}))->capture_default_str();
    c->add_option("--seed", a->seed, "scene i of a seed is the same everywhere")->capture_default_str();
    c->add_option("--max-objects", a->max_objects, "objects per scene, 1..3")->check(CLI::Range(std::size_t{1}, std::size_t{3}))->capture_default_str();
    c->add_option("--noise", a->noise, "largest pixel noise sigma")->check(CLI::Range(0.f, 4.f))->capture_default_str();
    c->add_flag("--no-antialias", a->no_antialias, "hard shape edges");
    c->add_option("--jpeg", a->jpeg, "write JPEGs, each at a quality drawn from LO..HI (the spec allows >= 85), not PNGs")
        ->expected(2)
        ->check(CLI::Range(1, 100));
    c->add_flag("--tokenizer", a->tokenizer, "also train DIR/tokenizer.model on the world's words (PaLI's <loc>/<seg> added on load)");
    c->callback([a] {
        namespace fs = std::filesystem;
        fs::create_directories(a->dir);
        std::ofstream truth(fs::path(a->dir) / "scenes.jsonl"), train(fs::path(a->dir) / "train.jsonl");
        // SigLIP pairs: every scene with its caption, and the single-object scenes alone (the
        // 12 "a {colour} {shape}" captions: the stage that teaches shapes, docs/shapes.md).
        std::ofstream pairs(fs::path(a->dir) / "siglip.jsonl"), singles(fs::path(a->dir) / "siglip_single.jsonl");
        if (!truth || !train || !pairs || !singles) throw value_error(core::describe("cannot write", a->dir, "a writable directory", "open failed"));
        data::scene_options o;
        o.antialias = !a->no_antialias;
        o.max_noise = a->noise;
        o.max_objects = a->max_objects;
        if (!a->jpeg.empty() && a->jpeg[0] > a->jpeg[1])
            throw value_error(core::describe("JPEG quality range", "--jpeg", "LO <= HI", std::to_string(a->jpeg[0]) + " " + std::to_string(a->jpeg[1])));
        std::mt19937_64 gen(a->seed + 17), quality_gen(a->seed + 29);
        std::size_t examples = 0;
        for (std::size_t i = 0; i < a->count; ++i) {
            const auto sc = data::make_scene(a->seed, i, o);
            char name[32];
            std::snprintf(name, sizeof name, a->jpeg.empty() ? "%06zu.png" : "%06zu.jpg", i);
            const auto path = (fs::path(a->dir) / name).string();
            if (a->jpeg.empty())
                io::write_png(path, data::scene_side, data::scene_side, 3, sc.rgb.data());
            else
                io::write_jpeg(path, data::scene_side, data::scene_side, 3, sc.rgb.data(),
                               std::uniform_int_distribution<int>(a->jpeg[0], a->jpeg[1])(quality_gen));
            json::value t = json::value::make_object();
            t.set("image", json::string(name));
            json::value objs = json::value::make_array();
            for (const auto& ob : sc.objects) {
                json::value v = json::value::make_object();
                v.set("shape", json::string(data::shape_names[static_cast<std::size_t>(ob.shape)]));
                v.set("color", json::string(data::colour_names[static_cast<std::size_t>(ob.colour)]));
                json::value box = json::value::make_array();
                for (const float x : {ob.y1, ob.x1, ob.y2, ob.x2}) box.push(json::number(static_cast<double>(x)));
                v.set("box", std::move(box));
                objs.push(std::move(v));
            }
            t.set("objects", std::move(objs));
            t.set("caption", json::string(data::caption_of(sc)));
            json::value qs = json::value::make_array();
            for (const auto& q : data::questions_of(sc)) {
                json::value v = json::value::make_object();
                v.set("question", json::string(q.question));
                v.set("answer", json::string(q.answer));
                qs.push(std::move(v));
            }
            t.set("qa", std::move(qs));
            truth << json::dump(t) << '\n';
            json::value pair = json::value::make_object();
            pair.set("image", json::string(name));
            pair.set("text", json::string(data::caption_of(sc)));
            pairs << json::dump(pair) << '\n';
            if (sc.objects.size() == 1) singles << json::dump(pair) << '\n';
            for (const auto& ex : data::examples_of(sc, gen)) {
                json::value e = json::value::make_object();
                e.set("image", json::string(name));
                e.set("prefix", json::string(ex.prompt));
                e.set("suffix", json::string(ex.target));
                e.set("text", json::string(data::caption_of(sc)));
                train << json::dump(e) << '\n';
                ++examples;
            }
        }
        if (a->tokenizer) {
            // Every word of every task, each line a few times so that the unigram model keeps them whole.
            const auto corpus = (fs::path(a->dir) / "corpus.txt").string();
            {
                std::ofstream out(corpus);
                std::mt19937_64 g(1);
                for (std::uint64_t i = 0; i < 400; ++i) {
                    const auto sc = data::make_scene(0xC0FFEE, i, o);
                    for (const auto& ex : data::examples_of(sc, g)) out << ex.prompt << '\n' << ex.target << '\n';
                }
            }
            text::train_tokenizer(corpus, (fs::path(a->dir) / "tokenizer").string(), 64, false);
            const auto tok = text::tokenizer::load((fs::path(a->dir) / "tokenizer.model").string());
            std::printf("tokenizer: %s/tokenizer.model, %zu pieces + PaLI's <loc>/<seg> = %zu ids\n", a->dir.c_str(),
                        tok.model_pieces(), tok.vocab_size());
        }
        std::printf("wrote %zu scenes (%s/NNNNNN.%s, scenes.jsonl) and %zu training examples (train.jsonl; SigLIP pairs: siglip.jsonl, siglip_single.jsonl)\n", a->count,
                    a->dir.c_str(), a->jpeg.empty() ? "png" : "jpg", examples);
    });
}

}  // namespace pali3::cli
