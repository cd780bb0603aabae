// pali3 eval --scenes DIR: a PaLI-3 checkpoint's accuracy per task on scenes with their ground
// truth (DIR/scenes.jsonl from `pali3 make-scenes`, or any renderer's in the same format):
// caption exact match, detection (IoU >= 0.5 per object asked for; no box for a shape that is not
// there) and VQA exact match (docs/shapes.md); with --vqvae also segmentation (the mask IoU of each
// object asked for against the spec's shape in its true box).
#include <array>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>

#include <pali3/data/shapes.hpp>

#include "common.hpp"

namespace pali3::cli {

namespace {
double iou(const generation::box& a, const std::array<float, 4>& b) {
    const float y1 = std::max(a.y1, b[0]), x1 = std::max(a.x1, b[1]), y2 = std::min(a.y2, b[2]), x2 = std::min(a.x2, b[3]);
    const float inter = std::max(0.f, y2 - y1) * std::max(0.f, x2 - x1);
    const float ua = (a.y2 - a.y1) * (a.x2 - a.x1) + (b[2] - b[0]) * (b[3] - b[1]) - inter;
    return ua > 0 ? inter / ua : 0.0;
}
struct tally {
    std::size_t right = 0, total = 0;
    void add(bool ok) { right += ok; ++total; }
    double rate() const { return total ? static_cast<double>(right) / static_cast<double>(total) : 0.0; }
    json::value to_json() const {
        json::value x = json::value::make_object();
        x.set("accuracy", json::number(rate()));
        x.set("right", json::number(static_cast<std::uint64_t>(right)));
        x.set("total", json::number(static_cast<std::uint64_t>(total)));
        return x;
    }
};

// The kind of a shapes-world question (docs/shapes.md) by its opening words: a model can be good
// at counting and poor at shapes, and one VQA number hides which.
constexpr std::array<const char*, 4> vqa_kinds = {"count", "colour", "shape", "other"};
inline std::size_t vqa_kind(const std::string& question) {
    if (question.rfind("how many ", 0) == 0) return 0;
    if (question.rfind("what color ", 0) == 0) return 1;
    if (question.rfind("what shape ", 0) == 0) return 2;
    return 3;
}

// Calls fn(scene, where) for each line of the ground truth (at most `limit`, 0: all); returns how many.
template <class F>
std::size_t for_each_scene(const std::string& path, std::size_t limit, F&& fn) {
    core::require_regular_file(path, "cannot open ground truth");
    std::ifstream in(path);
    if (!in) throw value_error(core::describe("cannot open ground truth", path, "scenes.jsonl", "open failed"));
    std::string line;
    std::size_t n = 0, lineno = 0;
    while ((limit == 0 || n < limit) && std::getline(in, line)) {
        ++lineno;
        if (line.empty()) continue;
        const std::string where = path + ":" + std::to_string(lineno);
        fn(json::parse(line, where), where);
        ++n;
    }
    return n;
}
}  // namespace

namespace {
// A SigLIP pair on the single-object scenes: top-1 over the 12 "a {colour} {shape}" texts.
void eval_siglip(const pipeline::options& po, const std::string& dir, const std::string& path, std::size_t limit, bool as_json,
                 bool verbose) {
    namespace fs = std::filesystem;
    pipeline::siglip_options so;
    so.weights = po.weights;
    so.tokenizer = po.tokenizer;
    so.config = po.config;
    so.threads = po.threads;
    so.preprocessing = po.preprocessing;
    so.dtype = po.dtype;
    so.int8_group = po.int8_group;
    const auto p = open_siglip(so);
    if (!p->has_text())
        throw config_error(core::describe("eval needs both SigLIP towers", po.weights, "a two-tower checkpoint", "a vision tower alone"));
    std::vector<std::string> labels;
    for (const char* c : data::colour_names)
        for (const char* s : data::shape_names) labels.push_back(std::string("a ") + c + " " + s);
    const auto texts = p->embed_texts(labels);
    tally zero_shot;
    pipeline::stopwatch sw;
    const std::size_t n = for_each_scene(path, limit, [&](const json::value& v, const std::string& where) {
        const auto& objects = v.at("objects", where).items(where);
        if (objects.size() != 1) return;
        const std::string want = "a " + objects[0].at("color", where).as_string(where) + " " +
                                 objects[0].at("shape", where).as_string(where);
        const auto image = (fs::path(dir) / v.at("image", where).as_string(where)).string();
        const auto probs = p->scores(p->embed_image(image), texts, labels.size());
        const auto best = static_cast<std::size_t>(std::max_element(probs.begin(), probs.end()) - probs.begin());
        zero_shot.add(labels[best] == want);
        if (labels[best] != want && verbose) std::printf("%s zero-shot: \"%s\" (want \"%s\")\n", image.c_str(), labels[best].c_str(), want.c_str());
    });
    if (as_json) {
        json::value out = json::value::make_object();
        out.set("command", json::string("eval"));
        out.set("scenes", json::number(static_cast<std::uint64_t>(n)));
        out.set("zero_shot", zero_shot.to_json());
        out.set("seconds", json::number(sw.ms() / 1000.0));
        std::printf("%s\n", json::dump(out).c_str());
        return;
    }
    std::printf("%zu scenes (%s), SigLIP pair\n", n, dir.c_str());
    std::printf("zero-shot top-1 over 12 texts %6.2f %% (%zu / %zu single-object scenes)\n", 100 * zero_shot.rate(),
                zero_shot.right, zero_shot.total);
    std::printf("%.1f s\n", sw.ms() / 1000.0);
}
}  // namespace

void add_eval(CLI::App& app) {
    struct args {
        pipeline::options o;
        std::string scenes;
        std::size_t limit = 0;
        bool json = false, verbose = false;
    };
    auto a = std::make_shared<args>();
    auto* c = app.add_subcommand("eval", "accuracy per task on scenes with ground truth (DIR/scenes.jsonl); a SigLIP pair: zero-shot");
    c->add_option("--scenes", a->scenes, "directory with scenes.jsonl and its images")->required();
    c->add_option("--limit", a->limit, "only the first N scenes (0: all)")->capture_default_str();
    c->add_flag("--verbose", a->verbose, "print every wrong answer");
    c->add_option("--vqvae", a->o.vqvae, "also score segmentation, masks decoded by this VQ-VAE (examples/models/shapes/vqvae.safetensors)");
    add_pipeline_flags(c, a->o, a->json);
    c->callback([a, c] {
        namespace fs = std::filesystem;
        const auto path = (fs::path(a->scenes) / "scenes.jsonl").string();
        if (!a->o.vqvae.empty()) default_segment_tokens(c, a->o);
        {
            const auto ckpt = weights::checkpoint::open(a->o.weights);
            if (pipeline::require_config(a->o.config, &ckpt, a->o.weights).config.kind == models::model_kind::siglip) {
                if (!a->o.vqvae.empty())
                    throw value_error(core::describe("--vqvae with a SigLIP pair", a->o.weights, "a PaLI-3 checkpoint (segmentation)", "a SigLIP pair"));
                return eval_siglip(a->o, a->scenes, path, a->limit, a->json, a->verbose);
            }
        }
        const auto p = open_pali3(a->o);
        tally caption, found, absent, vqa, seg_found, seg_absent;
        double seg_iou_sum = 0;
        const bool segment = !a->o.vqvae.empty();
        std::array<tally, vqa_kinds.size()> vqa_by_kind;
        // The same per number of objects in the scene: a model that answers by position or by
        // the whole image is right on one object and at chance among several.
        struct by_count {
            tally caption, found, vqa;
        };
        std::map<std::size_t, by_count> by_objects;
        struct truth {
            std::string shape;
            std::array<float, 4> box;
            std::vector<std::uint8_t> mask;  // with --vqvae: the spec's mask of the shape in its box
        };
        // "segment SHAPE": each object of that shape is matched to an unused mask of the same label
        // with the largest mask IoU; it counts as found at IoU >= 0.5, its IoU (0 when unmatched)
        // goes into the mean; an absent shape must give no object.
        const auto score_segment = [&](const std::string& image, const char* shape, const std::vector<const truth*>& want) {
            const auto seg = p->segment(image, shape);
            if (want.empty()) {
                seg_absent.add(seg.objects.empty());
                if (!seg.objects.empty() && a->verbose) std::printf("%s segment %s: objects for an absent shape\n", image.c_str(), shape);
                return;
            }
            std::vector<bool> used(seg.objects.size(), false);
            for (const auto* t : want) {
                double best = 0;
                std::size_t at = seg.objects.size();
                for (std::size_t k = 0; k < seg.objects.size(); ++k) {
                    if (used[k] || seg.objects[k].label != shape || seg.masks[k].size() != t->mask.size()) continue;
                    std::size_t inter = 0, uni = 0;
                    for (std::size_t i = 0; i < t->mask.size(); ++i) {
                        inter += seg.masks[k][i] && t->mask[i];
                        uni += seg.masks[k][i] || t->mask[i];
                    }
                    const double v = uni ? static_cast<double>(inter) / static_cast<double>(uni) : 0.0;
                    if (v > best || at == seg.objects.size()) best = v, at = k;
                }
                if (at < seg.objects.size()) used[at] = true;
                seg_found.add(best >= 0.5);
                seg_iou_sum += best;
                if (best < 0.5 && a->verbose) std::printf("%s segment %s: \"%s\" mask IoU %.2f\n", image.c_str(), shape, seg.text.c_str(), best);
            }
        };
        pipeline::stopwatch sw;
        const std::size_t n = for_each_scene(path, a->limit, [&](const json::value& v, const std::string& where) {
            const auto image = (fs::path(a->scenes) / v.at("image", where).as_string(where)).string();
            std::vector<truth> objects;
            for (const auto& o : v.at("objects", where).items(where)) {
                truth t;
                t.shape = o.at("shape", where).as_string(where);
                const auto& b = o.at("box", where).items(where);
                if (b.size() != 4) throw format_error(core::describe("box", where, "[y1, x1, y2, x2]", b.size()));
                for (std::size_t i = 0; i < 4; ++i) t.box[i] = static_cast<float>(b[i].as_double(where));
                if (segment) t.mask = data::object_mask(data::shape_index(t.shape), t.box[0], t.box[1], t.box[2], t.box[3]);
                objects.push_back(t);
            }
            auto& mine = by_objects[objects.size()];
            const auto cap = p->caption(image);
            const bool cap_ok = cap.text == v.at("caption", where).as_string(where);
            caption.add(cap_ok);
            mine.caption.add(cap_ok);
            if (!cap_ok && a->verbose) std::printf("%s caption: \"%s\" (want \"%s\")\n", image.c_str(), cap.text.c_str(),
                                                   v.at("caption", where).as_string(where).c_str());
            for (const char* shape : data::shape_names) {
                std::vector<const truth*> want;
                for (const auto& t : objects)
                    if (t.shape == shape) want.push_back(&t);
                if (segment) score_segment(image, shape, want);
                const auto det = p->detect(image, shape);
                if (want.empty()) {
                    absent.add(det.objects.empty());
                    if (!det.objects.empty() && a->verbose) std::printf("%s detect %s: boxes for an absent shape\n", image.c_str(), shape);
                    continue;
                }
                std::vector<bool> used(det.objects.size(), false);
                for (const auto* t : want) {
                    bool hit = false;
                    for (std::size_t k = 0; k < det.objects.size() && !hit; ++k)
                        if (!used[k] && det.objects[k].where && det.objects[k].label == shape && iou(*det.objects[k].where, t->box) >= 0.5) {
                            used[k] = true;
                            hit = true;
                        }
                    found.add(hit);
                    mine.found.add(hit);
                    if (!hit && a->verbose) std::printf("%s detect %s: \"%s\" misses a box\n", image.c_str(), shape, det.text.c_str());
                }
            }
            for (const auto& q : v.at("qa", where).items(where)) {
                const auto question = q.at("question", where).as_string(where), want = q.at("answer", where).as_string(where);
                const auto ans = p->vqa(image, question);
                vqa.add(ans.text == want);
                vqa_by_kind[vqa_kind(question)].add(ans.text == want);
                mine.vqa.add(ans.text == want);
                if (ans.text != want && a->verbose) std::printf("%s %s \"%s\" (want \"%s\")\n", image.c_str(), question.c_str(), ans.text.c_str(), want.c_str());
            }
        });
        if (a->json) {
            json::value out = json::value::make_object();
            out.set("command", json::string("eval"));
            out.set("scenes", json::number(static_cast<std::uint64_t>(n)));
            out.set("caption", caption.to_json());
            out.set("detection", found.to_json());
            out.set("detection_absent", absent.to_json());
            out.set("vqa", vqa.to_json());
            if (segment) {
                json::value sg = seg_found.to_json();
                sg.set("mean_iou", json::number(seg_found.total ? seg_iou_sum / static_cast<double>(seg_found.total) : 0.0));
                out.set("segmentation", std::move(sg));
                out.set("segmentation_absent", seg_absent.to_json());
            }
            json::value kinds = json::value::make_object();
            for (std::size_t k = 0; k < vqa_kinds.size(); ++k)
                if (vqa_by_kind[k].total) kinds.set(vqa_kinds[k], vqa_by_kind[k].to_json());
            out.set("vqa_by_kind", std::move(kinds));
            json::value counts = json::value::make_object();
            for (const auto& [k, t] : by_objects) {
                json::value x = json::value::make_object();
                x.set("caption", t.caption.to_json());
                x.set("detection", t.found.to_json());
                x.set("vqa", t.vqa.to_json());
                counts.set(std::to_string(k), std::move(x));
            }
            out.set("by_objects", std::move(counts));
            out.set("seconds", json::number(sw.ms() / 1000.0));
            std::printf("%s\n", json::dump(out).c_str());
            return;
        }
        std::printf("%zu scenes (%s)\n", n, a->scenes.c_str());
        std::printf("caption exact match        %6.2f %% (%zu / %zu)\n", 100 * caption.rate(), caption.right, caption.total);
        std::printf("detection IoU >= 0.5       %6.2f %% (%zu / %zu objects)\n", 100 * found.rate(), found.right, found.total);
        std::printf("no box for an absent shape %6.2f %% (%zu / %zu)\n", 100 * absent.rate(), absent.right, absent.total);
        std::printf("VQA exact match            %6.2f %% (%zu / %zu)\n", 100 * vqa.rate(), vqa.right, vqa.total);
        if (segment) {
            std::printf("mask IoU >= 0.5 (segment)  %6.2f %% (%zu / %zu objects), mean mask IoU %.3f\n", 100 * seg_found.rate(), seg_found.right,
                        seg_found.total, seg_found.total ? seg_iou_sum / static_cast<double>(seg_found.total) : 0.0);
            std::printf("no mask for an absent shape %6.2f %% (%zu / %zu)\n", 100 * seg_absent.rate(), seg_absent.right, seg_absent.total);
        }
        for (std::size_t k = 0; k < vqa_kinds.size(); ++k)
            if (vqa_by_kind[k].total)
                std::printf("  %-24s %6.2f %% (%zu / %zu)\n", vqa_kinds[k], 100 * vqa_by_kind[k].rate(), vqa_by_kind[k].right,
                            vqa_by_kind[k].total);
        std::printf("by objects in the scene    ");
        for (const auto& entry : by_objects) std::printf("  %6zu  ", entry.first);
        std::printf("\n");
        auto row = [&](const char* name, tally by_count::*which) {
            std::printf("  %-24s", name);
            for (const auto& entry : by_objects) {
                const tally& t = entry.second.*which;
                if (t.total) std::printf("  %6.2f %%", 100 * t.rate());
                else std::printf("  %8s", "-");
            }
            std::printf("\n");
        };
        row("caption", &by_count::caption);
        row("detection", &by_count::found);
        row("VQA", &by_count::vqa);
        std::printf("%.1f s\n", sw.ms() / 1000.0);
    });
}

}  // namespace pali3::cli
