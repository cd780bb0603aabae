// A SigLIP checkpoint as an application uses it: a vision tower with its MAP head (image
// embeddings) or a two-tower pair (also text embeddings and zero-shot scores sigmoid(t<i,t> + b)),
// in any naming, with per-stage timings.
//
//     pali3::pipeline::siglip_pipeline p({.weights = "siglip/model.safetensors", .tokenizer = "spiece.model"});
//     auto img = p.embed_image("photo.jpg");                 // or embed_images({...}): (n, dim), one batch
//     auto txt = p.embed_texts({"a cat", "a dog"});
//     auto probs = p.scores(img, txt, 2);
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "pali3/core/threading.hpp"
#include "pali3/io/image.hpp"
#include "pali3/models/dispatch.hpp"
#include "pali3/pipeline/config_source.hpp"
#include "pali3/pipeline/preprocessing.hpp"
#include "pali3/pipeline/weight_dtype.hpp"
#include "pali3/text/tokenizer.hpp"
#include "pali3/vision/preprocess.hpp"
#include "pali3/weights/checkpoint.hpp"
#include "pali3/weights/npy.hpp"

namespace pali3::pipeline {

struct siglip_options {
    std::string weights, tokenizer;  // tokenizer: only for text embeddings
    config_request config;
    std::size_t threads = 2;
    preprocessing_request preprocessing;  // else preprocessor_config.json beside the weights, else big_vision's
    std::size_t max_memory = 0;  // bytes the estimate may reach (0: the machine's memory)
    std::string dtype = "f32";   // weights in memory: f32, bf16 or int8 (pipeline/weight_dtype.hpp)
    std::size_t int8_group = 0;  // int8: a scale per row (0) or per this many values
};

// Preprocessed pixels for a tower of side o.size: an image file preprocessed by `o`, or a float32
// .npy of shape (1, 3, size, size) already preprocessed (to feed exactly what another
// implementation saw); with `batch`, an .npy of (n, 3, size, size) gives n images.
inline std::vector<float> load_pixels(const std::string& spec, const vision::preprocess_options& o, bool batch = false) {
    const std::size_t size = o.size;
    if (spec.size() > 4 && spec.compare(spec.size() - 4, 4, ".npy") == 0) {
        const auto bytes = weights::map_file(spec);
        const auto arr = weights::parse_npy(bytes.data, bytes.size, spec);
        const bool fits = arr.descr == "<f4" && arr.shape.size() == 4 && arr.shape[0] >= 1 && (batch || arr.shape[0] == 1) &&
                          arr.shape[1] == 3 && arr.shape[2] == size && arr.shape[3] == size;
        if (!fits)
            throw shape_error(core::describe("preprocessed pixels", spec,
                                             std::string("<f4 (") + (batch ? "n" : "1") + ", 3, " + std::to_string(size) + ", " +
                                                 std::to_string(size) + ")",
                                             arr.descr + " " + shape_string(arr.shape)));
        std::vector<float> px(arr.shape[0] * 3 * size * size);
        std::memcpy(px.data(), arr.data, px.size() * 4);
        return px;
    }
    return vision::preprocess(io::load_image(spec), o);
}

class siglip_pipeline {
public:
    // A template (like pali3_pipeline's) so that only programs constructing one compile the towers.
    template <class Models = models::runtime_models>
    explicit siglip_pipeline(const siglip_options& o, const Models& make_model = {}) : opts_(o), pool_(o.threads ? o.threads : 1) {
        if (o.weights.empty()) throw value_error(core::describe("missing flag", "--weights", "a SigLIP checkpoint", "none"));
        ckpt_.emplace(weights::checkpoint::open(o.weights));
        found_ = require_config(o.config, &*ckpt_, o.weights);
        const auto kind = found_->config.kind;
        if (kind != models::model_kind::vit && kind != models::model_kind::siglip)
            throw config_error(core::describe("embed needs a SigLIP config", o.weights,
                                              "a SigLIP vision or SiglipModel config (config.json, --preset vit:/siglip:)",
                                              models::kind_name(kind)));
        if (!found_->config.vision.map_head)
            throw config_error(core::describe("embed needs the MAP head", o.weights, "vision_use_head / map_head true", "no head"));
        pre_ = resolve_preprocessing(o.preprocessing, o.weights, found_->config.vision.image, &pre_source_);
        check_dtype(o.dtype, o.int8_group);
        models::run_request req;  // image_batch images or text_batch texts at a time
        set_weight_request(req, o.dtype, o.int8_group);
        req.batch = kind == models::model_kind::siglip ? text_batch : image_batch;
        models::require_memory(models::estimate_memory(found_->config, req), o.max_memory, o.weights);
        const weights::mapped_source src(*ckpt_, weights::rules_for(weights::detect_naming(ckpt_->names()), models::kind_name(kind)));
        make_model(found_->config, storage_of(o.dtype), [&]<class M>(std::type_identity<M>, const auto& c) {
            if constexpr (models::pooling_vision_model<M> || requires(const M& m) { m.vision().pooled_dim(); m.log_t(); })
                engine_ = std::make_unique<engine_for<M>>(c, src, o.dtype, o.int8_group, times_);
        });
        if (!o.tokenizer.empty()) tok_.emplace(text::tokenizer::load(o.tokenizer));
    }

    const models::any_config& config() const { return found_->config; }
    bool has_text() const { return engine_->has_text(); }
    std::size_t embed_dim() const { return engine_->embed_dim(); }
    float log_t() const { return engine_->log_t(); }
    float bias() const { return engine_->bias(); }
    const timings& times() const { return times_; }
    // Where the image preprocessing came from (flags, preprocessor_config.json, big_vision's).
    const std::string& preprocessing_source() const { return pre_source_; }

    // (embed_dim) from an image file or a preprocessed .npy.
    std::vector<float> embed_image(const std::string& image) {
        std::vector<std::size_t> counts;
        auto out = embed_images({image}, &counts);
        if (counts[0] != 1)
            throw shape_error(core::describe("one image", image, "an image file or (1, 3, S, S) pixels", std::to_string(counts[0]) + " images"));
        return out;
    }

    // (n, embed_dim) for image files and preprocessed .npy files ((k, 3, S, S) each: k images;
    // `counts`, when given, receives each file's k), run through the tower `image_batch` images at
    // a time (each row the same as alone: the tower has no cross-image state).
    std::vector<float> embed_images(const std::vector<std::string>& images, std::vector<std::size_t>* counts = nullptr) {
        if (images.empty()) throw value_error(core::describe("no image", "siglip_pipeline::embed_images", "at least one", "none"));
        const std::size_t per = 3 * pre_.size * pre_.size;
        std::vector<float> px;
        if (counts) counts->clear();
        for (const auto& spec : images) {
            const auto one = load_pixels(spec, pre_, /*batch=*/true);
            px.insert(px.end(), one.begin(), one.end());
            if (counts) counts->push_back(one.size() / per);
        }
        const std::size_t n = px.size() / per;
        stopwatch sw;
        std::vector<float> out;
        out.reserve(n * embed_dim());
        for (std::size_t first = 0; first < n; first += image_batch) {
            const std::size_t k = std::min(image_batch, n - first);
            const auto e = engine_->embed_images(px.data() + first * per, k, pool_);
            out.insert(out.end(), e.begin(), e.end());
        }
        core::require_finite(out, embed_dim(), n > 1 ? "SigLIP image embeddings (row = image)" : "SigLIP image embedding");
        times_.add(n > 1 ? "vision forward (" + std::to_string(n) + " images)" : std::string("vision forward"), sw.ms());
        return out;
    }

    // (labels, embed_dim): each text padded to the tower's max_len as SigLIP does. Run through
    // the tower `text_batch` texts at a time, so activations stay bounded however many labels
    // come (each row's result is the same as alone: the tower has no cross-row state).
    std::vector<float> embed_texts(const std::vector<std::string>& labels) {
        if (!has_text())
            throw config_error(core::describe("--texts needs both SigLIP towers", opts_.weights,
                                              "a SiglipModel checkpoint (vision_model + text_model)", "a vision tower alone"));
        if (!tok_) throw value_error(core::describe("missing flag", "--tokenizer", "the SigLIP text tokenizer", "none"));
        const auto& tc = found_->config.siglip_text;
        if (labels.empty() || labels.size() > max_texts)
            throw value_error(core::describe("number of texts", "--texts", "1.." + std::to_string(max_texts), labels.size()));
        stopwatch sw;
        std::vector<std::int32_t> ids(labels.size() * tc.max_len, tok_->pad_id());
        for (std::size_t i = 0; i < labels.size(); ++i) {
            const auto t = tok_->encode(labels[i]);
            if (t.size() > tc.max_len)
                throw value_error(core::describe("text too long for the SigLIP text tower", "\"" + labels[i] + "\"",
                                                 "<= " + std::to_string(tc.max_len) + " tokens", t.size()));
            for (const auto id : t)
                if (static_cast<std::size_t>(id) >= tc.vocab)
                    throw config_error(core::describe("tokenizer id beyond the text tower's vocabulary", opts_.tokenizer,
                                                      "< " + std::to_string(tc.vocab), id));
            std::copy(t.begin(), t.end(), ids.begin() + static_cast<std::ptrdiff_t>(i * tc.max_len));
        }
        std::vector<float> out;
        out.reserve(labels.size() * embed_dim());
        for (std::size_t first = 0; first < labels.size(); first += text_batch) {
            const std::size_t n = std::min(text_batch, labels.size() - first);
            const std::vector<std::int32_t> part(ids.begin() + static_cast<std::ptrdiff_t>(first * tc.max_len),
                                                 ids.begin() + static_cast<std::ptrdiff_t>((first + n) * tc.max_len));
            const auto e = engine_->embed_texts(part, n, pool_);
            out.insert(out.end(), e.begin(), e.end());
        }
        core::require_finite(out, embed_dim(), "SigLIP text embeddings (row = text)");
        times_.add("text forward (" + std::to_string((labels.size() + text_batch - 1) / text_batch) + " batches)", sw.ms());
        return out;
    }

    // sigmoid(t <img_i, txt_j> + b): (images, n_texts), images = image.size() / embed_dim().
    std::vector<float> scores(const std::vector<float>& image, const std::vector<float>& texts, std::size_t n_texts) const {
        if (!has_text()) throw config_error(core::describe("scores need both SigLIP towers", opts_.weights, "a SiglipModel checkpoint", "a vision tower"));
        return models::contrastive_scores(image.data(), image.size() / embed_dim(), texts.data(), n_texts, embed_dim(), log_t(), bias());
    }

    static constexpr std::size_t max_texts = 65536, text_batch = 64, image_batch = 8;

private:
    struct engine {
        virtual ~engine() = default;
        virtual bool has_text() const = 0;
        virtual std::size_t embed_dim() const = 0;
        virtual float log_t() const = 0;
        virtual float bias() const = 0;
        virtual std::vector<float> embed_images(const float* px, std::size_t n, core::thread_pool& pool) const = 0;
        virtual std::vector<float> embed_texts(const std::vector<std::int32_t>& ids, std::size_t n, core::thread_pool& pool) const = 0;
    };
    // A vision tower alone (M pools) or a pair (M has vision() and text()).
    template <class M>
    struct engine_for final : engine {
        M model;
        template <class Config, class Source>
        engine_for(const Config& c, const Source& src, std::string_view dtype, std::size_t int8_group, timings& t) : model(c) {
            load_weights(model, weights::cursor(src), dtype, int8_group, t, "load");
        }
        static constexpr bool pair = !models::pooling_vision_model<M>;
        const auto& tower() const {
            if constexpr (pair) return model.vision();
            else return model;
        }
        bool has_text() const override { return pair; }
        std::size_t embed_dim() const override { return tower().pooled_dim(); }
        float log_t() const override {
            if constexpr (pair) return model.log_t();
            else return 0.f;
        }
        float bias() const override {
            if constexpr (pair) return model.bias();
            else return 0.f;
        }
        std::vector<float> embed_images(const float* px, std::size_t n, core::thread_pool& pool) const override {
            const auto& cfg = tower().config();
            core::workspace ws(n * cfg.tokens() * cfg.width + tower().workspace_floats(n));
            std::vector<float> tokens(n * cfg.tokens() * cfg.width), pooled(n * embed_dim());
            tower().forward(px, n, layers::image_layout::nchw, tokens.data(), ws, pool);
            tower().pool(tokens.data(), n, pooled.data(), ws, pool);
            return pooled;
        }
        std::vector<float> embed_texts(const std::vector<std::int32_t>& ids, std::size_t n, core::thread_pool& pool) const override {
            if constexpr (pair) {
                core::workspace ws(model.text().workspace_floats(n));
                std::vector<float> out(n * model.text().out_dim());
                model.embed_texts(ids.data(), n, out.data(), ws, pool);
                return out;
            } else {
                throw config_error(core::describe("text embeddings", "siglip_pipeline", "both SigLIP towers", "a vision tower"));
            }
        }
    };

    siglip_options opts_;
    core::thread_pool pool_;
    std::optional<weights::checkpoint> ckpt_;
    std::optional<found_config> found_;
    vision::preprocess_options pre_;
    std::string pre_source_;
    std::unique_ptr<engine> engine_;
    std::optional<text::tokenizer> tok_;
    timings times_;
};

}  // namespace pali3::pipeline
