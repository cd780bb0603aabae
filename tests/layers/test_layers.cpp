// Layers against plain double-precision compositions of the reference kernels, on random
// weights from the seeded_layers source, odd sizes and batch > 1.
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "pali3/layers/attention.hpp"
#include "pali3/layers/mlp.hpp"
#include "pali3/kernels/reference.hpp"
#include "pali3/layers/norm.hpp"
#include "pali3/train/parameters.hpp"
#include "pali3/weights/memory_source.hpp"
#include "pali3/weights/random_source.hpp"
#include "../common.hpp"

using namespace pali3;
using namespace pali3::layers;

namespace {

const weights::random_source seeded_layers(1234);

// Reads back a loaded parameter as floats (by saving the module).
template <class M>
std::vector<float> weight_of(M& module, const std::string& name) {
    weights::memory_source saved;
    save(module, saved);
    const auto t = saved.get(name, [&] {
        for (const auto& p : parameters(module))
            if (p.name == name) return p.shape;
        throw std::runtime_error("no parameter " + name);
    }());
    std::vector<float> out(t.size());
    if (t.type == weights::dtype::f32) std::copy_n(static_cast<const float*>(t.data), t.size(), out.begin());
    else
        for (std::size_t i = 0; i < t.size(); ++i) out[i] = to_float(static_cast<const bf16*>(t.data)[i]);
    return out;
}

// y = x W^T + b in double.
std::vector<double> dense(const std::vector<double>& x, std::size_t rows, const std::vector<float>& w,
                          const std::vector<float>* b, std::size_t in, std::size_t out) {
    std::vector<double> y(rows * out);
    for (std::size_t r = 0; r < rows; ++r)
        for (std::size_t o = 0; o < out; ++o) {
            double s = b ? (*b)[o] : 0.0;
            for (std::size_t i = 0; i < in; ++i) s += x[r * in + i] * w[o * in + i];
            y[r * out + o] = s;
        }
    return y;
}

std::vector<double> to_double(const std::vector<float>& v) { return {v.begin(), v.end()}; }

}  // namespace

TEST_CASE("parameter visitor lists names, shapes and counts", "[layers][visitor]") {
    attention<attn::inv_sqrt_dim, bf16> a({96, 4, 0, true});
    const auto ps = parameters(a, "blocks.0.attn");
    REQUIRE(ps.size() == 8);
    CHECK(ps[0].name == "blocks.0.attn.q.weight");
    CHECK(ps[0].shape == shape_t{96, 96});
    CHECK(ps[0].storage == "BF16");
    CHECK(ps[1].name == "blocks.0.attn.q.bias");
    CHECK(ps[1].storage == "F32");
    CHECK(parameter_count(a) == 4 * (96 * 96 + 96));
    gated_mlp<> g({2048, 5120, false});
    CHECK(parameter_count(g) == 3u * 2048 * 5120);
    CHECK_THROWS_AS(gated_mlp<>({16, 32, true}), config_error);
    CHECK_THROWS_WITH(attention<>({100, 3, 0, true}),
                      "attention heads do not divide the width (at attention): expected width % heads == 0, found 100 % 3 = 1");
}

TEST_CASE("save then load reproduces a module exactly", "[layers][visitor]") {
    mlp<> m({37, 53, true}, weights::cursor(seeded_layers, "mlp"));
    weights::memory_source saved;
    save(m, saved, "mlp");
    CHECK(saved.size() == 4);
    mlp<> again({37, 53, true}, weights::cursor(saved, "mlp"));
    const auto x = test::random_vector(5 * 37, 1);
    std::vector<float> y1(5 * 37), y2(5 * 37);
    core::workspace ws(mlp<>::workspace_floats(m.config(), 5));
    m.forward(x.data(), 5, y1.data(), ws);
    again.forward(x.data(), 5, y2.data(), ws);
    CHECK(y1 == y2);
    // Missing tensor: the full path is named.
    weights::memory_source partial;
    partial.add<float>("mlp.fc1.weight", test::random_vector(53 * 37, 1), {53, 37});
    CHECK_THROWS_WITH((mlp<>({37, 53, true}, weights::cursor(partial, "mlp"))), Catch::Contains("mlp.fc1.bias"));
}

TEMPLATE_TEST_CASE("mlp and gated mlp match the reference", "[layers][mlp]", float, bf16) {
    const std::size_t rows = 7, width = 45, hidden = 83;
    const auto x = test::random_vector(rows * width, 3);
    core::workspace ws(gated_mlp<>::workspace_floats({width, hidden, false}, rows));
    {
        mlp<kernels::act::gelu_tanh, TestType> m({width, hidden, true}, weights::cursor(seeded_layers, "m"));
        auto y = test::random_vector(rows * width, 4);
        const auto y0 = y;
        m.forward(x.data(), rows, y.data(), ws, core::sequential{}, /*accumulate=*/true);
        const auto w1 = weight_of(m, "fc1.weight"), b1 = weight_of(m, "fc1.bias");
        const auto w2 = weight_of(m, "fc2.weight"), b2 = weight_of(m, "fc2.bias");
        auto h = dense(to_double(x), rows, w1, &b1, width, hidden);
        for (auto& v : h) v = kernels::ref::gelu_tanh(v);
        auto expect = dense(h, rows, w2, &b2, hidden, width);
        for (std::size_t i = 0; i < expect.size(); ++i) expect[i] += y0[i];
        CHECK(test::nmse(y, expect) < test::bound_for<TestType>(1e-10));
    }
    {
        gated_mlp<kernels::act::gelu_tanh, TestType> g({width, hidden, false}, weights::cursor(seeded_layers, "g"));
        std::vector<float> y(rows * width);
        g.forward(x.data(), rows, y.data(), ws);
        const auto wi0 = weight_of(g, "wi_0.weight"), wi1 = weight_of(g, "wi_1.weight"), wo = weight_of(g, "wo.weight");
        const auto a = dense(to_double(x), rows, wi0, nullptr, width, hidden);
        auto u = dense(to_double(x), rows, wi1, nullptr, width, hidden);
        for (std::size_t i = 0; i < u.size(); ++i) u[i] *= kernels::ref::gelu_tanh(a[i]);
        const auto expect = dense(u, rows, wo, nullptr, hidden, width);
        CHECK(test::nmse(y, expect) < test::bound_for<TestType>(1e-10));
    }
}

// act::by_config: every named activation, fused (the default) or as the separate pass.
TEMPLATE_TEST_CASE("MLPs run the activation their config names", "[layers][mlp][activation]", float, bf16) {
    const std::size_t rows = 5, width = 37, hidden = 71;
    const auto x = test::random_vector(rows * width, 13);
    core::workspace ws(gated_mlp<>::workspace_floats({width, hidden, false}, rows));
    using chosen = kernels::act::by_config<kernels::act::gelu_tanh>;
    for (const auto& [id, name] : kernels::activation_names) {
        INFO("activation " << name);
        const auto ref_act = [id = id](double v) {
            return kernels::with_activation(id, [&]<class A>(std::type_identity<A>) { return kernels::ref::apply<A>(v); });
        };
        mlp<chosen, TestType> m({width, hidden, true, id}, weights::cursor(seeded_layers, "m"));
        CHECK(m.config().activation == id);
        std::vector<float> y(rows * width);
        m.forward(x.data(), rows, y.data(), ws);
        const auto w1 = weight_of(m, "fc1.weight"), b1 = weight_of(m, "fc1.bias");
        const auto w2 = weight_of(m, "fc2.weight"), b2 = weight_of(m, "fc2.bias");
        auto h = dense(to_double(x), rows, w1, &b1, width, hidden);
        for (auto& v : h) v = ref_act(v);
        CHECK(test::nmse(y, dense(h, rows, w2, &b2, hidden, width)) < test::bound_for<TestType>(1e-10));

        gated_mlp<chosen, TestType> g({width, hidden, false, id}, weights::cursor(seeded_layers, "g"));
        g.forward(x.data(), rows, y.data(), ws);
        const auto wi0 = weight_of(g, "wi_0.weight"), wi1 = weight_of(g, "wi_1.weight"), wo = weight_of(g, "wo.weight");
        const auto a = dense(to_double(x), rows, wi0, nullptr, width, hidden);
        auto u = dense(to_double(x), rows, wi1, nullptr, width, hidden);
        for (std::size_t i = 0; i < u.size(); ++i) u[i] *= ref_act(a[i]);
        CHECK(test::nmse(y, dense(u, rows, wo, nullptr, hidden, width)) < test::bound_for<TestType>(1e-10));
    }
    // of_type: the fused default; a fixed policy refuses a config naming another activation.
    CHECK(mlp<chosen, TestType>({width, hidden, true}).config().activation == kernels::activation_id::gelu_tanh);
    CHECK(gated_mlp<kernels::act::by_config<kernels::act::silu>, TestType>({width, hidden, false}).config().activation ==
          kernels::activation_id::silu);
    CHECK_THROWS_WITH((mlp<kernels::act::gelu_tanh, TestType>({width, hidden, true, kernels::activation_id::silu})),
                      Catch::Contains("activation the config names is not the layer's (at mlp)") && Catch::Contains("found silu"));
    CHECK_THROWS_AS((gated_mlp<kernels::act::relu, TestType>({width, hidden, false, kernels::activation_id::gelu_erf})),
                    pali3::config_error);
}

TEST_CASE("T5 relative position buckets", "[layers][position_bias]") {
    // Bidirectional, 32 buckets, max distance 128: 16 per sign, 8 exact, then log-spaced.
    CHECK(relative_position_bucket(0, true, 32, 128) == 0);
    CHECK(relative_position_bucket(-3, true, 32, 128) == 3);
    CHECK(relative_position_bucket(3, true, 32, 128) == 16 + 3);
    CHECK(relative_position_bucket(-8, true, 32, 128) == 8);    // 8 + log(1)/log(16)*8
    CHECK(relative_position_bucket(-16, true, 32, 128) == 10);  // 8 + log(2)/log(16)*8 = 10
    CHECK(relative_position_bucket(-127, true, 32, 128) == 15);
    CHECK(relative_position_bucket(-1000, true, 32, 128) == 15);
    CHECK(relative_position_bucket(1000, true, 32, 128) == 31);
    // Unidirectional (decoder): future keys share bucket 0; 16 exact, then log up to 31.
    CHECK(relative_position_bucket(5, false, 32, 128) == 0);
    CHECK(relative_position_bucket(-5, false, 32, 128) == 5);
    CHECK(relative_position_bucket(-32, false, 32, 128) == 21);  // 16 + log(2)/log(8)*16 = 21.33
    CHECK(relative_position_bucket(-500, false, 32, 128) == 31);
}

namespace {

struct attention_case {
    std::size_t batch, t, tm, width, heads;
    bool causal;
    bool padded;
    bool t5;  // unscaled + relative bias, no biases
};

// Double-precision multi-head attention from saved q/k/v/o weights.
template <class Layer>
std::vector<double> reference_attention(Layer& layer, const std::vector<float>& x, const std::vector<float>& mem,
                                        const attention_case& c, const std::vector<std::size_t>& key_lens,
                                        const relative_position_bias* pb, double scale,
                                        const std::vector<std::uint8_t>* keep = nullptr) {
    const auto& cfg = layer.config();
    const std::size_t inner = cfg.inner(), dh = cfg.dim_per_head();
    const auto wq = weight_of(layer, "q.weight"), wk = weight_of(layer, "k.weight"), wv = weight_of(layer, "v.weight"),
               wo = weight_of(layer, "o.weight");
    std::vector<float> bq, bk, bv, bo;
    if (cfg.bias) bq = weight_of(layer, "q.bias"), bk = weight_of(layer, "k.bias"), bv = weight_of(layer, "v.bias"), bo = weight_of(layer, "o.bias");
    const auto q = dense(to_double(x), c.batch * c.t, wq, cfg.bias ? &bq : nullptr, c.width, inner);
    const auto k = dense(to_double(mem), c.batch * c.tm, wk, cfg.bias ? &bk : nullptr, c.width, inner);
    const auto v = dense(to_double(mem), c.batch * c.tm, wv, cfg.bias ? &bv : nullptr, c.width, inner);
    std::vector<double> ctx(c.batch * c.t * inner, 0.0);
    std::vector<float> bias_values;
    for (std::size_t b = 0; b < c.batch; ++b)
        for (std::size_t h = 0; h < c.heads; ++h) {
            kernels::distance_bias db;
            if (pb) db = pb->by_distance(h, 0, c.t, c.tm, bias_values);
            for (std::size_t i = 0; i < c.t; ++i) {
                std::vector<double> s(c.tm, -std::numeric_limits<double>::infinity());
                double m = -std::numeric_limits<double>::infinity();
                for (std::size_t j = 0; j < c.tm; ++j) {
                    if (j >= key_lens[b] || (c.causal && j > i) || (keep && !(*keep)[b * c.tm + j])) continue;
                    double d = 0;
                    for (std::size_t e = 0; e < dh; ++e)
                        d += q[(b * c.t + i) * inner + h * dh + e] * k[(b * c.tm + j) * inner + h * dh + e];
                    s[j] = d * scale + (pb ? db.by_distance[db.zero + static_cast<std::ptrdiff_t>(j) - static_cast<std::ptrdiff_t>(i)] : 0.0);
                    m = std::max(m, s[j]);
                }
                if (m == -std::numeric_limits<double>::infinity()) continue;
                double sum = 0;
                for (auto& sj : s) sum += (sj = std::exp(sj - m));
                for (std::size_t j = 0; j < c.tm; ++j)
                    for (std::size_t e = 0; e < dh; ++e)
                        ctx[(b * c.t + i) * inner + h * dh + e] += s[j] / sum * v[(b * c.tm + j) * inner + h * dh + e];
            }
        }
    return dense(ctx, c.batch * c.t, wo, cfg.bias ? &bo : nullptr, inner, c.width);
}

template <class Scaling>
void check_attention(const attention_case& c) {
    const std::size_t dh = c.width / c.heads;
    attention<Scaling> layer({c.width, c.heads, 0, !c.t5}, weights::cursor(seeded_layers, "attn"));
    relative_position_bias pb({c.heads, 32, 128, !c.causal}, weights::cursor(seeded_layers, "rel"));
    const bool self = c.tm == c.t;
    const auto x = test::random_vector(c.batch * c.t * c.width, 11);
    const auto mem = self ? x : test::random_vector(c.batch * c.tm * c.width, 12);
    std::vector<std::size_t> key_lens(c.batch, c.tm);
    if (c.padded)
        for (std::size_t b = 0; b < c.batch; ++b) key_lens[b] = c.tm - (b * 3) % c.tm;
    kernels::attention_mask mask;
    mask.causal = c.causal;
    const relative_position_bias* pbp = c.t5 ? &pb : nullptr;
    const double scale = c.t5 ? 1.0 : 1.0 / std::sqrt(static_cast<double>(dh));
    const auto expect = reference_attention(layer, x, mem, c, key_lens, pbp, scale);

    core::workspace ws(attention<Scaling>::workspace_floats(layer.config(), c.batch * c.t, c.batch * c.tm));
    for (std::size_t threads : {1u, 2u}) {
        core::thread_pool pool(threads);
        std::vector<float> y(c.batch * c.t * c.width);
        layer.forward_cross(x.data(), c.batch, c.t, mem.data(), c.tm, y.data(), ws, pool, mask,
                            c.padded ? std::span<const std::size_t>(key_lens) : std::span<const std::size_t>{}, pbp);
        INFO("batch " << c.batch << " t " << c.t << " tm " << c.tm << " causal " << c.causal << " padded " << c.padded
                      << " t5 " << c.t5 << " threads " << threads);
        REQUIRE(test::nmse(y, expect) < 1e-9);
    }
}

}  // namespace

TEST_CASE("attention matches the reference: self, cross, masks, T5 bias", "[layers][attention]") {
    const attention_case cases[] = {
        {1, 1, 1, 16, 2, false, false, false},   {2, 9, 9, 24, 3, false, true, false},
        {3, 70, 70, 40, 5, true, false, false},  {2, 33, 33, 32, 4, true, true, true},
        {2, 300, 300, 24, 2, false, true, false}, {2, 13, 29, 36, 6, false, true, false},
        {1, 150, 150, 32, 4, false, false, true}, {2, 5, 280, 16, 2, false, true, true},
    };
    for (const auto& c : cases) {
        if (c.t5) check_attention<attn::unscaled>(c);
        else check_attention<attn::inv_sqrt_dim>(c);
    }
}

TEST_CASE("tiled attention equals untiled, fully masked rows give zeros", "[layers][attention]") {
    const std::size_t tq = 67, tk = 301, dh = 19;
    const auto q = test::random_vector(tq * dh, 1), k = test::random_vector(tk * dh, 2), v = test::random_vector(tk * dh, 3);
    kernels::attention_mask mask;
    mask.causal = true;
    mask.q_offset = tk - tq;  // queries are the last tq positions (KV-cache decoding shape)
    mask.prefix = 40;
    std::vector<float> big(tq * dh), small(tq * dh);
    kernels::attention(tq, tk, dh, q.data(), dh, k.data(), dh, v.data(), dh, big.data(), dh, 0.3f, mask, {}, {1024, 4096});
    kernels::attention(tq, tk, dh, q.data(), dh, k.data(), dh, v.data(), dh, small.data(), dh, 0.3f, mask, {}, {5, 7});
    std::vector<double> bd(big.begin(), big.end());
    CHECK(test::nmse(small, bd) < 1e-12);

    kernels::attention_mask none;
    none.key_len = 0;
    std::vector<float> out(tq * dh, 7.f);
    kernels::attention(tq, tk, dh, q.data(), dh, k.data(), dh, v.data(), dh, out.data(), dh, 0.3f, none);
    for (float o : out) REQUIRE(o == 0.f);
    CHECK_THROWS_AS(kernels::attention(tq, tk, dh, q.data(), dh, k.data(), dh, v.data(), dh, out.data(), dh, -1.f), value_error);
}

namespace {
// softmax(scale q k^T + bias + mask) v for one head, in double.
std::vector<double> reference_head(std::size_t tq, std::size_t tk, std::size_t dh, const std::vector<float>& q,
                                   std::size_t ldq, const std::vector<float>& k, const std::vector<float>& v,
                                   std::size_t ldkv, double scale, const kernels::attention_mask& mask,
                                   const std::vector<float>& by_distance, std::ptrdiff_t zero) {
    std::vector<double> out(tq * dh, 0.0);
    for (std::size_t i = 0; i < tq; ++i) {
        std::vector<double> s(tk, 0.0);
        double m = -std::numeric_limits<double>::infinity();
        for (std::size_t j = 0; j < tk; ++j) {
            if (!mask.visible(i, j)) continue;
            double d = 0;
            for (std::size_t e = 0; e < dh; ++e) d += double(q[i * ldq + e]) * k[j * ldkv + e];
            s[j] = d * scale + by_distance[static_cast<std::size_t>(zero + std::ptrdiff_t(j) - std::ptrdiff_t(mask.q_offset + i))];
            m = std::max(m, s[j]);
        }
        if (m == -std::numeric_limits<double>::infinity()) continue;
        double sum = 0;
        for (std::size_t j = 0; j < tk; ++j) sum += mask.visible(i, j) ? std::exp(s[j] - m) : 0.0;
        for (std::size_t j = 0; j < tk; ++j)
            if (mask.visible(i, j))
                for (std::size_t e = 0; e < dh; ++e) out[i * dh + e] += std::exp(s[j] - m) / sum * v[j * ldkv + e];
    }
    return out;
}
}  // namespace

TEST_CASE("attention honours any 0/1 key mask: kernel against the double reference", "[layers][attention][mask]") {
    struct shape {
        std::size_t tq, tk, dh;
        bool causal;
        std::size_t key_len, q_offset;
        const char* pattern;  // how keep is made
    };
    for (const shape& sh : {shape{7, 13, 5, false, 13, 0, "holes"}, shape{67, 301, 19, false, 301, 0, "left"},
                            shape{40, 300, 24, false, 280, 0, "first-block-hidden"}, shape{33, 33, 9, true, 33, 0, "holes"},
                            shape{4, 77, 16, true, 77, 73, "random"}, shape{1, 258, 8, false, 258, 0, "random"}}) {
        const auto q = test::random_vector(sh.tq * sh.dh, 41), k = test::random_vector(sh.tk * sh.dh, 42),
                   v = test::random_vector(sh.tk * sh.dh, 43);
        const auto by_distance = test::random_vector(sh.tq + sh.q_offset + sh.tk + 1, 44, 0.5f);
        std::vector<std::uint8_t> keep(sh.tk, 1);
        const std::string pattern = sh.pattern;
        std::mt19937 rng(7);
        for (std::size_t j = 0; j < sh.tk; ++j) {
            if (pattern == "holes") keep[j] = j % 3 != 1;
            if (pattern == "left") keep[j] = j >= 45;
            if (pattern == "first-block-hidden") keep[j] = j >= 260 || j % 11 == 0 ? 1 : 0;
            if (pattern == "random") keep[j] = rng() % 2;
        }
        keep[sh.tk - 1] = 1;
        kernels::attention_mask mask;
        mask.causal = sh.causal;
        mask.q_offset = sh.q_offset;
        mask.key_len = sh.key_len;
        mask.keep = keep.data();
        const kernels::distance_bias bias{by_distance.data(), static_cast<std::ptrdiff_t>(sh.tq + sh.q_offset)};
        const auto expect = reference_head(sh.tq, sh.tk, sh.dh, q, sh.dh, k, v, sh.dh, 0.4, mask, by_distance, bias.zero);
        for (const kernels::attention_tiling tiling : {kernels::attention_tiling{}, kernels::attention_tiling{5, 7}}) {
            std::vector<float> out(sh.tq * sh.dh, 9.f);
            kernels::attention(sh.tq, sh.tk, sh.dh, q.data(), sh.dh, k.data(), sh.dh, v.data(), sh.dh, out.data(), sh.dh, 0.4f,
                               mask, bias, tiling);
            const double e = test::nmse(out, expect);
            INFO(pattern << " tq " << sh.tq << " tk " << sh.tk << " causal " << sh.causal << " block_k " << tiling.block_k
                         << " nmse " << e);
            CHECK(e < 1e-10);
            // A query whose visible keys are all hidden attends to nothing.
            for (std::size_t i = 0; i < sh.tq; ++i) {
                bool any = false;
                for (std::size_t j = 0; j < sh.tk; ++j) any = any || mask.visible(i, j);
                if (!any)
                    for (std::size_t d = 0; d < sh.dh; ++d) REQUIRE(out[i * sh.dh + d] == 0.f);
            }
        }
    }
}

TEST_CASE("attention layer with a key mask: left padding equals the sequence alone, cached = direct, bad masks refused",
          "[layers][attention][mask]") {
    // T5-style self-attention (relative bias depends only on key - query, so shifting a sequence
    // right behind hidden keys changes nothing for its real rows).
    const std::size_t width = 24, heads = 3, t = 11, pad = 4;
    attention<attn::unscaled> layer({width, heads, 8, false}, weights::cursor(seeded_layers, "mask_attn"));
    relative_position_bias pb({heads, 32, 128, true}, weights::cursor(seeded_layers, "mask_rel"));
    const auto alone = test::random_vector(t * width, 51);
    const auto other = test::random_vector((t + pad) * width, 52);
    // Batch of 2 sequences of t + pad rows: row 0 left padded (pad hidden rows of noise first), row 1
    // full length with holes.
    std::vector<float> x(2 * (t + pad) * width);
    const auto noise = test::random_vector(pad * width, 53, 3.f);
    std::copy(noise.begin(), noise.end(), x.begin());
    std::copy(alone.begin(), alone.end(), x.begin() + static_cast<std::ptrdiff_t>(pad * width));
    std::copy(other.begin(), other.end(), x.begin() + static_cast<std::ptrdiff_t>((t + pad) * width));
    std::vector<std::uint8_t> keep(2 * (t + pad), 1);
    for (std::size_t j = 0; j < pad; ++j) keep[j] = 0;
    keep[(t + pad) + 2] = keep[(t + pad) + 7] = 0;
    core::workspace ws(attention<attn::unscaled>::workspace_floats(layer.config(), 2 * (t + pad), 2 * (t + pad)));
    std::vector<float> y_alone(t * width), y(x.size());
    layer.forward(alone.data(), 1, t, y_alone.data(), ws, core::sequential{}, {}, {}, &pb);
    layer.forward(x.data(), 2, t + pad, y.data(), ws, core::sequential{}, {}, key_mask({}, keep), &pb);
    const std::vector<float> real(y.begin() + static_cast<std::ptrdiff_t>(pad * width),
                                  y.begin() + static_cast<std::ptrdiff_t>((t + pad) * width));
    const double e = test::nmse(real, std::vector<double>(y_alone.begin(), y_alone.end()));
    INFO("left padded vs alone: nmse " << e);
    CHECK(e < 1e-12);

    // Both rows (left padding, holes) against the double reference.
    const attention_case c{2, t + pad, t + pad, width, heads, false, false, true};
    const auto expect = reference_attention(layer, x, x, c, std::vector<std::size_t>(2, t + pad), &pb, 1.0, &keep);
    CHECK(test::nmse(y, expect) < 1e-10);

    // An all-ones mask is no mask, bit for bit; cached cross-attention equals direct.
    const std::vector<std::uint8_t> ones(2 * (t + pad), 1);
    std::vector<float> y_none(x.size()), y_ones(x.size());
    layer.forward(x.data(), 2, t + pad, y_none.data(), ws, core::sequential{}, {}, {}, &pb);
    layer.forward(x.data(), 2, t + pad, y_ones.data(), ws, core::sequential{}, {}, key_mask({}, ones), &pb);
    CHECK(y_none == y_ones);
    const std::size_t tq = 3;
    const auto xq = test::random_vector(2 * tq * width, 54);
    kv_cache cache(2, t + pad, layer.config().inner());
    layer.precompute_cross(x.data(), 2, t + pad, cache);
    std::vector<float> direct(2 * tq * width), cached(2 * tq * width);
    layer.forward_cross(xq.data(), 2, tq, x.data(), t + pad, direct.data(), ws, core::sequential{}, {}, key_mask({}, keep));
    layer.forward_cached_cross(xq.data(), 2, tq, cache, cached.data(), ws, core::sequential{}, key_mask({}, keep));
    CHECK(test::nmse(cached, std::vector<double>(direct.begin(), direct.end())) < 1e-12);

    // Bad masks: wrong size, a value that is not 0/1, a row that hides every key.
    using Catch::Matchers::Contains;
    std::vector<std::uint8_t> short_keep(keep.begin(), keep.end() - 1), two(keep), hidden(keep);
    two[5] = 2;
    std::fill(hidden.begin(), hidden.begin() + static_cast<std::ptrdiff_t>(t + pad), 0);
    CHECK_THROWS_WITH(layer.forward(x.data(), 2, t + pad, y.data(), ws, core::sequential{}, {}, key_mask({}, short_keep)),
                      Contains("key mask size") && Contains("2 x 15") && Contains("29"));
    CHECK_THROWS_WITH(layer.forward(x.data(), 2, t + pad, y.data(), ws, core::sequential{}, {}, key_mask({}, two)),
                      Contains("0 or 1") && Contains("value 2 at position 5"));
    CHECK_THROWS_WITH(layer.forward(x.data(), 2, t + pad, y.data(), ws, core::sequential{}, {}, key_mask({}, hidden)),
                      Contains("hides every key") && Contains("row 0"));
    const std::vector<std::size_t> lens{3, 15};  // keeps only hidden rows of row 0
    CHECK_THROWS_WITH(layer.forward(x.data(), 2, t + pad, y.data(), ws, core::sequential{}, {}, key_mask(lens, keep)),
                      Contains("hides every key") && Contains("row 0"));
}

TEST_CASE("attention with bf16 products matches the double reference to bf16 rounding", "[layers][attention][amx]") {
    const kernels::amx::backend engine = PALI3_BF16_ENGINES;
    const test::bf16_engine_scope use(engine);
    if (!use.active) {
        PALI3_BF16_ENGINE_UNAVAILABLE(kernels::amx::backend_name(engine) << " is not available here: bf16 products on it are not exercised");
    }
    struct shape {
        std::size_t tq, tk, dh, ld;
        bool causal;
        std::size_t key_len, prefix;
    };
    // Odd sizes, interleaved heads (ld > dh), key blocks past 256, causal + prefix + padding,
    // 1..4 query rows (the GEMV path, which keeps f32 operands).
    for (const shape& sh : {shape{67, 301, 19, 40, true, 290, 40}, shape{196, 196, 64, 768, false, 196, 0},
                            shape{5, 77, 33, 33, false, 60, 0}, shape{3, 50, 16, 48, true, 50, 0},
                            shape{300, 300, 24, 24, true, 300, 7}}) {
        const auto q = test::random_vector(sh.tq * sh.ld, 31), k = test::random_vector(sh.tk * sh.ld, 32),
                   v = test::random_vector(sh.tk * sh.ld, 33);
        const auto by_distance = test::random_vector(sh.tq + sh.tk + 1, 34, 0.5f);
        kernels::attention_mask mask;
        mask.causal = sh.causal;
        mask.q_offset = sh.causal ? sh.tk - sh.tq : 0;
        mask.key_len = sh.key_len;
        mask.prefix = sh.prefix;
        const kernels::distance_bias bias{by_distance.data(), static_cast<std::ptrdiff_t>(sh.tq + mask.q_offset)};
        const float scale = 1.f / std::sqrt(float(sh.dh));
        const auto expect = reference_head(sh.tq, sh.tk, sh.dh, q, sh.ld, k, v, sh.ld, scale, mask, by_distance, bias.zero);
        kernels::attention_tiling f32_tiling, bf16_tiling;
        bf16_tiling.bf16_products = true;
        bf16_tiling.bf16_min_keys = 0;  // every shape here, short ones included
        std::vector<float> a(sh.tq * sh.dh), b(sh.tq * sh.dh);
        kernels::attention(sh.tq, sh.tk, sh.dh, q.data(), sh.ld, k.data(), sh.ld, v.data(), sh.ld, a.data(), sh.dh, scale,
                           mask, bias, f32_tiling);
        kernels::attention(sh.tq, sh.tk, sh.dh, q.data(), sh.ld, k.data(), sh.ld, v.data(), sh.ld, b.data(), sh.dh, scale,
                           mask, bias, bf16_tiling);
        const double e32 = test::nmse(a, expect), e16 = test::nmse(b, expect);
        INFO("tq " << sh.tq << " tk " << sh.tk << " dh " << sh.dh << " nmse f32 " << e32 << " bf16 products " << e16
                   << " engine " << kernels::amx::backend_name(engine));
        REQUIRE(e32 < 1e-10);
        if (kernels::amx::enabled() && sh.tq > kernels::gemv_max_rows) {
            REQUIRE(e16 < 2e-5);
            REQUIRE(e16 > 0.0);  // the bf16 path really ran
        } else {
            REQUIRE(std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0);
        }
        // Smaller query and key blocks (several of each, a ragged last one): same accuracy.
        bf16_tiling.block_q = 40;
        bf16_tiling.block_k = 64;
        f32_tiling.block_q = 40;
        f32_tiling.block_k = 64;
        kernels::attention(sh.tq, sh.tk, sh.dh, q.data(), sh.ld, k.data(), sh.ld, v.data(), sh.ld, b.data(), sh.dh, scale,
                           mask, bias, bf16_tiling);
        INFO("blocks 40 x 64: nmse bf16 products " << test::nmse(b, expect));
        if (kernels::amx::enabled() && sh.tq > kernels::gemv_max_rows) REQUIRE(test::nmse(b, expect) < 2e-5);
        // A key block that is not whole tiles, or fewer keys than the threshold: the f32 path
        // runs, bit-identical to it.
        kernels::attention(sh.tq, sh.tk, sh.dh, q.data(), sh.ld, k.data(), sh.ld, v.data(), sh.ld, a.data(), sh.dh, scale,
                           mask, bias, f32_tiling);
        bf16_tiling.block_k = f32_tiling.block_k = 50;
        kernels::attention(sh.tq, sh.tk, sh.dh, q.data(), sh.ld, k.data(), sh.ld, v.data(), sh.ld, a.data(), sh.dh, scale,
                           mask, bias, f32_tiling);
        kernels::attention(sh.tq, sh.tk, sh.dh, q.data(), sh.ld, k.data(), sh.ld, v.data(), sh.ld, b.data(), sh.dh, scale,
                           mask, bias, bf16_tiling);
        REQUIRE(std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0);
        bf16_tiling.block_k = f32_tiling.block_k = 64;
        bf16_tiling.bf16_min_keys = sh.tk + 1;
        kernels::attention(sh.tq, sh.tk, sh.dh, q.data(), sh.ld, k.data(), sh.ld, v.data(), sh.ld, a.data(), sh.dh, scale,
                           mask, bias, f32_tiling);
        kernels::attention(sh.tq, sh.tk, sh.dh, q.data(), sh.ld, k.data(), sh.ld, v.data(), sh.ld, b.data(), sh.dh, scale,
                           mask, bias, bf16_tiling);
        REQUIRE(std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0);
    }
}

TEST_CASE("KV-cache decoding equals full causal recomputation", "[layers][attention]") {
    // One sequence; two (one-token steps take the GEMV path with all rows at once); five (GEMM).
    const std::size_t batch = GENERATE(1, 2, 5), t = 23, width = 48, heads = 4;
    attention<attn::unscaled> layer({width, heads, 16, false}, weights::cursor(seeded_layers, "dec"));
    relative_position_bias pb({heads, 32, 128, false}, weights::cursor(seeded_layers, "dec_rel"));
    const auto x = test::random_vector(batch * t * width, 21);
    const std::size_t tm = 31;
    core::workspace ws(attention<attn::unscaled>::workspace_floats(layer.config(), batch * t, batch * tm));
    kernels::attention_mask causal;
    causal.causal = true;
    std::vector<float> full(batch * t * width);
    layer.forward(x.data(), batch, t, full.data(), ws, core::sequential{}, causal, {}, &pb);

    // Memory for 2 positions at first: the cache grows (to 4, 8, 16, then the cap 23) as tokens come.
    kv_cache cache(batch, t, layer.config().inner(), 2);
    CHECK(cache.held() == 2u);
    std::vector<float> step_out(batch * t * width), xs(batch * width), ys(batch * width);
    // Feed 3 tokens, then the rest one by one.
    std::size_t pos = 0;
    for (std::size_t chunk : {3u, 1u}) {
        while (pos + chunk <= t && (chunk == 1 || pos == 0)) {
            std::vector<float> xin(batch * chunk * width), yout(batch * chunk * width);
            for (std::size_t b = 0; b < batch; ++b)
                std::copy_n(x.data() + (b * t + pos) * width, chunk * width, xin.data() + b * chunk * width);
            layer.forward_step(xin.data(), batch, chunk, cache, yout.data(), ws, core::sequential{}, &pb);
            for (std::size_t b = 0; b < batch; ++b)
                std::copy_n(yout.data() + b * chunk * width, chunk * width, step_out.data() + (b * t + pos) * width);
            pos += chunk;
        }
    }
    REQUIRE(pos == t);
    CHECK(cache.held() == t);
    std::vector<double> fd(full.begin(), full.end());
    CHECK(test::nmse(step_out, fd) < 1e-12);
    std::vector<float> extra(batch * width);
    CHECK_THROWS_AS(layer.forward_step(extra.data(), batch, 1, cache, extra.data(), ws), value_error);

    // Cross-attention against a precomputed cache equals the uncached path.
    const auto mem = test::random_vector(batch * tm * width, 22);
    kv_cache cross(batch, tm, layer.config().inner());
    layer.precompute_cross(mem.data(), batch, tm, cross);
    std::vector<float> a(batch * t * width), b2(batch * t * width);
    std::vector<std::size_t> lens(batch);
    for (std::size_t b = 0; b < batch; ++b) lens[b] = b % 2 ? 17 : 31;
    layer.forward_cross(x.data(), batch, t, mem.data(), tm, a.data(), ws, core::sequential{}, {}, lens);
    layer.forward_cached_cross(x.data(), batch, t, cross, b2.data(), ws, core::sequential{}, lens);
    CHECK(a == b2);
}

TEST_CASE("attention memory does not grow with t^2", "[layers][attention]") {
    // 5776 tokens (1064 px at patch 14), one head of 64: the kernel's scratch is fixed by its
    // tiles, far below the 5776^2 x 4 bytes = 133 MB of a materialised score matrix; bf16 products
    // add O(tk) copies of K and V.
    CHECK(kernels::attention_scratch_floats(64) * sizeof(float) < 512 * 1024);
    CHECK(kernels::attention_scratch_bytes(64, 5776) == kernels::attention_scratch_floats(64) * sizeof(float));
    kernels::attention_tiling bf16_products;
    bf16_products.bf16_products = true;
    CHECK(kernels::attention_scratch_bytes(96, 5776, bf16_products) < 3 * 1024 * 1024);
    // The tile operands, counted by hand (2 bytes each): K in 16-key panels x 96 dims, V in
    // 16-dim panels x 5792 keys (rounded to 32), one 256-query block x 96, one 256 x 256
    // probability block.
    CHECK(kernels::attention_scratch_bytes(96, 5776, bf16_products) ==
          kernels::attention_scratch_floats(96) * sizeof(float) + 2 * (5776 * 96 + 96 * 5792 + 256 * 96 + 256 * 256));
    bf16_products.block_k = 100;  // not whole tiles: the f32 path, no operands
    CHECK(kernels::attention_scratch_bytes(96, 5776, bf16_products) ==
          kernels::attention_scratch_floats(96, bf16_products) * sizeof(float));
}

TEST_CASE("linear (xtensor API) and embedding lookups", "[layers][linear]") {
    linear<bf16> lin({13, 9, false}, weights::cursor(seeded_layers, "lin"));
    tensor<2> x = xt::zeros<float>(std::array<std::size_t, 2>{5, 13});
    const auto xv = test::random_vector(5 * 13, 31);
    std::copy(xv.begin(), xv.end(), x.begin());
    const tensor<2> y = lin(x);
    REQUIRE(y.shape()[0] == 5);
    REQUIRE(y.shape()[1] == 9);
    const auto w = weight_of(lin, "weight");
    const auto expect = dense(to_double(xv), 5, w, nullptr, 13, 9);
    CHECK(test::nmse(y, expect) < test::bound_for<bf16>(1e-12));
    tensor<2> bad = xt::zeros<float>(std::array<std::size_t, 2>{5, 12});
    CHECK_THROWS_WITH(lin(bad), "linear input width (at linear): expected 13, found 12");
    CHECK_THROWS_AS(linear<>({0, 4, true}), config_error);
    linear<> unloaded({12, 4, true});
    CHECK_THROWS_WITH(unloaded(bad), Catch::Contains("used before loading"));

    embedding<bf16> emb({50, 8}, weights::cursor(seeded_layers, "emb"));
    const auto table = weight_of(emb, "weight");
    const std::int32_t ids[] = {0, 49, 7};
    std::vector<float> out(3 * 8);
    emb.forward(ids, 3, out.data(), 2.f);
    for (std::size_t d = 0; d < 8; ++d) CHECK(out[8 + d] == 2.f * table[49 * 8 + d]);
    const std::int32_t bad_ids[] = {3, 50};
    CHECK_THROWS_WITH(emb.forward(bad_ids, 2, out.data()), "token id out of range (at embedding, position 1): expected 0..49, found 50");
}

// int8 weights in a linear layer (layers::linear::quantize_int8): against the double reference of its
// dequantised matrix on both kernel paths (up to 4 rows: integer products, A in int16; more: integer
// products with A in int8 on AVX512-VNNI, else the f32 GEMM on dequantised slabs), and what it refuses.
TEST_CASE("linear::quantize_int8: both kernel paths against the double reference of the int8 matrix", "[layers][int8]") {
    const std::size_t in = 203, out = 77;
    weights::memory_source src;
    src.add("weight", test::random_vector(out * in, 31), {out, in});
    src.add("bias", test::random_vector(out, 32), {out});
    for (const std::size_t group : {std::size_t{0}, std::size_t{32}}) {
        linear<bf16> lin({in, out, true}, weights::cursor(src));
        // The bf16 matrix as f32, before it is released.
        std::vector<float> wb(out * in);
        kernels::convert(lin.weight().data, wb.data(), out * in);
        const std::size_t bytes = lin.quantize_int8(group);
        CHECK(bytes == out * in + out * kernels::int8_groups(in, group) * sizeof(float));
        const kernels::int8_matrix* q = lin.int8_weight();
        REQUIRE(q != nullptr);
        CHECK(lin.weight().data == nullptr);  // the bf16 matrix is released
        // Each stored value is within half a step of the bf16 weight it came from.
        for (std::size_t j = 0; j < out; ++j)
            for (std::size_t i = 0; i < in; ++i)
                REQUIRE(std::fabs(wb[j * in + i] - double(q->scale(j, i)) * q->q[j * in + i]) <= 0.5 * q->scale(j, i) * (1 + 1e-4));  // + the f32 rounding of w / scale
        core::thread_pool pool(2);
        for (const std::size_t rows : {std::size_t{1}, std::size_t{3}, std::size_t{37}}) {
            const auto x = test::random_vector(rows * in, 33 + static_cast<std::uint32_t>(rows));
            std::vector<float> y(rows * out);
            lin.forward(x.data(), in, rows, y.data(), out, pool);
            std::vector<double> want(rows * out);
            for (std::size_t r = 0; r < rows; ++r)
                for (std::size_t j = 0; j < out; ++j) {
                    double s = lin.bias()[j];
                    for (std::size_t i = 0; i < in; ++i) s += double(x[r * in + i]) * q->scale(j, i) * q->q[j * in + i];
                    want[r * out + j] = s;
                }
            // Up to 4 rows multiply A as int16 (~1e-5 of the row's largest value per value); more
            // rows: A as int8 (half a step of 1/127 of the row's largest value) on the integer-product
            // engine where the CPU has one (per-row scales), else f32 products of the dequantised matrix.
            const bool int8_a = rows > kernels::gemv_max_rows && group == 0 && kernels::int8_products::enabled();
            INFO("group " << group << ", rows " << rows << (int8_a ? ", A in int8" : ""));
            CHECK(test::nmse(y, want) < (rows <= kernels::gemv_max_rows ? 1e-9 : int8_a ? 2e-4 : 1e-11));
        }
        // Training through it is refused; quantising again with another group too.
        std::vector<float> dy(out, 1.f), x(in, 1.f), dx(in);
        train::parameters params;
        CHECK_THROWS_WITH(lin.backward(x.data(), in, 1, dy.data(), out, dx.data(), in, params),
                          Catch::Contains("int8-quantised linear layer"));
        CHECK_THROWS_WITH(lin.quantize_int8(group ? 0 : 32), Catch::Contains("another group"));
        CHECK(lin.quantize_int8(group) == bytes);  // the same group: nothing to do
        {  // prepacked for the integer-product engine (per-row scales on a VNNI CPU), else nothing to pack
            const auto x = test::random_vector(37 * in, 39);
            std::vector<float> y0(37 * out), y1(37 * out);
            lin.forward(x.data(), in, 37, y0.data(), out);
            const bool packs = group == 0 && kernels::int8_products::enabled();
            const std::size_t padded = (out + 47) / 48 * 48;
            CHECK(lin.prepack() == (packs ? (out + 15) / 16 * 16 * ((in + 3) / 4 * 4) + padded * 8 : 0));
            lin.forward(x.data(), in, 37, y1.data(), out);
            CHECK(y0 == y1);
        }
        // Loading again brings the bf16 matrix back in use.
        layers::load(lin, weights::cursor(src));
        CHECK(lin.int8_weight() == nullptr);
    }
    linear<float> lin({in, out, true}, weights::cursor(src));
    CHECK_THROWS_WITH(lin.quantize_int8(48), Catch::Contains("multiple of 32"));
}
