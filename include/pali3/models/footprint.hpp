// What a config implies before anything is allocated: a lower bound on the number of weights a
// model of that config has (checked against a checkpoint's tensors before the model is built, so
// a config that says "depth 10000000" is refused in microseconds, not after 12 GB), and the memory
// a run of it needs (weights, KV cache, activations), checked against a limit the user can raise.
// All arithmetic saturates at SIZE_MAX instead of wrapping.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdio>
#include <fstream>
#include <limits>
#include <string>

#include "pali3/core/error.hpp"
#include "pali3/models/config_io.hpp"

namespace pali3::models {

namespace footprint_detail {
inline constexpr std::size_t saturated = std::numeric_limits<std::size_t>::max();
constexpr std::size_t mul(std::size_t a, std::size_t b) {
    std::size_t r = 0;
    return __builtin_mul_overflow(a, b, &r) ? saturated : r;
}
constexpr std::size_t add(std::size_t a, std::size_t b) {
    std::size_t r = 0;
    return __builtin_add_overflow(a, b, &r) ? saturated : r;
}
// q, k, v, o of width d with `inner` = heads x head width, and a two- or three-matrix MLP.
constexpr std::size_t attention(std::size_t d, std::size_t inner) { return mul(4, mul(d, inner)); }
constexpr std::size_t mlp(std::size_t d, std::size_t hidden, bool gated) { return mul(gated ? 3 : 2, mul(d, hidden)); }
}  // namespace footprint_detail

// Lower bounds on the weights of each part: the matrices every model of the config has (no
// norms, biases or position tables, which resampling may change in size), so a checkpoint that
// holds fewer elements than this cannot be this model. Counted in two parts: `linear`, the linear
// layers' matrices (what --dtype int8 quantises, the untied T5 head included), and `tables`, the
// embedding tables and the patch embedding, which keep their storage.
struct weight_count {
    std::size_t linear = 0, tables = 0;
    std::size_t total() const { return footprint_detail::add(linear, tables); }
    friend weight_count operator+(const weight_count& a, const weight_count& b) {
        return {footprint_detail::add(a.linear, b.linear), footprint_detail::add(a.tables, b.tables)};
    }
};

inline weight_count count_weights(const vit_config& v) {
    using namespace footprint_detail;
    return {mul(v.depth, add(attention(v.width, v.width), mlp(v.width, v.mlp, false))),
            mul(mul(v.patch, v.patch), mul(v.channels, v.width))};
}
inline weight_count count_weights(const t5_config& t, bool gated) {
    using namespace footprint_detail;
    const std::size_t inner = mul(t.heads, t.d_kv), ffn = mlp(t.d_model, t.d_ff, gated), table = mul(t.vocab, t.d_model);
    const std::size_t enc = mul(t.encoder_layers, add(attention(t.d_model, inner), ffn));
    const std::size_t dec = mul(t.decoder_layers, add(mul(2, attention(t.d_model, inner)), ffn));
    return {add(add(enc, dec), t.tied_embeddings ? 0 : table), table};  // the untied head is a linear layer
}
inline weight_count count_weights(const text_tower_config& t) {
    using namespace footprint_detail;
    return {mul(t.depth, add(attention(t.width, t.width), mlp(t.width, t.mlp, false))), mul(t.vocab, t.width)};
}
inline weight_count count_weights(const any_config& c) {
    using namespace footprint_detail;
    switch (c.kind) {
        case model_kind::vit: return count_weights(c.vision);
        case model_kind::t5: return count_weights(c.text, c.gated_ffn);
        case model_kind::pali3:
            return count_weights(c.pali.vision) + weight_count{mul(c.pali.projector.in, c.pali.projector.out), 0} +
                   count_weights(c.pali.text, c.gated_ffn);
        case model_kind::siglip_text: return count_weights(c.siglip_text);
        case model_kind::siglip: return count_weights(c.vision) + count_weights(c.siglip_text);
    }
    return {};
}

template <class... Config>
std::size_t min_weights(const Config&... c) { return count_weights(c...).total(); }
template <class... Config>
std::size_t linear_weights(const Config&... c) { return count_weights(c...).linear; }

// ---- run memory -------------------------------------------------------------------------------

// What a run will hold at its peak, in bytes, estimated from the config and the request. Meant to
// refuse impossible requests before they allocate, not to predict RSS exactly: it counts the
// weight matrices, the KV cache and the main activation buffers, so the real peak is somewhat
// higher (norms, tables, the tokenizer, the image, the program itself).
struct memory_estimate {
    std::size_t weights = 0, kv_cache = 0, activations = 0;
    std::size_t total() const { return footprint_detail::add(footprint_detail::add(weights, kv_cache), activations); }
};

struct run_request {
    std::size_t weight_bytes = 4;  // per weight: 4 f32, 2 bf16
    bool int8 = false;             // linear layers' matrices as int8 (1 byte per weight + f32 scales)
    std::size_t int8_group = 0;    // their scales: one per row (0) or per this many weights
    bool prepack = false;          // a second, packed copy of the matrices (int8: 1 byte per weight, where VNNI packs them)
    std::size_t batch = 1;         // images / sequences at once
    std::size_t prompt_tokens = 64, new_tokens = 32, beam = 1;
    bool training = false;         // + gradients and AdamW moments (3 more f32 per weight)
};

inline memory_estimate estimate_memory(const any_config& c, const run_request& r) {
    using namespace footprint_detail;
    memory_estimate m;
    const weight_count count = count_weights(c);
    const std::size_t n_weights = count.total();
    if (r.int8) {
        const std::size_t scales = r.int8_group ? mul(count.linear, 4) / r.int8_group : 0;
        m.weights = add(add(count.linear, scales), mul(count.tables, r.weight_bytes));
        if (r.prepack && r.int8_group == 0) m.weights = add(m.weights, count.linear);  // the integer GEMM's panels (at most)
    } else {
        m.weights = mul(n_weights, add(r.weight_bytes, r.prepack ? r.weight_bytes : 0));
    }
    if (r.training) m.weights = add(m.weights, mul(n_weights, 12));
    auto tower = [&](const vit_config& v) {  // residual stream, MLP hidden and one head's scores row block
        const std::size_t tokens = mul(v.grid(), v.grid());
        return mul(mul(r.batch, tokens), mul(4, add(mul(4, v.width), v.mlp)));
    };
    auto text = [&](const t5_config& t, std::size_t enc_len) {
        const std::size_t rows = mul(r.batch, r.beam), inner = mul(t.heads, t.d_kv);
        const std::size_t cache_len = add(r.new_tokens, 1);
        m.kv_cache = add(m.kv_cache, mul(mul(t.decoder_layers, 2), mul(mul(rows, add(cache_len, enc_len)), mul(inner, 4))));
        return mul(mul(r.batch, enc_len), mul(4, add(mul(4, t.d_model), add(t.d_ff, mul(t.heads, enc_len)))));
    };
    switch (c.kind) {
        case model_kind::vit: m.activations = tower(c.vision); break;
        case model_kind::siglip: m.activations = std::max(tower(c.vision), mul(mul(r.batch, c.siglip_text.max_len), mul(4, add(mul(4, c.siglip_text.width), c.siglip_text.mlp)))); break;
        case model_kind::siglip_text: m.activations = mul(mul(r.batch, c.siglip_text.max_len), mul(4, add(mul(4, c.siglip_text.width), c.siglip_text.mlp))); break;
        case model_kind::t5: m.activations = text(c.text, r.prompt_tokens); break;
        case model_kind::pali3: {
            const std::size_t enc_len = add(mul(c.pali.vision.grid(), c.pali.vision.grid()), r.prompt_tokens);
            m.activations = std::max(tower(c.pali.vision), text(c.pali.text, enc_len));
            break;
        }
    }
    if (r.training) m.activations = mul(m.activations, 8);  // every block's activations kept for backward
    return m;
}

// The machine's memory (MemTotal of /proc/meminfo), the default limit; 0 when unknown.
inline std::size_t machine_memory_bytes() {
    std::ifstream in("/proc/meminfo");
    std::string key;
    std::size_t kb = 0;
    std::string unit;
    while (in >> key >> kb >> unit)
        if (key == "MemTotal:") return footprint_detail::mul(kb, 1024);
    return 0;
}

inline std::string memory_size(std::size_t bytes) {
    if (bytes == footprint_detail::saturated) return "more than 18 EB (the size arithmetic saturated)";
    const char* units[] = {"B", "KB", "MB", "GB", "TB", "PB", "EB"};
    double v = static_cast<double>(bytes);
    int u = 0;
    while (v >= 1000 && u < 6) {
        v /= 1000;
        ++u;
    }
    char buf[48];
    std::snprintf(buf, sizeof buf, u ? "%.2f %s" : "%.0f %s", v, units[u]);
    return buf;
}

// Throws when the estimate is over `limit` bytes (0: the machine's memory), naming the parts.
inline void require_memory(const memory_estimate& m, std::size_t limit, std::string_view where) {
    if (limit == 0) limit = machine_memory_bytes();
    if (limit == 0 || m.total() <= limit) return;
    throw value_error(core::describe("the run would need more memory than allowed", where,
                                     "at most " + memory_size(limit) + " (--max-memory; default: the machine's memory)",
                                     "about " + memory_size(m.total()) + ": weights " + memory_size(m.weights) + ", KV cache " +
                                         memory_size(m.kv_cache) + ", activations " + memory_size(m.activations)));
}

// A checkpoint that holds far fewer weight elements than the config's lower bound cannot be a
// model of that config (a wrong depth, width or vocabulary in its config, e.g. depth 10^7 in a
// 2 MB file): refused before anything the config implies is allocated. Up to 4x the file (+ 16 M)
// is let through, so a near miss still gets the per-tensor report of the loader or `inspect`
// while what it allocates stays bounded by the file's size.
inline constexpr std::size_t weights_fit_slack = 4, weights_fit_extra = std::size_t{1} << 24;

inline void require_weights_fit(const any_config& c, std::size_t checkpoint_elements, std::string_view config_source,
                                std::string_view checkpoint_path) {
    using namespace footprint_detail;
    const std::size_t need = min_weights(c);
    if (need <= add(mul(weights_fit_slack, checkpoint_elements), weights_fit_extra)) return;
    throw config_error(core::describe(
        "config does not fit the checkpoint", std::string(checkpoint_path) + ", config from " + std::string(config_source),
        "about the checkpoint's " + std::to_string(checkpoint_elements) + " weights (over 4x + 16 M is refused)",
        "a " + kind_name(c.kind) + " config needing at least " +
            (need == footprint_detail::saturated ? std::string("2^64") : std::to_string(need)) + " weights"));
}

}  // namespace pali3::models
