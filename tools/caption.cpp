// pali3 caption IMAGE: the model's caption ("caption LANG").
#include "common.hpp"

namespace pali3::cli {

void add_caption(CLI::App& app) {
    struct args {
        pipeline::options o;
        std::string image, lang = "en";
        bool json = false;
    };
    auto a = std::make_shared<args>();
    auto* c = app.add_subcommand("caption", "caption an image (prompt \"caption LANG\")");
    c->add_option("image", a->image, "image file (PNG, JPEG, ...)")->required();
    c->add_option("--lang", a->lang, "language of the caption")->capture_default_str();
    add_pipeline_flags(c, a->o, a->json);
    c->callback([a] {
        const auto p = open_pali3(a->o);
        const auto ans = p->caption(a->image, a->lang);
        if (a->json) return print_json(answer_json("caption", *p, ans));
        print_answer(*p, ans);
        print_times(*p, ans);
    });
}

}  // namespace pali3::cli
