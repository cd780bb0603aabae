// pali3 vqa IMAGE QUESTION: the model's answer ("answer LANG QUESTION").
#include "common.hpp"

namespace pali3::cli {

void add_vqa(CLI::App& app) {
    struct args {
        pipeline::options o;
        std::string image, question, lang = "en";
        bool json = false;
    };
    auto a = std::make_shared<args>();
    auto* c = app.add_subcommand("vqa", "answer a question about an image (prompt \"answer LANG QUESTION\")");
    c->add_option("image", a->image, "image file")->required();
    c->add_option("question", a->question, "the question")->required();
    c->add_option("--lang", a->lang, "language of the question and answer")->capture_default_str();
    add_pipeline_flags(c, a->o, a->json);
    c->callback([a] {
        const auto p = open_pali3(a->o);
        const auto ans = p->vqa(a->image, a->question, a->lang);
        if (a->json) return print_json(answer_json("vqa", *p, ans));
        print_answer(*p, ans);
        print_times(*p, ans);
    });
}

}  // namespace pali3::cli
