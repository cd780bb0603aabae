// pali3 generate IMAGE PROMPT: any prompt; the generated ids are printed too.
#include "common.hpp"

namespace pali3::cli {

void add_generate(CLI::App& app) {
    struct args {
        pipeline::options o;
        std::string image, prompt;
        bool json = false;
    };
    auto a = std::make_shared<args>();
    auto* c = app.add_subcommand("generate", "run any prompt on an image; prints the generated ids too");
    c->add_option("image", a->image, "image file")->required();
    c->add_option("prompt", a->prompt, "the prompt, as the model was trained on it")->required();
    add_pipeline_flags(c, a->o, a->json);
    c->callback([a] {
        const auto p = open_pali3(a->o);
        const auto ans = p->generate(a->image, a->prompt);
        if (a->json) return print_json(answer_json("generate", *p, ans));
        print_answer(*p, ans);
        std::printf("ids:");
        for (const auto id : ans.best.tokens) std::printf(" %d", id);
        std::printf("\n");
        print_times(*p, ans);
    });
}

}  // namespace pali3::cli
