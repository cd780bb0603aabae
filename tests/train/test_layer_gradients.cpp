// Every layer's backward against central finite differences of its double twin (twins.hpp), on
// odd shapes (nothing a multiple of the SIMD width). Each line printed is one tensor's relative
// error ||ours - fd|| / ||fd||.
#include <cstring>

#include <catch2/catch.hpp>

#include "../common.hpp"
#include "pali3/kernels/backward.hpp"
#include "pali3/layers/block.hpp"
#include "pali3/layers/vision.hpp"
#include "pali3/weights/random_source.hpp"
#include "twins.hpp"

using namespace pali3;
using namespace pali3::layers;
using test::dmap;
using test::dvec;

namespace {
const weights::random_source seeded_grads(2024);
constexpr double bound = 2e-4;  // f32 products of ~100 terms against a double twin

template <class Act>
void check_activation() {
    const auto x = test::random_vector(301, 5, 2.5f);
    std::vector<float> pre(x), dh(x.size(), 1.f), d(x.size());
    kernels::activation_backward<Act>(pre.data(), dh.data(), d.data(), d.size());
    double num = 0, den = 0;
    for (std::size_t i = 0; i < x.size(); ++i) {
        const double h = 1e-6;
        const double fd = (kernels::ref::apply<Act>(x[i] + h) - kernels::ref::apply<Act>(x[i] - h)) / (2 * h);
        num += (d[i] - fd) * (d[i] - fd);
        den += fd * fd;
    }
    const double e = std::sqrt(num / den);
    std::printf("  activation   %-40s rel. error %.2e\n", std::string(Act::name).c_str(), e);
    CHECK(e < 1e-6);
}
}  // namespace

TEST_CASE("activation derivatives match finite differences", "[train][gradients]") {
    check_activation<kernels::act::identity>();
    check_activation<kernels::act::relu>();
    check_activation<kernels::act::gelu_tanh>();
    check_activation<kernels::act::gelu_erf>();
    check_activation<kernels::act::silu>();
}

TEST_CASE("linear, embedding and norm gradients", "[train][gradients]") {
    const std::size_t rows = 7, in = 13, out = 11;
    const auto x = test::random_vector(rows * in, 1), r = test::random_vector(rows * out, 2);
    SECTION("linear with bias") {
        linear<float> lin({in, out, true}, weights::cursor(seeded_grads, "lin"));
        train::parameters ps(lin);
        std::vector<float> y(rows * out), dx(rows * in);
        lin.forward(x.data(), in, rows, y.data(), out);
        lin.backward(x.data(), in, rows, r.data(), out, dx.data(), in, ps);
        const auto loss = [&](const dmap& m) {
            return test::d_dot(test::d_linear(m, "", m.at("input"), rows, in, out, true), r);
        };
        CHECK(test::check_all("linear", ps, {{"input", test::to_d(x)}}, {{"input", dx.data()}}, loss) < bound);
    }
    SECTION("embedding, scaled") {
        embedding<float> emb({29, 9}, weights::cursor(seeded_grads, "emb"));
        train::parameters ps(emb);
        const std::vector<std::int32_t> ids{3, 28, 3, 0, 17};
        const auto dy = test::random_vector(ids.size() * 9, 3);
        emb.backward(ids.data(), ids.size(), dy.data(), ps, 0.5f);
        const auto loss = [&](const dmap& m) {
            double s = 0;
            for (std::size_t i = 0; i < ids.size(); ++i)
                for (std::size_t c = 0; c < 9; ++c) s += 0.5 * m.at("weight")[ids[i] * 9 + c] * dy[i * 9 + c];
            return s;
        };
        CHECK(test::check_all("embedding", ps, {}, {}, loss, 300) < bound);
    }
    SECTION("layer_norm and rms_norm") {
        const std::size_t w = 37, n = 5;
        const auto xn = test::random_vector(n * w, 4, 3.f), rn = test::random_vector(n * w, 6);
        layer_norm ln({w, 1e-6f}, weights::cursor(seeded_grads, "ln"));
        rms_norm rms({w, 1e-6f}, weights::cursor(seeded_grads, "rms"));
        train::parameters pl(ln), pr(rms);
        std::vector<float> dxl(n * w), dxr(n * w);
        ln.backward(xn.data(), w, n, rn.data(), w, dxl.data(), w, pl);
        rms.backward(xn.data(), w, n, rn.data(), w, dxr.data(), w, pr);
        const double el = test::check_all("layer_norm", pl, {{"input", test::to_d(xn)}}, {{"input", dxl.data()}},
                                          [&](const dmap& m) {
                                              return test::d_dot(test::d_layer_norm(m.at("input"), n, w, m.at("weight"),
                                                                                    &m.at("bias"), 1e-6),
                                                                 rn);
                                          });
        const double er = test::check_all("rms_norm", pr, {{"input", test::to_d(xn)}}, {{"input", dxr.data()}},
                                          [&](const dmap& m) {
                                              return test::d_dot(test::d_rms_norm(m.at("input"), n, w, m.at("weight"), 1e-6), rn);
                                          });
        CHECK(el < bound);
        CHECK(er < bound);
    }
}

TEMPLATE_TEST_CASE("MLP gradients", "[train][gradients]", kernels::act::gelu_tanh, kernels::act::gelu_erf,
                   kernels::act::relu, kernels::act::silu) {
    const std::size_t rows = 6, w = 19, hidden = 45;
    const auto x = test::random_vector(rows * w, 7), r = test::random_vector(rows * w, 8);
    SECTION("mlp") {
        mlp<TestType> m({w, hidden, true}, weights::cursor(seeded_grads, "mlp"));
        train::parameters ps(m);
        std::vector<float> y(rows * w), dx(rows * w);
        typename mlp<TestType>::saved s;
        m.forward_train(x.data(), rows, y.data(), s);
        m.backward(x.data(), rows, s, r.data(), dx.data(), ps);
        const double e = test::check_all("mlp", ps, {{"input", test::to_d(x)}}, {{"input", dx.data()}}, [&](const dmap& v) {
            return test::d_dot(test::d_mlp<TestType>(v, "", v.at("input"), rows, w, hidden, true), r);
        });
        CHECK(e < bound);
    }
    SECTION("gated_mlp") {
        gated_mlp<TestType> m({w, hidden, false}, weights::cursor(seeded_grads, "gmlp"));
        train::parameters ps(m);
        std::vector<float> y(rows * w), dx(rows * w);
        typename gated_mlp<TestType>::saved s;
        m.forward_train(x.data(), rows, y.data(), s);
        m.backward(x.data(), rows, s, r.data(), dx.data(), ps);
        const double e = test::check_all("gated_mlp", ps, {{"input", test::to_d(x)}}, {{"input", dx.data()}},
                                         [&](const dmap& v) {
                                             return test::d_dot(test::d_gated_mlp<TestType>(v, "", v.at("input"), rows, w, hidden), r);
                                         });
        CHECK(e < bound);
    }
}

// A layer whose config picks the activation (act::by_config) trains like the fixed-policy one.
TEST_CASE("MLP gradients with the activation chosen by the config", "[train][gradients]") {
    const std::size_t rows = 5, w = 17, hidden = 39;
    const auto x = test::random_vector(rows * w, 17), r = test::random_vector(rows * w, 18);
    using chosen = kernels::act::by_config<kernels::act::gelu_tanh>;
    SECTION("mlp, silu") {
        mlp<chosen> m({w, hidden, true, kernels::activation_id::silu}, weights::cursor(seeded_grads, "mlp"));
        train::parameters ps(m);
        std::vector<float> y(rows * w), dx(rows * w);
        mlp<chosen>::saved s;
        m.forward_train(x.data(), rows, y.data(), s);
        m.backward(x.data(), rows, s, r.data(), dx.data(), ps);
        const double e = test::check_all("mlp(by_config silu)", ps, {{"input", test::to_d(x)}}, {{"input", dx.data()}}, [&](const dmap& v) {
            return test::d_dot(test::d_mlp<kernels::act::silu>(v, "", v.at("input"), rows, w, hidden, true), r);
        });
        CHECK(e < bound);
    }
    SECTION("gated_mlp, gelu_erf") {
        gated_mlp<chosen> m({w, hidden, false, kernels::activation_id::gelu_erf}, weights::cursor(seeded_grads, "gmlp"));
        train::parameters ps(m);
        std::vector<float> y(rows * w), dx(rows * w);
        gated_mlp<chosen>::saved s;
        m.forward_train(x.data(), rows, y.data(), s);
        m.backward(x.data(), rows, s, r.data(), dx.data(), ps);
        const double e = test::check_all("gated_mlp(by_config gelu_erf)", ps, {{"input", test::to_d(x)}}, {{"input", dx.data()}},
                                         [&](const dmap& v) {
                                             return test::d_dot(test::d_gated_mlp<kernels::act::gelu_erf>(v, "", v.at("input"), rows, w, hidden), r);
                                         });
        CHECK(e < bound);
    }
}

TEST_CASE("attention gradients: self (causal, padding, T5 bias) and cross", "[train][gradients]") {
    SECTION("T5-style self-attention: unscaled, no biases, causal, key lengths, a 0/1 key mask, relative position bias") {
        const std::size_t batch = 2, t = 9, width = 20, heads = 3, dh = 5;
        attention<attn::unscaled> at({width, heads, dh, false}, weights::cursor(seeded_grads, "sa"));
        relative_position_bias rb({heads, 8, 12, false}, weights::cursor(seeded_grads, "rb"));
        train::parameters sink;  // one sink over both modules, names prefixed
        sink.adopt(at, "attn");
        sink.adopt(rb, "bias");
        const auto x = test::random_vector(batch * t * width, 9), r = test::random_vector(batch * t * width, 10);
        const std::vector<std::size_t> lens{9, 6};
        // Holes in row 0, left padding in row 1 (its first two queries see no key: zeros).
        const std::vector<std::uint8_t> keep{1, 1, 0, 1, 1, 0, 0, 1, 1, /**/ 0, 0, 1, 1, 0, 1, 1, 1, 1};
        attention_inputs in;
        in.mask.causal = true;
        in.keys = key_mask(lens, keep);
        in.pos_bias = &rb;
        std::vector<float> y(x.size()), dx(x.size());
        attention<attn::unscaled>::saved s;
        at.forward_train(x.data(), batch, t, x.data(), t, y.data(), s, {}, in);
        at.backward(x.data(), batch, t, x.data(), t, s, r.data(), dx.data(), dx.data(), sink, {}, in);
        test::d_attention_args a{batch, t, t, width, heads, dh, false, 1.0, true, {9, 6}};
        a.keep = keep;
        a.num_buckets = 8;
        a.max_distance = 12;
        a.bidirectional = false;
        const auto loss = [&](const dmap& m) {
            auto args = a;
            args.rel_table = &m.at("table");
            return test::d_dot(test::d_attention(m, "", m.at("input"), m.at("input"), args), r);
        };
        dmap v;
        for (const auto& p : sink.list()) v[p.name.substr(5)] = test::to_d(p.value, p.size());
        v["table"] = v.at("weight");
        v["input"] = test::to_d(x);
        double worst = 0;
        for (const auto& p : sink.list()) {
            if (p.name == "bias.weight") continue;
            const double e = test::fd_rel_error(v, p.name.substr(5), p.grad.data(), loss);
            std::printf("  self-attn    %-40s rel. error %.2e\n", p.name.c_str(), e);
            worst = std::max(worst, e);
        }
        const double et = test::fd_rel_error(v, "table", sink.at("bias.weight").grad.data(), loss, 200);
        const double ex = test::fd_rel_error(v, "input", dx.data(), loss);
        std::printf("  self-attn    %-40s rel. error %.2e\n  self-attn    %-40s rel. error %.2e\n",
                    "rel_bias table", et, "input", ex);
        CHECK(worst < bound);
        CHECK(et < bound);
        CHECK(ex < bound);
    }
    SECTION("ViT-style cross-attention: scaled, biases, padded memory with holes") {
        const std::size_t batch = 2, tq = 3, tm = 11, width = 18, heads = 2;
        attention<> at({width, heads, 0, true}, weights::cursor(seeded_grads, "ca"));
        train::parameters ps(at);
        const auto x = test::random_vector(batch * tq * width, 11), mem = test::random_vector(batch * tm * width, 12);
        const auto r = test::random_vector(batch * tq * width, 13);
        const std::vector<std::size_t> lens{7, 11};
        const std::vector<std::uint8_t> keep{0, 1, 1, 0, 1, 1, 1, 1, 1, 1, 1, /**/ 1, 1, 1, 0, 0, 0, 1, 1, 0, 1, 0};
        attention_inputs in;
        in.keys = key_mask(lens, keep);
        std::vector<float> y(x.size()), dx(x.size()), dmem(mem.size());
        attention<>::saved s;
        at.forward_train(x.data(), batch, tq, mem.data(), tm, y.data(), s, {}, in);
        at.backward(x.data(), batch, tq, mem.data(), tm, s, r.data(), dx.data(), dmem.data(), ps, {}, in);
        test::d_attention_args a{batch, tq, tm, width, heads, width / heads, true, 1.0 / std::sqrt(9.0), false, {7, 11}};
        a.keep = keep;
        const auto loss = [&](const dmap& m) {
            return test::d_dot(test::d_attention(m, "", m.at("input"), m.at("memory"), a), r);
        };
        dmap v;
        for (const auto& p : ps.list()) v[p.name] = test::to_d(p.value, p.size());
        v["input"] = test::to_d(x);
        v["memory"] = test::to_d(mem);
        double worst = 0;
        for (const auto& p : ps.list()) worst = std::max(worst, test::fd_rel_error(v, p.name, p.grad.data(), loss));
        const double ex = test::fd_rel_error(v, "input", dx.data(), loss);
        const double em = test::fd_rel_error(v, "memory", dmem.data(), loss);
        std::printf("  cross-attn   weights (worst) %.2e, input %.2e, memory %.2e\n", worst, ex, em);
        CHECK(worst < bound);
        CHECK(ex < bound);
        CHECK(em < bound);
    }
}

TEST_CASE("attention backward is the same in small tiles (memory-bounded form)", "[train][gradients]") {
    const std::size_t tq = 37, tk = 29, dh = 7;
    const auto q = test::random_vector(tq * dh, 20), k = test::random_vector(tk * dh, 21), v = test::random_vector(tk * dh, 22);
    const auto dout = test::random_vector(tq * dh, 23);
    kernels::attention_mask mask;
    mask.causal = true;
    mask.prefix = 4;
    std::vector<float> bias_values(tq + tk);
    for (std::size_t i = 0; i < bias_values.size(); ++i) bias_values[i] = 0.1f * std::sin(static_cast<float>(i));
    const kernels::distance_bias bias{bias_values.data(), static_cast<std::ptrdiff_t>(tq - 1)};
    std::vector<float> o(tq * dh);
    kernels::attention(tq, tk, dh, q.data(), dh, k.data(), dh, v.data(), dh, o.data(), dh, 0.4f, mask, bias);
    auto run = [&](std::size_t bq, std::size_t bk) {
        std::vector<float> dq(tq * dh, 0.f), dk(tk * dh, 0.f), dv(tk * dh, 0.f), db(tq + tk, 0.f);
        kernels::attention_backward(tq, tk, dh, q.data(), dh, k.data(), dh, v.data(), dh, o.data(), dh, dout.data(), dh,
                                    0.4f, mask, bias, {dq.data(), dh, dk.data(), dh, dv.data(), dh, db.data()}, bq, bk);
        std::vector<float> all(dq);
        all.insert(all.end(), dk.begin(), dk.end());
        all.insert(all.end(), dv.begin(), dv.end());
        all.insert(all.end(), db.begin(), db.end());
        return all;
    };
    const auto whole = run(256, 256), tiled = run(5, 6);
    const double e = test::nmse(tiled, test::dvec(whole.begin(), whole.end()));
    std::printf("  attention backward, 5x6 tiles vs one tile: NMSE %.2e\n", e);
    CHECK(e < 1e-12);
}

TEST_CASE("pre-norm block gradients, and recompute gives the same", "[train][gradients]") {
    const std::size_t batch = 2, t = 7, width = 16, heads = 2, hidden = 40;
    const block_config c{{width, 1e-6f}, {width, heads, 0, true}, {width, hidden, true}};
    vit_block<float> blk(c, weights::cursor(seeded_grads, "blk"));
    train::parameters ps(blk);
    const auto x = test::random_vector(batch * t * width, 30), r = test::random_vector(batch * t * width, 31);
    std::vector<float> y(x), dx(r);
    vit_block<float>::saved s;
    blk.forward_train(y.data(), batch, t, s);
    blk.backward(dx.data(), batch, t, s, ps);
    const auto loss = [&](const dmap& m) {
        const std::size_t rows = batch * t;
        dvec h = test::d_layer_norm(m.at("input"), rows, width, m.at("norm1.weight"), &m.at("norm1.bias"), 1e-6);
        dmap n;  // the twin's names for the attention and MLP parts
        for (const auto& [k, v] : m) {
            if (k.rfind("attn.", 0) == 0) n["a." + k.substr(5)] = v;
            if (k.rfind("mlp.", 0) == 0) n["m." + k.substr(4)] = v;
        }
        dvec x1 = m.at("input");
        test::d_add(x1, test::d_attention(n, "a", h, h, {batch, t, t, width, heads, width / heads, true, 1.0 / std::sqrt(8.0), false, {}}));
        h = test::d_layer_norm(x1, rows, width, m.at("norm2.weight"), &m.at("norm2.bias"), 1e-6);
        test::d_add(x1, test::d_mlp<kernels::act::gelu_tanh>(n, "m", h, rows, width, hidden, true));
        return test::d_dot(x1, r);
    };
    CHECK(test::check_all("vit_block", ps, {{"input", test::to_d(x)}}, {{"input", dx.data()}}, loss, 30) < bound);

    // recompute: only the input kept, same gradients bit for bit
    std::vector<float> before;
    for (const auto& p : ps.list()) before.insert(before.end(), p.grad.begin(), p.grad.end());
    ps.zero_grad();
    std::vector<float> y2(x), dx2(r);
    vit_block<float>::saved s2;
    s2.recompute = true;
    blk.forward_train(y2.data(), batch, t, s2);
    CHECK(s2.x1.empty());
    blk.backward(dx2.data(), batch, t, s2, ps);
    std::vector<float> after;
    for (const auto& p : ps.list()) after.insert(after.end(), p.grad.begin(), p.grad.end());
    CHECK(after == before);
    CHECK(dx2 == dx);
    CHECK(y2 == y);
}

TEST_CASE("patch and position embedding gradients, with resampling", "[train][gradients]") {
    const std::size_t batch = 2, c = 3, p = 3, width = 5, side = 9;  // grid 3x3, table 2x2 resampled
    patch_embedding<float> pe({c, p, width}, weights::cursor(seeded_grads, "pe"));
    learned_position_embedding pos({2, 2, width}, weights::cursor(seeded_grads, "pos"));
    train::parameters pp(pe), pq(pos);
    const auto img = test::random_vector(batch * c * side * side, 40), r = test::random_vector(batch * 9 * width, 41);
    pe.backward(img.data(), batch, side, side, image_layout::nchw, r.data(), pp);
    pos.backward(r.data(), batch, 3, 3, pq);
    const double e1 = test::check_all("patch_embed", pp, {}, {}, [&](const dmap& m) {
        double s = 0;
        for (std::size_t b = 0; b < batch; ++b)
            for (std::size_t gy = 0; gy < 3; ++gy)
                for (std::size_t gx = 0; gx < 3; ++gx)
                    for (std::size_t o = 0; o < width; ++o) {
                        double acc = m.at("bias")[o];
                        for (std::size_t ch = 0; ch < c; ++ch)
                            for (std::size_t y = 0; y < p; ++y)
                                for (std::size_t x = 0; x < p; ++x)
                                    acc += m.at("weight")[((o * c + ch) * p + y) * p + x] *
                                           img[((b * c + ch) * side + gy * p + y) * side + gx * p + x];
                        s += acc * r[((b * 9) + gy * 3 + gx) * width + o];
                    }
        return s;
    });
    const double e2 = test::check_all("pos_embed", pq, {}, {}, [&](const dmap& m) {
        // corners-aligned bilinear from 2x2 to 3x3, summed over the batch
        const auto& tb = m.at("weight");
        double s = 0;
        for (std::size_t y = 0; y < 3; ++y)
            for (std::size_t x = 0; x < 3; ++x) {
                const double fy = y * 0.5, fx = x * 0.5;
                const std::size_t y0 = std::min<std::size_t>(static_cast<std::size_t>(fy), 1), x0 = std::min<std::size_t>(static_cast<std::size_t>(fx), 1);
                const std::size_t y1 = std::min<std::size_t>(y0 + 1, 1), x1 = std::min<std::size_t>(x0 + 1, 1);
                const double wy = fy - y0, wx = fx - x0;
                for (std::size_t o = 0; o < width; ++o) {
                    const double v = (1 - wy) * ((1 - wx) * tb[(y0 * 2 + x0) * width + o] + wx * tb[(y0 * 2 + x1) * width + o]) +
                                     wy * ((1 - wx) * tb[(y1 * 2 + x0) * width + o] + wx * tb[(y1 * 2 + x1) * width + o]);
                    for (std::size_t b = 0; b < batch; ++b) s += v * r[(b * 9 + y * 3 + x) * width + o];
                }
            }
        return s;
    });
    CHECK(e1 < bound);
    CHECK(e2 < bound);
}

TEST_CASE("MAP head gradients", "[train][gradients]") {
    const std::size_t batch = 2, t = 6, width = 12, heads = 3, hidden = 21;
    map_head<float> head({width, heads, hidden}, weights::cursor(seeded_grads, "head"));
    train::parameters ps(head);
    const auto tok = test::random_vector(batch * t * width, 50), r = test::random_vector(batch * width, 51);
    std::vector<float> out(batch * width), dtok(tok.size(), 0.f);
    map_head<float>::saved s;
    head.forward_train(tok.data(), batch, t, out.data(), s);
    head.backward(tok.data(), batch, t, s, r.data(), dtok.data(), ps);
    const auto loss = [&](const dmap& m) {
        dmap n;
        for (const auto& [k, v] : m) {
            if (k.rfind("attn.", 0) == 0) n["a." + k.substr(5)] = v;
            if (k.rfind("mlp.", 0) == 0) n["m." + k.substr(4)] = v;
        }
        dvec probes;
        for (std::size_t b = 0; b < batch; ++b) probes.insert(probes.end(), m.at("probe").begin(), m.at("probe").end());
        dvec x = test::d_attention(n, "a", probes, m.at("input"), {batch, 1, t, width, heads, width / heads, true, 0.5, false, {}});
        const dvec h = test::d_layer_norm(x, batch, width, m.at("norm.weight"), &m.at("norm.bias"), 1e-6);
        test::d_add(x, test::d_mlp<kernels::act::gelu_tanh>(n, "m", h, batch, width, hidden, true));
        return test::d_dot(x, r);
    };
    CHECK(test::check_all("map_head", ps, {{"input", test::to_d(tok)}}, {{"input", dtok.data()}}, loss, 30) < bound);
}

TEST_CASE("token cross-entropy: ignore index, label smoothing", "[train][gradients]") {
    const std::size_t rows = 5, vocab = 23;
    const auto z = test::random_vector(rows * vocab, 60, 2.f);
    const std::vector<std::int32_t> targets{4, -100, 22, 0, 4};
    for (const float eps : {0.f, 0.1f}) {
        std::vector<float> dz(z.size());
        const auto res = kernels::cross_entropy(z.data(), vocab, rows, vocab, targets.data(), dz.data(), vocab, 0.25f, eps);
        CHECK(res.count == 4);
        const auto loss_of = [&](const dvec& zz) {
            double total = 0;
            for (std::size_t i = 0; i < rows; ++i) {
                if (targets[i] == -100) continue;
                double mx = -1e300, mean = 0;
                for (std::size_t j = 0; j < vocab; ++j) mx = std::max(mx, zz[i * vocab + j]);
                double s = 0;
                for (std::size_t j = 0; j < vocab; ++j) {
                    s += std::exp(zz[i * vocab + j] - mx);
                    mean += zz[i * vocab + j] / vocab;
                }
                const double lse = mx + std::log(s);
                total += (1 - eps) * (lse - zz[i * vocab + targets[i]]) + eps * (lse - mean);
            }
            return total;
        };
        CHECK(std::abs(res.loss_sum - loss_of(test::to_d(z))) < 1e-5 * res.loss_sum);
        const double e = test::fd_rel_error({{"z", test::to_d(z)}}, "z", dz.data(),
                                            [&](const dmap& m) { return 0.25 * loss_of(m.at("z")); }, 200);
        std::printf("  cross_entropy smoothing %.1f                          rel. error %.2e\n", eps, e);
        CHECK(e < 1e-5);
        for (std::size_t j = 0; j < vocab; ++j) CHECK(dz[1 * vocab + j] == 0.f);
    }
    const std::vector<std::int32_t> bad{4, 23, 0, 0, 0};
    CHECK_THROWS_WITH(kernels::cross_entropy(z.data(), vocab, rows, vocab, bad.data(), nullptr, 0),
                      Catch::Contains("target id out of range") && Catch::Contains("23"));
}

// The element-wise passes of forward_train / backward run on threads in parts of
// detail::elementwise_grain: gradients and outputs are the same bits on 1, 2 and 3 threads (rows x
// hidden = 611 x 97 = 59267 floats: 3 parts, the last ending off every SIMD width).
TEST_CASE("MLP training passes give the same bits on any thread count", "[train][gradients]") {
    const std::size_t rows = 611, w = 23, hidden = 97;
    static_assert(611 * 97 > 3 * detail::elementwise_grain, "the shape must split into three parts");
    const auto x = test::random_vector(rows * w, 27), r = test::random_vector(rows * w, 28);
    auto run = [&](auto& m, auto& saved, core::thread_pool& pool) {
        train::parameters ps(m);
        std::vector<float> y(rows * w), dx(rows * w);
        m.forward_train(x.data(), rows, y.data(), saved, pool);
        m.backward(x.data(), rows, saved, r.data(), dx.data(), ps, pool);
        for (const auto& p : ps.list()) y.insert(y.end(), p.grad.begin(), p.grad.end());
        y.insert(y.end(), dx.begin(), dx.end());
        return y;
    };
    mlp<kernels::act::gelu_tanh> plain({w, hidden, true}, weights::cursor(seeded_grads, "mlp"));
    gated_mlp<kernels::act::gelu_tanh> gated({w, hidden, false}, weights::cursor(seeded_grads, "gmlp"));
    std::vector<float> first_plain, first_gated;
    for (std::size_t threads : {1u, 2u, 3u}) {
        core::thread_pool pool(threads);
        mlp<kernels::act::gelu_tanh>::saved sp;
        gated_mlp<kernels::act::gelu_tanh>::saved sg;
        const auto a = run(plain, sp, pool), b = run(gated, sg, pool);
        if (threads == 1) {
            first_plain = a;
            first_gated = b;
            continue;
        }
        INFO("threads=" << threads);
        REQUIRE(std::memcmp(a.data(), first_plain.data(), a.size() * sizeof(float)) == 0);
        REQUIRE(std::memcmp(b.data(), first_gated.data(), b.size() * sizeof(float)) == 0);
    }
}
