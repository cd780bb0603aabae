// Whole models' gradients (ViT tower, T5 v1.1 and v1.0, PaLI-3, the SigLIP pair) against finite
// differences of their own loss along a direction, and the optimiser: AdamW against its formula,
// schedules, clipping, accumulation, freezing, and a resumed run equal to an uninterrupted one.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <functional>
#include <random>

#include "../common.hpp"
#include "pali3/models/pali3.hpp"
#include "pali3/models/siglip.hpp"
#include "pali3/train/init.hpp"
#include "pali3/train/optimizer.hpp"
#include "pali3/weights/mapped_source.hpp"
#include "pali3/weights/random_source.hpp"

using namespace pali3;

namespace {
const weights::random_source seeded_training(77);

// (L(w + e v) - L(w - e v)) against g . (the perturbation actually applied after rounding w + e v
// to f32), along the gradient itself and along a random direction; the ratio r(e) = 1 + O(e^2)
// is taken at e and e/2 and extrapolated (Richardson: (4 r(e/2) - r(e)) / 3) so that what
// remains is f32 rounding, not curvature. Returns the worse |r - 1| of the two directions.
// `step`: how far the loss moves along the gradient direction (x max(|loss|, 1)). Small enough that
// kinks (ReLU) and curvature stay out of the difference, large enough that the f32 forward's
// rounding does not: 2e-3 suits the models' cross-entropies; a small smooth loss takes more.
double directional_error(const char* what, train::parameters& ps, const std::function<double()>& loss, double step = 2e-3) {
    double worst = 0;
    const double l0 = loss();
    std::vector<std::vector<float>> saved;
    for (const auto& p : ps.list()) saved.emplace_back(p.value, p.value + p.size());
    for (int kind = 0; kind < 2; ++kind) {
        std::mt19937 gen(123 + kind);
        std::normal_distribution<double> nd;
        std::vector<std::vector<double>> dir;
        double slope = 0;
        for (const auto& p : ps.list()) {
            std::vector<double> v(p.size());
            for (std::size_t i = 0; i < v.size(); ++i)
                v[i] = kind == 0 ? p.grad[i] : nd(gen) * std::abs(p.value[i]) + 1e-3 * nd(gen);
            for (std::size_t i = 0; i < v.size(); ++i) slope += v[i] * p.grad[i];
            dir.push_back(std::move(v));
        }
        auto shift = [&](double step) {  // w = saved + step * dir; returns g . (w - saved)
            double gdw = 0;
            for (std::size_t k = 0; k < ps.list().size(); ++k) {
                auto& p = ps.list()[k];
                for (std::size_t i = 0; i < p.size(); ++i) {
                    p.value[i] = static_cast<float>(saved[k][i] + step * dir[k][i]);
                    gdw += static_cast<double>(p.grad[i]) * (static_cast<double>(p.value[i]) - saved[k][i]);
                }
            }
            return gdw;
        };
        // the random direction moves every weight by ~1e-3 of itself; a slope much smaller than
        // |g| |v| would make the ratio meaningless, so it is measured against that scale.
        double gn = 0, vn = 0;
        for (std::size_t k = 0; k < dir.size(); ++k)
            for (std::size_t i = 0; i < dir[k].size(); ++i) {
                gn += static_cast<double>(ps.list()[k].grad[i]) * ps.list()[k].grad[i];
                vn += dir[k][i] * dir[k][i];
            }
        const double scale = std::max(std::abs(slope), 0.1 * std::sqrt(gn * vn));
        auto ratio = [&](double eps) {
            const double gp = shift(+eps), lp = loss();
            const double gm = shift(-eps), lm = loss();
            return 1.0 + ((lp - lm) - (gp - gm)) / (2 * eps * scale);
        };
        const double eps = kind == 0 ? step * std::max(std::abs(l0), 1.0) / std::max(std::abs(slope), 1e-12) : 1e-3;
        const double r1 = ratio(eps), r2 = ratio(eps / 2), r = (4 * r2 - r1) / 3;
        for (std::size_t k = 0; k < ps.list().size(); ++k) std::copy(saved[k].begin(), saved[k].end(), ps.list()[k].value);
        const double e = std::abs(r - 1);
        std::printf("  %-28s direction %-9s loss %.5f  fd / (g . dw) = %.6f (e), %.6f (e/2), %.6f extrapolated: rel. error %.2e\n",
                    what, kind == 0 ? "gradient" : "random", l0, r1, r2, r, e);
        worst = std::max(worst, e);
    }
    return worst;
}

std::vector<std::int32_t> ids(std::size_t n, std::size_t vocab, std::uint32_t seed) {
    std::mt19937 gen(seed);
    std::vector<std::int32_t> out(n);
    for (auto& v : out) v = static_cast<std::int32_t>(gen() % vocab);
    return out;
}

constexpr models::t5_config tiny_t5{53, 24, 40, 3, 8, 2, 2, 8, 20};
}  // namespace

TEST_CASE("ViT tower with MAP head: gradient of the pooled output", "[train][models]") {
    models::vit_config c{20, 2, 36, 4, 5, 15};  // width 20, depth 2, mlp 36, heads 4, patch 5, image 15
    c.map_head = true;
    models::vision_tower<float> tower(c, weights::cursor(seeded_training, "img"));
    train::parameters ps(tower);
    const std::size_t batch = 2, n = c.tokens();
    const auto img = test::random_vector(batch * 3 * 15 * 15, 1);
    const auto r = test::random_vector(batch * c.width, 2);
    auto run = [&](bool grad) {
        std::vector<float> tokens(batch * n * c.width), pooled(batch * c.width);
        models::vision_tower<float>::saved s;
        models::vision_tower<float>::head_type::saved hs;
        tower.forward_train(img.data(), batch, layers::image_layout::nchw, tokens.data(), s);
        tower.pool_train(tokens.data(), batch, pooled.data(), hs);
        double l = 0;
        for (std::size_t i = 0; i < pooled.size(); ++i) l += static_cast<double>(pooled[i]) * r[i];
        if (grad) {
            std::vector<float> dt(tokens.size(), 0.f);
            tower.pool_backward(tokens.data(), batch, hs, r.data(), dt.data(), ps);
            tower.backward(img.data(), batch, layers::image_layout::nchw, s, dt.data(), ps);
        }
        return l;
    };
    run(true);
    // The projection loss here is small (0.26) and smooth: at a 2e-3 step the f32 forward's
    // rounding alone gave 1.5e-3 at e/2 on an AVX2 machine (2.25e-3 extrapolated); at 8e-3, 2e-4.
    CHECK(directional_error("vit tower + MAP head", ps, [&] { return run(false); }, 8e-3) < 2e-3);
}

TEMPLATE_TEST_CASE("T5 teacher-forced cross-entropy: whole-model gradient", "[train][models]", models::t5_v11<float>,
                   models::t5_v10<float>) {
    auto c = tiny_t5;
    c.tied_embeddings = std::is_same_v<TestType, models::t5_v10<float>>;
    TestType model(c, weights::cursor(seeded_training, "t5"));
    train::parameters ps(model);
    const std::size_t batch = 2, enc = 7, dec = 5;
    const auto e = ids(batch * enc, c.vocab, 3), d = ids(batch * dec, c.vocab, 4);
    auto t = ids(batch * dec, c.vocab, 5);
    t[3] = -100;
    const std::vector<std::size_t> lens{7, 4};
    const auto [loss, count] = model.loss_and_grad(e.data(), batch, enc, lens, d.data(), dec, t.data(), &ps);
    CHECK(count == batch * dec - 1);
    CHECK(loss > 0.5 * std::log(static_cast<double>(c.vocab)));
    const double err = directional_error(c.tied_embeddings ? "t5 v1.0 (tied head)" : "t5 v1.1", ps, [&] {
        return model.loss_and_grad(e.data(), batch, enc, lens, d.data(), dec, t.data(),
                                   static_cast<train::parameters*>(nullptr)).first;
    });
    // T5 v1.0's ReLU has kinks that the differences step over (~5e-3 at these steps).
    CHECK(err < (c.tied_embeddings ? 1e-2 : 2e-3));
    if (c.tied_embeddings) CHECK_THROWS(ps.at("lm_head.weight"));

    // recompute: the same loss and gradients bit for bit
    std::vector<float> g1;
    for (const auto& p : ps.list()) g1.insert(g1.end(), p.grad.begin(), p.grad.end());
    ps.zero_grad();
    model.loss_and_grad(e.data(), batch, enc, lens, d.data(), dec, t.data(), &ps, core::sequential{}, {0.f, true});
    std::vector<float> g2;
    for (const auto& p : ps.list()) g2.insert(g2.end(), p.grad.begin(), p.grad.end());
    CHECK(g1 == g2);
}

TEST_CASE("PaLI-3: whole-model gradient through text, projector and vision tower", "[train][models]") {
    models::pali3_config c = models::pali3_of(models::vit_config{20, 1, 36, 4, 5, 10}, tiny_t5);
    models::pali3_model<float> model(c, weights::cursor(seeded_training, "pali3"));
    train::parameters ps(model);
    const std::size_t batch = 2, dec = 4;
    const auto img = test::random_vector(batch * 3 * 10 * 10, 6);
    const std::vector<std::vector<std::int32_t>> prompts{{3, 9, 1}, {40}};
    const auto d = ids(batch * dec, c.text.vocab, 7), t = ids(batch * dec, c.text.vocab, 8);
    model.loss_and_grad(img.data(), prompts, d.data(), dec, t.data(), &ps);
    CHECK(ps.at("img.embedding.weight").grad[0] != 0.f);
    CHECK(ps.at("projector.bias").grad[0] != 0.f);
    const double err = directional_error("pali3", ps, [&] {
        return model.loss_and_grad(img.data(), prompts, d.data(), dec, t.data(), static_cast<train::parameters*>(nullptr)).first;
    });
    CHECK(err < 2e-3);
}

TEST_CASE("SigLIP two-tower model: gradient of the sigmoid loss", "[train][models]") {
    auto c = models::siglip_of(models::vit_config{16, 1, 28, 2, 5, 10}, 37, 6);
    models::siglip_model<float> model(c, weights::cursor(seeded_training, "siglip"));
    train::parameters ps(model);
    const std::size_t n = 3;
    const auto img = test::random_vector(n * 3 * 10 * 10, 9);
    const auto t = ids(n * 6, 37, 10);
    model.loss_and_grad(img.data(), t.data(), n, &ps);
    CHECK(ps.at("logit_bias").grad[0] != 0.f);
    CHECK(directional_error("siglip", ps, [&] {
              return model.loss_and_grad(img.data(), t.data(), n, static_cast<train::parameters*>(nullptr));
          }) < 2e-3);
}

TEST_CASE("AdamW: PyTorch's update, schedules, clipping, accumulation", "[train][optimizer]") {
    layers::linear<float> lin({3, 2, true}, weights::cursor(seeded_training, "lin"));
    train::parameters ps(lin);
    CHECK(ps.at("weight").decay);
    CHECK_FALSE(ps.at("bias").decay);
    std::vector<float> w0(ps.at("weight").value, ps.at("weight").value + 6), b0(ps.at("bias").value, ps.at("bias").value + 2);
    train::adamw opt(ps, {0.1f, 0.9f, 0.99f, 1e-8f, 0.5f, 0.f});
    const std::vector<float> g1{0.5f, -1, 2, 0.25f, 3, -0.1f}, g2{-0.2f, 0.4f, 1, 2, -1, 0.3f};
    // Two steps of `opt` on the weight (gradients g1, g2; the bias's {1, -1}) against
    // torch.optim.AdamW's formula in double at learning rate `lr`; returns the max rel. error.
    auto two_steps_error = [&](train::parameters& p, train::adamw& o, double lr) {
        std::vector<double> m(6, 0), v(6, 0), w(w0.begin(), w0.end());
        for (int step = 1; step <= 2; ++step) {
            const auto& gs = step == 1 ? g1 : g2;
            std::copy(gs.begin(), gs.end(), p.at("weight").grad.begin());
            p.at("bias").grad = {1.f, -1.f};
            o.step();
            for (std::size_t i = 0; i < 6; ++i) {
                w[i] *= 1 - lr * 0.5;
                m[i] = 0.9 * m[i] + 0.1 * gs[i];
                v[i] = 0.99 * v[i] + 0.01 * gs[i] * gs[i];
                const double mh = m[i] / (1 - std::pow(0.9, step)), vh = v[i] / (1 - std::pow(0.99, step));
                w[i] -= lr * mh / (std::sqrt(vh) + 1e-8);
            }
        }
        double err = 0;
        for (std::size_t i = 0; i < 6; ++i) err = std::max(err, std::abs(p.at("weight").value[i] - w[i]) / std::abs(w[i]));
        return err;
    };
    const double err = two_steps_error(ps, opt, 0.1);
    std::printf("  adamw two steps vs the formula in double: max rel. error %.2e\n", err);
    CHECK(err < 1e-6);
    // bias: no decay, |update| = lr on the first steps (sign of the gradient)
    CHECK(ps.at("bias").value[0] == Approx(b0[0] - 0.2f).epsilon(1e-5));

    // a per-tensor learning-rate scale: the same formula at lr x 0.3 (decay too); the bias keeps lr
    train::parameters psc(lin);
    for (std::size_t i = 0; i < 6; ++i) psc.at("weight").value[i] = w0[i];
    psc.at("bias").value[0] = b0[0];
    CHECK(psc.scale_lr([](const std::string& n) { return n == "weight"; }, 0.3f) == 1);
    CHECK_THROWS_WITH(psc.scale_lr([](const std::string&) { return true; }, -0.5f), Catch::Contains("a finite factor >= 0"));
    CHECK_THROWS_WITH(psc.scale_lr([](const std::string&) { return true; }, std::nanf("")), Catch::Contains("learning-rate scale"));
    train::adamw osc(psc, {0.1f, 0.9f, 0.99f, 1e-8f, 0.5f, 0.f});
    const double err_scaled = two_steps_error(psc, osc, 0.03);
    std::printf("  adamw at lr x 0.3, two steps vs the formula in double: max rel. error %.2e\n", err_scaled);
    CHECK(err_scaled < 1e-6);
    CHECK(psc.at("bias").value[0] == Approx(b0[0] - 0.2f).epsilon(1e-5));

    train::schedule cos{train::schedule::cosine, 10, 110, 0.1f};
    CHECK(cos.factor(0) == Approx(0.1));
    CHECK(cos.factor(9) == Approx(1.0));
    CHECK(cos.factor(60) == Approx(0.1 + 0.9 * 0.5));
    CHECK(cos.factor(500) == Approx(0.1));
    train::schedule rs{train::schedule::rsqrt, 100, 0, 0.f};
    CHECK(rs.factor(99) == Approx(1.0));
    CHECK(rs.factor(399) == Approx(0.5));
    CHECK_THROWS_WITH(train::parse_schedule("linear"), Catch::Contains("constant, cosine or rsqrt"));

    // clipping: the update uses the gradient scaled to norm 1; accumulation divides first
    train::parameters pc(lin);
    train::adamw clip(pc, {0.1f, 0.9f, 0.99f, 1e-8f, 0.f, 1.f});
    for (auto& p : pc.list()) std::fill(p.grad.begin(), p.grad.end(), 6.f);  // norm 6 * sqrt(8)
    const auto st = clip.step(2);
    CHECK(st.grad_norm == Approx(3.0 * std::sqrt(8.0)));
    CHECK(st.lr == Approx(0.1));
    for (auto& p : pc.list()) p.grad[0] = std::nanf("");
    CHECK_THROWS_WITH(clip.step(), Catch::Contains("non-finite gradient") && Catch::Contains("weight"));
    CHECK_THROWS_WITH(train::adamw(pc, {-1.f}), Catch::Contains("learning rate"));
}

TEST_CASE("training: the loss falls, frozen tensors stay, a resumed run equals an uninterrupted one", "[train][optimizer]") {
    const std::size_t batch = 2, enc = 6, dec = 5;
    const auto e = ids(batch * enc, tiny_t5.vocab, 11), d = ids(batch * dec, tiny_t5.vocab, 12),
               t = ids(batch * dec, tiny_t5.vocab, 13);
    auto train_steps = [&](models::t5_v11<float>& model, train::parameters& ps, train::adamw& opt, int steps) {
        double loss = 0;
        for (int i = 0; i < steps; ++i) {
            ps.zero_grad();
            loss = model.loss_and_grad(e.data(), batch, enc, {}, d.data(), dec, t.data(), &ps).first;
            opt.step();
        }
        return loss;
    };
    const train::adamw_config cfg{3e-2f, 0.9f, 0.999f, 1e-8f, 1e-2f, 1.f};
    const train::schedule sched{train::schedule::cosine, 3, 12, 0.f};

    models::t5_v11<float> a(tiny_t5, weights::cursor(seeded_training, "t5"));
    train::parameters pa(a);
    const std::vector<float> frozen(pa.at("shared.weight").value, pa.at("shared.weight").value + 40);
    CHECK(pa.freeze([](const std::string& n) { return n == "shared.weight"; }) == 1);
    train::adamw oa(pa, cfg, sched);
    const double first = a.loss_and_grad(e.data(), batch, enc, {}, d.data(), dec, t.data(),
                                         static_cast<train::parameters*>(nullptr)).first;
    const double last = train_steps(a, pa, oa, 12);
    std::printf("  tiny T5 on one batch: loss %.4f -> %.4f after 12 AdamW steps\n", first, last);
    CHECK(last < 0.5 * first);
    CHECK(std::equal(frozen.begin(), frozen.end(), pa.at("shared.weight").value));

    // 5 steps, save, a fresh model (other initial weights) loads the state, 7 more steps
    const auto path = (std::filesystem::temp_directory_path() / "pali3_train_state_test.safetensors").string();
    models::t5_v11<float> b(tiny_t5, weights::cursor(seeded_training, "t5"));
    train::parameters pb(b);
    pb.freeze([](const std::string& n) { return n == "shared.weight"; });
    train::adamw ob(pb, cfg, sched);
    train_steps(b, pb, ob, 5);
    ob.save(path, {{"rng", "12345"}, {"data_position", "10"}});
    const weights::random_source other(5);
    models::t5_v11<float> c(tiny_t5, weights::cursor(other, "t5"));
    train::parameters pc(c);
    pc.freeze([](const std::string& n) { return n == "shared.weight"; });
    train::adamw oc(pc, cfg, sched);
    const auto meta = oc.load(path);
    CHECK(oc.steps() == 5);
    CHECK(meta.at("rng") == "12345");
    train_steps(c, pc, oc, 7);
    bool same = true;
    for (std::size_t k = 0; k < pa.size(); ++k)
        same = same && std::equal(pa.list()[k].value, pa.list()[k].value + pa.list()[k].size(), pc.list()[k].value);
    CHECK(same);
    std::filesystem::remove(path);

    // a state from another model is refused naming the tensor; bf16 models are refused for training
    layers::linear<float> lin({3, 2, true}, weights::cursor(seeded_training, "lin"));
    train::parameters pl(lin);
    train::adamw ol(pl);
    ol.save(path);
    CHECK_THROWS_WITH(oa.load(path), Catch::Contains("shared.weight"));
    std::filesystem::remove(path);
    layers::linear<bf16> lb({3, 2, true}, weights::cursor(seeded_training, "lin"));
    CHECK_THROWS_WITH(train::parameters(lb), Catch::Contains("training needs f32 weights"));
}

TEST_CASE("gradients go back to the checkpoint's names and layouts", "[train][weights]") {
    // "Theirs": a Flax Dense kernel (in, out), a conv kernel (kh, kw, in, out), a stacked (scan)
    // array of two layers, a fused q/k/v matrix, and an embedding read under two of our names.
    weights::memory_source file;
    file.add("dense/kernel", std::vector<float>(3 * 2, 0.f), {3, 2});
    file.add("conv/kernel", std::vector<float>(2 * 2 * 3 * 4, 0.f), {2, 2, 3, 4});
    file.add("scan/w", std::vector<float>(2 * 2 * 3, 0.f), {2, 2, 3});
    file.add("in_proj", std::vector<float>(3 * 2 * 2, 0.f), {6, 2});
    file.add("emb", std::vector<float>(4, 0.f), {2, 2});
    const std::vector<weights::map_rule> rules = {
        {"lin.weight", "dense/kernel", weights::layout::transpose},
        {"patch.weight", "conv/kernel", weights::layout::conv_hwio},
        {"blocks.{}.w", "scan/w[{}]"},
        {"attn.q", "in_proj", weights::layout::same, 0, 3},
        {"attn.k", "in_proj", weights::layout::same, 1, 3},
        {"attn.v", "in_proj", weights::layout::same, 2, 3},
        {"shared", "emb"},
        {"lm_head", "emb"},
    };
    const weights::mapped_source src(file, rules);
    weights::memory_source ours;
    auto seq = [](std::size_t n, float start) {
        std::vector<float> v(n);
        for (std::size_t i = 0; i < n; ++i) v[i] = start + static_cast<float>(i);
        return v;
    };
    ours.add("lin.weight", seq(6, 0), {2, 3});
    ours.add("patch.weight", seq(48, 100), {4, 3, 2, 2});
    ours.add("blocks.0.w", seq(6, 200), {2, 3});
    ours.add("blocks.1.w", seq(6, 300), {2, 3});
    ours.add("attn.q", seq(4, 400), {2, 2});
    ours.add("attn.k", seq(4, 500), {2, 2});
    ours.add("attn.v", seq(4, 600), {2, 2});
    ours.add("shared", seq(4, 1), {2, 2});
    ours.add("lm_head", seq(4, 10), {2, 2});
    const auto out = weights::export_like_source(src, ours);
    CHECK(out.names() == std::vector<std::string>{"conv/kernel", "dense/kernel", "emb", "in_proj", "scan/w"});
    auto at = [&](const std::string& n, std::size_t i) { return static_cast<const float*>(out.find(n)->data)[i]; };
    // ours (out=2, in=3) element (1, 2) = 5 sits at theirs (in=2, out=1)
    CHECK(at("dense/kernel", 2 * 2 + 1) == 5.f);
    // ours (o=3, c=1, y=1, x=0) sits at theirs ((y, x, c, o) = (1, 0, 1, 3))
    CHECK(at("conv/kernel", ((1 * 2 + 0) * 3 + 1) * 4 + 3) == 100.f + ((3 * 3 + 1) * 2 + 1) * 2 + 0);
    CHECK(at("scan/w", 6 + 4) == 304.f);
    CHECK(at("in_proj", 4 + 1) == 501.f);
    CHECK(at("in_proj", 8 + 3) == 603.f);
    CHECK(at("emb", 3) == 4.f + 13.f);  // tied: the two gradients summed
    CHECK(out.find("conv/kernel")->shape == shape_t{2, 2, 3, 4});
    weights::memory_source stray;
    stray.add("unknown", seq(2, 0), {2});
    CHECK_THROWS_WITH(weights::export_like_source(src, stray), Catch::Contains("unknown"));
}

TEST_CASE("ordinal rows: nearby <loc> bins start close, far ones apart, at the table's scale", "[train][init]") {
    const std::size_t rows = 1100, width = 37, first = 70, count = 1024;
    auto table = test::random_vector(rows * width, 5);
    const auto before = table;
    double mean_norm = 0;
    for (std::size_t r = 0; r < rows; ++r) {
        double s = 0;
        for (std::size_t j = 0; j < width; ++j) s += double(table[r * width + j]) * table[r * width + j];
        mean_norm += std::sqrt(s) / double(rows);
    }
    train::ordinal_rows(table.data(), rows, width, first, count, 3);
    auto row = [&](std::size_t i) { return table.data() + (first + i) * width; };
    auto cosine = [&](std::size_t a, std::size_t b) {
        double ab = 0, aa = 0, bb = 0;
        for (std::size_t j = 0; j < width; ++j) {
            ab += double(row(a)[j]) * row(b)[j];
            aa += double(row(a)[j]) * row(a)[j];
            bb += double(row(b)[j]) * row(b)[j];
        }
        return ab / std::sqrt(aa * bb);
    };
    double near = 1, far = -1;
    for (std::size_t i = 0; i + 1 < count; i += 37) near = std::min(near, cosine(i, i + 1));
    for (std::size_t i = 0; i + 300 < count; i += 41) far = std::max(far, cosine(i, i + 300));
    INFO("worst neighbour cosine " << near << ", closest bins 300 apart " << far);
    CHECK(near > 0.95);
    CHECK(far < 0.6);
    double norm0 = 0;
    for (std::size_t j = 0; j < width; ++j) norm0 += double(row(0)[j]) * row(0)[j];
    CHECK(std::abs(std::sqrt(norm0) - mean_norm) < 1e-4 * mean_norm);
    for (std::size_t r = 0; r < rows; ++r)  // rows outside the range are untouched
        if (r < first || r >= first + count) CHECK(std::memcmp(&table[r * width], &before[r * width], width * sizeof(float)) == 0);
    CHECK_THROWS_WITH(train::ordinal_rows(table.data(), rows, width, 100, count, 3),
                      Catch::Contains("ordinal rows out of the table") && Catch::Contains("100 + 1024"));
}

TEST_CASE("AdamW on threads: the same update as on one thread, bit for bit", "[train][optimizer]") {
    // Two linears of 300 x 500 + 300 (over 2 x 2^16 elements, so the update is split), one more
    // tensor frozen in between; the same gradients, three steps with weight decay and clipping.
    auto make = [] {
        layers::linear<float> lin({500, 300, true}, weights::cursor(seeded_training, "big"));
        return lin;
    };
    auto one = make(), many = make();
    train::parameters p1(one), p3(many);
    p1.at("bias").trainable = p3.at("bias").trainable = false;
    const train::adamw_config c{1e-2f, 0.9f, 0.99f, 1e-8f, 0.1f, 0.5f};
    train::adamw o1(p1, c), o3(p3, c);
    core::thread_pool pool(3);
    const float w0 = p1.at("weight").value[0];
    for (std::uint32_t step = 0; step < 3; ++step) {
        const auto g = test::random_vector(p1.at("weight").size(), 500 + step);
        p1.at("weight").grad.assign(g.begin(), g.end());
        p3.at("weight").grad.assign(g.begin(), g.end());
        o1.step();
        o3.step(1, pool);
    }
    const auto& w1 = p1.at("weight");
    const auto& w3 = p3.at("weight");
    REQUIRE(std::memcmp(w1.value, w3.value, w1.size() * sizeof(float)) == 0);
    CHECK(std::memcmp(p1.at("bias").value, p3.at("bias").value, p1.at("bias").size() * sizeof(float)) == 0);
    CHECK(w1.value[0] != w0);
}
