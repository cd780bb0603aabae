// Training from files: what `pali3 train` runs (docs/training.md). A model (a preset, a config
// file, or a checkpoint to start from), examples from a JSONL file, AdamW with a schedule,
// gradient accumulation, checkpoints, exact resume, and a loss curve as CSV.
//
// Examples, one JSON object per line (paths relative to the JSONL file):
//   PaLI-3:  {"image": "img/0001.png", "prefix": "caption en", "suffix": "a red circle"}
//   SigLIP:  {"image": "img/0001.png", "text": "a red circle"}
//   T5/UL2:  {"input": "translate: ...", "target": "..."}
// Text is tokenised with the sentencepiece model (PaLI's <loc>/<seg> tokens added as for
// inference): prompts and T5 inputs end with EOS as the pipeline encodes them at inference; the
// decoder sees [start] + target and predicts target + [EOS].
//
// The output directory holds model.safetensors (the weights in our names with the config in
// the metadata: every command loads it), state.safetensors (weights, Adam moments, step, data
// position: `--resume` continues exactly as an uninterrupted run with the same thread count
// would) and loss.csv (step, loss, lr, grad_norm, ms, examples/s).
#pragma once

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <numeric>
#include <optional>
#include <random>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "pali3/core/files.hpp"
#include "pali3/core/json.hpp"
#include "pali3/core/threading.hpp"
#include "pali3/io/image.hpp"
#include "pali3/models/dispatch.hpp"
#include "pali3/pipeline/config_source.hpp"
#include "pali3/text/tokenizer.hpp"
#include "pali3/train/init.hpp"
#include "pali3/train/optimizer.hpp"
#include "pali3/vision/preprocess.hpp"
#include "pali3/weights/checkpoint.hpp"
#include "pali3/weights/part_source.hpp"
#include "pali3/weights/random_source.hpp"

namespace pali3::pipeline {

struct example {
    std::string image;   // PaLI-3, SigLIP
    std::string prompt;  // PaLI-3 "prefix", T5 "input"
    std::string target;  // PaLI-3 "suffix", T5 "target", SigLIP "text"
};

// Reads the JSONL examples for a model kind; each line's missing field is an error naming the
// file, the line and the field.
inline std::vector<example> read_examples(const std::string& path, models::model_kind kind) {
    core::require_regular_file(path, "cannot open examples");
    std::ifstream in(path);
    if (!in) throw value_error(core::describe("cannot open examples", path, "a readable JSONL file", "open failed"));
    const auto dir = std::filesystem::path(path).parent_path();
    std::vector<example> out;
    std::string line;
    std::size_t n = 0;
    auto field = [&](const json::value& v, const char* key, const std::string& where) {
        const json::value* f = v.find(key);
        if (!f || !f->is_string()) throw format_error(core::describe("example field", where, std::string("a string \"") + key + "\"", "absent"));
        return f->as_string(where + "." + key);
    };
    while (std::getline(in, line)) {
        ++n;
        if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
        const std::string where = path + ":" + std::to_string(n);
        const json::value v = json::parse(line, where);
        example e;
        switch (kind) {
            case models::model_kind::pali3:
                e.image = (dir / field(v, "image", where)).string();
                e.prompt = field(v, "prefix", where);
                e.target = field(v, "suffix", where);
                break;
            case models::model_kind::siglip:
                e.image = (dir / field(v, "image", where)).string();
                e.target = field(v, "text", where);
                break;
            case models::model_kind::t5:
                e.prompt = field(v, "input", where);
                e.target = field(v, "target", where);
                break;
            default:
                throw config_error(core::describe("model kind for training", path, "pali3, siglip or t5", models::kind_name(kind)));
        }
        out.push_back(std::move(e));
    }
    if (out.empty()) throw value_error(core::describe("no examples", path, "at least one JSON line", "none"));
    return out;
}

// Epoch order: a permutation per epoch from (seed, epoch), so the data position alone says what
// comes next (that is what a resumed run restores).
class example_order {
public:
    example_order(std::size_t n, std::uint64_t seed) : n_(n), seed_(seed) {}
    std::size_t at(std::uint64_t position) {
        const std::uint64_t epoch = position / n_;
        if (epoch != epoch_ || order_.empty()) {
            order_.resize(n_);
            std::iota(order_.begin(), order_.end(), std::size_t{0});
            std::mt19937_64 gen(seed_ * 0x9E3779B97F4A7C15ull + epoch);
            for (std::size_t i = n_; i > 1; --i) std::swap(order_[i - 1], order_[gen() % i]);
            epoch_ = epoch;
        }
        return order_[position % n_];
    }

private:
    std::size_t n_;
    std::uint64_t seed_;
    std::uint64_t epoch_ = ~std::uint64_t{0};
    std::vector<std::size_t> order_;
};

struct train_options {
    std::string data, tokenizer, out = "run", init;  // init: a checkpoint to start from (else random)
    std::string init_vision;  // a SigLIP / ViT / PaLI-3 checkpoint whose image tower starts the model's
    std::size_t image_cache_mb = 1024;  // preprocessed images kept in memory (0: decode every time)
    std::vector<std::string> freeze;  // name prefixes kept frozen ("img.": PaLI-3's stage 1)
    std::vector<std::pair<std::string, float>> lr_scale;  // (prefix, factor): a slower (or faster) part
    bool ordinal_loc = false;  // <loc> rows of the embedding and the head from sinusoids (train/init.hpp)
    std::function<void(const std::string&)> note;  // one-off reports (what was loaded from where)
    config_request config;
    std::size_t steps = 100, batch = 8, accumulate = 1, threads = 2, save_every = 0, seed = 0;
    std::size_t stop_at = 0;  // > 0: stop (and save) at this step; the schedule still spans `steps`
    std::size_t max_prompt = 64, max_target = 64;
    train::adamw_config adamw{};
    train::schedule schedule{};
    float label_smoothing = 0.f;
    bool recompute = false, resume = false, antialias = false;
    std::size_t max_memory = 0;  // bytes the run may need by the estimate (0: the machine's memory)
};

struct train_progress {
    std::size_t step = 0, steps = 0;
    double loss = 0, lr = 0, grad_norm = 0, ms = 0, examples_per_s = 0;
};

namespace detail {
// The ids of one text, cut to `max` tokens (the EOS, when asked for, kept last).
inline std::vector<std::int32_t> encode_cut(const text::tokenizer& tok, const std::string& s, bool eos, std::size_t max,
                                            std::size_t vocab) {
    auto ids = tok.encode(s, eos);
    if (ids.size() > max) {
        ids.resize(max);
        if (eos) ids.back() = tok.eos_id();
    }
    for (const auto id : ids)
        if (id < 0 || static_cast<std::size_t>(id) >= vocab)
            throw config_error(core::describe("tokenizer id beyond the model's vocabulary", "\"" + s + "\"",
                                              "< " + std::to_string(vocab), id));
    return ids;
}

struct text_batch {
    std::vector<std::int32_t> decoder, targets;  // (batch, dec_len)
    std::size_t dec_len = 0;
};

inline text_batch decoder_batch(const text::tokenizer& tok, const std::vector<const example*>& ex, std::size_t max,
                                std::size_t vocab) {
    std::vector<std::vector<std::int32_t>> t;
    std::size_t len = 1;
    for (const auto* e : ex) {
        t.push_back(encode_cut(tok, e->target, false, max - 1, vocab));
        len = std::max(len, t.back().size() + 1);
    }
    text_batch b;
    b.dec_len = len;
    b.decoder.assign(ex.size() * len, tok.pad_id());
    b.targets.assign(ex.size() * len, -100);
    for (std::size_t i = 0; i < ex.size(); ++i) {
        b.decoder[i * len] = tok.decoder_start_id();
        for (std::size_t j = 0; j < t[i].size(); ++j) {
            b.decoder[i * len + j + 1] = t[i][j];
            b.targets[i * len + j] = t[i][j];
        }
        b.targets[i * len + t[i].size()] = tok.eos_id();
    }
    return b;
}

// Preprocessed pixels by image path, up to a byte budget: an image is decoded and resized once,
// not once per epoch (examples of one image, e.g. caption, detection and VQA, share it). Past
// the budget, images are decoded on every use.
class image_cache {
public:
    explicit image_cache(std::size_t limit_bytes) : limit_(limit_bytes) {}
    const std::vector<float>& get(const std::string& path, std::size_t size, bool antialias) {
        if (const auto it = kept_.find(path); it != kept_.end()) return it->second;
        scratch_ = vision::preprocess(io::load_image(path), {size, antialias});
        const std::size_t bytes = scratch_.size() * sizeof(float) + path.size();
        if (bytes > limit_ - used_) return scratch_;
        used_ += bytes;
        return kept_.emplace(path, std::move(scratch_)).first->second;
    }
    std::size_t used_bytes() const { return used_; }

private:
    std::size_t limit_, used_ = 0;
    std::unordered_map<std::string, std::vector<float>> kept_;
    std::vector<float> scratch_;
};

inline std::vector<float> pixels_of(const std::vector<const example*>& ex, std::size_t size, bool antialias, image_cache& cache) {
    std::vector<float> px;
    px.reserve(ex.size() * 3 * size * size);
    for (const auto* e : ex) {
        const auto& p = cache.get(e->image, size, antialias);
        px.insert(px.end(), p.begin(), p.end());
    }
    return px;
}

// One micro-batch's loss and gradients for any trainable kind.
template <class Model, class Config>
double batch_loss(const Model& model, const Config& cfg, const std::vector<const example*>& ex, const text::tokenizer& tok,
                  const train_options& o, train::parameters& ps, core::thread_pool& pool, image_cache& images) {
    if constexpr (requires { typename Model::projector_type; }) {
        std::vector<std::vector<std::int32_t>> prompts;
        for (const auto* e : ex) prompts.push_back(encode_cut(tok, e->prompt, true, o.max_prompt, cfg.text.vocab));
        const auto d = decoder_batch(tok, ex, o.max_target, cfg.text.vocab);
        const auto px = pixels_of(ex, cfg.vision.image, o.antialias, images);
        typename Model::text_type::loss_options lo;
        lo.label_smoothing = o.label_smoothing;
        lo.recompute = o.recompute;
        return model.loss_and_grad(px.data(), prompts, d.decoder.data(), d.dec_len, d.targets.data(), &ps, pool, lo).first;
    } else if constexpr (models::encoder_decoder<Model>) {
        std::vector<std::vector<std::int32_t>> in;
        std::size_t len = 1;
        for (const auto* e : ex) {
            in.push_back(encode_cut(tok, e->prompt, true, o.max_prompt, cfg.vocab));
            len = std::max(len, in.back().size());
        }
        std::vector<std::int32_t> enc(ex.size() * len, tok.pad_id());
        std::vector<std::size_t> lens;
        for (std::size_t i = 0; i < ex.size(); ++i) {
            std::copy(in[i].begin(), in[i].end(), enc.begin() + static_cast<std::ptrdiff_t>(i * len));
            lens.push_back(std::max<std::size_t>(in[i].size(), 1));
        }
        const auto d = decoder_batch(tok, ex, o.max_target, cfg.vocab);
        typename Model::loss_options lo;
        lo.label_smoothing = o.label_smoothing;
        lo.recompute = o.recompute;
        return model.loss_and_grad(enc.data(), ex.size(), len, lens, d.decoder.data(), d.dec_len, d.targets.data(), &ps, pool, lo)
            .first;
    } else if constexpr (requires { model.vision(); model.text(); typename Model::loss_options; }) {
        const std::size_t len = cfg.text.max_len;
        std::vector<std::int32_t> ids(ex.size() * len, tok.pad_id());
        for (std::size_t i = 0; i < ex.size(); ++i) {
            const auto t = encode_cut(tok, ex[i]->target, true, len, cfg.text.vocab);
            std::copy(t.begin(), t.end(), ids.begin() + static_cast<std::ptrdiff_t>(i * len));
        }
        const auto px = pixels_of(ex, cfg.vision.image, o.antialias, images);
        typename Model::loss_options lo;
        lo.recompute = o.recompute;
        return model.loss_and_grad(px.data(), ids.data(), ex.size(), &ps, pool, lo);
    } else {
        throw config_error(core::describe("model kind for training", "pali3 train", "pali3, siglip or t5", "a single tower"));
    }
}
}  // namespace detail

namespace detail {
// A resumed run repeats the steps after its last saved state: their rows leave the loss curve.
inline void keep_csv_rows_up_to(const std::string& path, std::uint64_t last_step) {
    std::ifstream in(path);
    if (!in) return;
    std::string line, kept;
    bool header = true;
    while (std::getline(in, line)) {
        if (!header) {
            std::uint64_t step = 0;
            const auto r = std::from_chars(line.data(), line.data() + line.size(), step);
            if (r.ec != std::errc{} || step > last_step) continue;
        }
        header = false;
        kept += line + '\n';
    }
    in.close();
    std::ofstream(path, std::ios::trunc) << kept;
}

// A checkpoint's image tower as a source of `img.*` tensors: the checkpoint, mapped from any
// naming, and the prefix its vision tensors have in our names (SigLIP "vision.", PaLI-3 "img.",
// a lone ViT none). Its tower must have the shapes of `want` (the resolution may differ only
// where the position table is resampled: that is the model's own posemb_grid).
struct vision_part {
    std::shared_ptr<weights::checkpoint> file;
    std::shared_ptr<weights::mapped_source<weights::checkpoint>> source;
    std::string prefix;
};

inline vision_part open_vision_part(const std::string& path, const models::vit_config& want) {
    vision_part p;
    p.file = std::make_shared<weights::checkpoint>(weights::checkpoint::open(path));
    const auto found = require_config(config_request{}, p.file.get(), path);
    const auto& k = found.config;
    models::vit_config have;
    switch (k.kind) {
        case models::model_kind::siglip: have = k.vision; p.prefix = "vision."; break;
        case models::model_kind::vit: have = k.vision; p.prefix = ""; break;
        case models::model_kind::pali3: have = k.pali.vision; p.prefix = "img."; break;
        default:
            throw config_error(core::describe("checkpoint without an image tower", path, "a SigLIP, ViT or PaLI-3 checkpoint",
                                              models::kind_name(k.kind)));
    }
    auto sizes = [](const models::vit_config& v) {
        return std::to_string(v.width) + " wide, " + std::to_string(v.depth) + " deep, mlp " + std::to_string(v.mlp) + ", " +
               std::to_string(v.heads) + " heads, patch " + std::to_string(v.patch) + ", position grid " +
               std::to_string(v.table_grid());
    };
    if (have.width != want.width || have.depth != want.depth || have.mlp != want.mlp || have.heads != want.heads ||
        have.patch != want.patch || have.table_grid() != want.table_grid())
        throw config_error(core::describe("pretrained image tower of another shape", path, sizes(want), sizes(have)));
    p.source = std::make_shared<weights::mapped_source<weights::checkpoint>>(
        *p.file, weights::rules_for(weights::detect_naming(p.file->names()), models::kind_name(k.kind)));
    return p;
}
}  // namespace detail

namespace detail {
// PaLI's <loc> rows of every token table the model has (embedding, untied head) from sinusoids.
inline void ordinal_loc_rows(train::parameters& ps, const text::tokenizer& tok, std::uint64_t seed,
                             const std::function<void(const std::string&)>& note) {
    const std::int32_t first = tok.loc_id(0);
    for (int i = 1; i < text::num_loc_tokens; ++i)
        if (tok.loc_id(i) != first + i)
            throw value_error(core::describe("<loc> ids not consecutive", "--loc-init ordinal", "ids " + std::to_string(first) + " + i",
                                             "<loc" + std::to_string(i) + "> = " + std::to_string(tok.loc_id(i))));
    std::size_t tables = 0;
    for (auto& p : ps.list()) {
        const bool table = p.name.ends_with("shared.weight") || p.name.ends_with("lm_head.weight");
        if (!table || p.shape.size() != 2) continue;
        train::ordinal_rows(p.value, p.shape[0], p.shape[1], static_cast<std::size_t>(first), text::num_loc_tokens, seed);
        ++tables;
    }
    if (tables == 0)
        throw config_error(core::describe("--loc-init ordinal without a token table", "pali3 train",
                                          "a model with shared.weight / lm_head.weight (PaLI-3, T5)", "none"));
    if (note) note("<loc> rows from sinusoids in " + std::to_string(tables) + " token table(s)");
}
}  // namespace detail

// Trains as `o` says; on_step is called after every optimiser step. Returns the final step.
inline std::size_t run_training(const train_options& o, const std::function<void(const train_progress&)>& on_step) {
    namespace fs = std::filesystem;
    if (o.batch == 0 || o.accumulate == 0 || o.steps == 0)
        throw value_error(core::describe("training sizes", "pali3 train", "steps, batch, accumulate >= 1",
                                         std::to_string(o.steps) + ", " + std::to_string(o.batch) + ", " + std::to_string(o.accumulate)));
    if (!o.init.empty() && !o.init_vision.empty())
        throw value_error(core::describe("two starting points", "--init and --init-vision", "one of them", "both"));
    std::optional<weights::checkpoint> init;
    if (!o.init.empty()) init.emplace(weights::checkpoint::open(o.init));
    const auto found = require_config(o.config, init ? &*init : nullptr, o.init.empty() ? "pali3 train" : o.init);
    const auto& cfg = found.config;
    {
        models::run_request req;
        req.batch = o.batch;
        req.prompt_tokens = o.max_prompt;
        req.new_tokens = o.max_target;
        req.training = true;
        models::require_memory(models::estimate_memory(cfg, req), o.max_memory, found.source);
    }
    const auto examples = read_examples(o.data, cfg.kind);
    if (o.tokenizer.empty()) throw value_error(core::describe("missing flag", "--tokenizer", "a sentencepiece model", "none"));
    const auto tok = text::tokenizer::load(o.tokenizer);
    fs::create_directories(o.out);
    const std::string state_path = (fs::path(o.out) / "state.safetensors").string();
    const std::string model_path = (fs::path(o.out) / "model.safetensors").string();
    const std::string csv_path = (fs::path(o.out) / "loss.csv").string();
    core::thread_pool pool(o.threads ? o.threads : 1);
    std::size_t final_step = 0;
    models::with_model<float>(cfg, [&]<class M>(std::type_identity<M>, const auto& c) {
        const weights::random_source random(o.seed);
        std::optional<weights::mapped_source<weights::checkpoint>> src;
        if (init) src.emplace(*init, weights::rules_for(weights::detect_naming(init->names()), models::kind_name(cfg.kind)));
        std::optional<M> built;
        if (!o.init_vision.empty()) {
            if constexpr (requires { c.vision; }) {
                const auto part = detail::open_vision_part(o.init_vision, c.vision);
                const weights::part_source both("img.", *part.source, part.prefix, o.init_vision, random);
                built.emplace(c, weights::cursor(both));
                if (both.taken() == 0)
                    throw value_error(core::describe("pretrained image tower unused", o.init_vision, "the model's img.* tensors",
                                                     "none taken"));
                if (o.note)
                    o.note("image tower: " + std::to_string(both.taken()) + " tensors from " + o.init_vision + " (" +
                           (part.prefix.empty() ? std::string("a ViT") : part.prefix + "*") + ")");
            } else {
                throw config_error(core::describe("--init-vision for a model without an image tower", o.init_vision,
                                                  "a PaLI-3 or SigLIP model", models::kind_name(cfg.kind)));
            }
        } else if (src) built.emplace(c, weights::cursor(*src));
        else built.emplace(c, weights::cursor(random));
        M& model = *built;
        detail::image_cache images(o.image_cache_mb << 20);
        train::parameters ps(model);
        if (o.ordinal_loc) detail::ordinal_loc_rows(ps, tok, o.seed, o.note);
        for (const auto& prefix : o.freeze) {
            const std::size_t n = ps.freeze([&](const std::string& name) { return name.starts_with(prefix); });
            if (n == 0)
                throw value_error(core::describe("--freeze matches no tensor", prefix, "a prefix of the model's tensor names (pali3 inspect)",
                                                 "none"));
            if (o.note) o.note("frozen: " + std::to_string(n) + " tensors under " + prefix);
        }
        for (const auto& scale : o.lr_scale) {
            const std::string& prefix = scale.first;
            const float factor = scale.second;
            const std::size_t n = ps.scale_lr([&](const std::string& name) { return name.starts_with(prefix); }, factor);
            if (n == 0)
                throw value_error(core::describe("--lr-scale matches no trainable tensor", prefix,
                                                 "a prefix of the model's trainable tensor names (pali3 inspect)", "none"));
            if (o.note) {
                char f[32];
                std::snprintf(f, sizeof f, "%g", static_cast<double>(factor));
                o.note("learning rate x " + std::string(f) + ": " + std::to_string(n) + " tensors under " + prefix);
            }
        }
        train::adamw opt(ps, o.adamw, o.schedule);
        std::uint64_t position = 0;
        if (o.resume && fs::exists(state_path)) {
            const auto meta = opt.load(state_path);
            const auto it = meta.find("pali3.train.data_position");
            const auto seed = meta.find("pali3.train.seed");
            if (it == meta.end() || seed == meta.end())
                throw format_error(core::describe("training state without a data position", state_path,
                                                  "pali3.train.data_position and pali3.train.seed", "absent"));
            if (seed->second != std::to_string(o.seed))
                throw value_error(core::describe("resuming with another seed", "--seed", seed->second, o.seed));
            position = std::stoull(it->second);
        }
        example_order order(examples.size(), o.seed);
        if (opt.steps() > 0) detail::keep_csv_rows_up_to(csv_path, opt.steps());  // rows past the saved state ran again
        std::ofstream csv(csv_path, opt.steps() > 0 ? std::ios::app : std::ios::trunc);
        if (opt.steps() == 0) csv << "step,loss,lr,grad_norm,ms,examples_per_s\n";
        auto save = [&] {
            opt.save(state_path, {{"pali3.train.data_position", std::to_string(position)},
                                  {"pali3.train.seed", std::to_string(o.seed)},
                                  {std::string(models::config_metadata_key), models::config_to_string(cfg)}});
            weights::memory_source w;
            ps.save_values(w);
            weights::write_safetensors(model_path, w, {{std::string(models::config_metadata_key), models::config_to_string(cfg)}});
        };
        const std::size_t end = o.stop_at ? std::min(o.stop_at, o.steps) : o.steps;
        while (opt.steps() < end) {
            stopwatch sw;
            ps.zero_grad();
            double loss = 0;
            for (std::size_t micro = 0; micro < o.accumulate; ++micro) {
                std::vector<const example*> batch;
                for (std::size_t i = 0; i < o.batch; ++i) batch.push_back(&examples[order.at(position++)]);
                loss += detail::batch_loss(model, c, batch, tok, o, ps, pool, images);
            }
            const auto st = opt.step(o.accumulate, pool);
            train_progress p;
            p.step = opt.steps();
            p.steps = o.steps;
            p.loss = loss / static_cast<double>(o.accumulate);
            p.lr = st.lr;
            p.grad_norm = st.grad_norm;
            p.ms = sw.ms();
            p.examples_per_s = static_cast<double>(o.batch * o.accumulate) / (p.ms / 1000.0);
            csv << p.step << ',' << p.loss << ',' << p.lr << ',' << p.grad_norm << ',' << p.ms << ',' << p.examples_per_s << '\n';
            csv.flush();
            if (on_step) on_step(p);
            if (o.save_every && p.step % o.save_every == 0) save();
        }
        save();
        final_step = opt.steps();
    });
    return final_step;
}

}  // namespace pali3::pipeline
