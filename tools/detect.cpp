// pali3 detect IMAGE "a ; b": boxes of the named things, drawn on an overlay PNG.
#include "common.hpp"
#include "overlay.hpp"

namespace pali3::cli {

void add_detect(CLI::App& app) {
    struct args {
        pipeline::options o;
        std::string image, things, out = "detect.png";
        bool json = false;
    };
    auto a = std::make_shared<args>();
    auto* c = app.add_subcommand("detect", "boxes of the named things (prompt \"detect A ; B\"), drawn on an overlay PNG");
    c->add_option("image", a->image, "image file")->required();
    c->add_option("things", a->things, "what to find, several joined by \" ; \"")->required();
    c->add_option("--out", a->out, "overlay PNG to write")->capture_default_str();
    add_pipeline_flags(c, a->o, a->json);
    c->callback([a] {
        const auto p = open_pali3(a->o);
        auto ans = p->detect(a->image, a->things);
        pipeline::stopwatch sw;
        draw_overlay(ans.image, ans.objects, ans.masks);
        io::write_png(a->out, ans.image);
        ans.times.add("overlay", sw.ms());
        if (a->json) {
            auto v = answer_json("detect", *p, ans);
            v.set("overlay", json::string(a->out));
            return print_json(v);
        }
        print_answer(*p, ans);
        print_objects(ans.objects, ans.masks, false);
        std::printf("overlay: %s\n", a->out.c_str());
        print_times(*p, ans);
    });
}

}  // namespace pali3::cli
