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
        report_objects("detect", *p, ans, a->out, a->json);
    });
}

}  // namespace pali3::cli
