// pali3 caption IMAGE...: the model's caption ("caption LANG"); several images run as one batch.
#include "common.hpp"

namespace pali3::cli {

void add_caption(CLI::App& app) {
    struct args {
        pipeline::options o;
        std::vector<std::string> images;
        std::string lang = "en";
        bool json = false;
    };
    auto a = std::make_shared<args>();
    auto* c = app.add_subcommand("caption", "caption an image (prompt \"caption LANG\")");
    c->add_option("images", a->images, "image files (PNG, JPEG, ...); several: one batch, each captioned as alone")->required();
    c->add_option("--lang", a->lang, "language of the caption")->capture_default_str();
    add_pipeline_flags(c, a->o, a->json);
    c->callback([a] {
        const auto p = open_pali3(a->o);
        if (a->images.size() == 1) {
            const auto ans = p->caption(a->images[0], a->lang);
            if (a->json) return print_json(answer_json("caption", *p, ans));
            print_answer(*p, ans);
            return print_times(*p, ans);
        }
        // A batch: one JSON object per line (--json), or each answer after its image's name.
        const auto answers = p->generate_batch(a->images, {generation::caption_prompt(a->lang)});
        for (std::size_t i = 0; i < answers.size(); ++i) {
            if (a->json) {
                auto v = answer_json("caption", *p, answers[i]);
                v.set("image", json::string(a->images[i]));
                print_json(v);
                continue;
            }
            std::printf("image: %s\n", a->images[i].c_str());
            print_answer(*p, answers[i]);
        }
        if (!a->json) print_times(*p, answers.front());
    });
}

}  // namespace pali3::cli
