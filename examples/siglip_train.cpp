// Training a whole SigLIP pair from scratch: a ViT image tower with a MAP head and a text tower,
// their temperature and bias, on a synthetic world of 8 classes (a coloured square at a class's
// place on a noisy 16 x 16 image; the text is the class's token). Each batch holds every class
// once (in the sigmoid loss every other pair of the batch is a negative, so a class twice would
// be its own negative). AdamW with warm-up and cosine decay, t' and b initialised as SigLIP does
// (log 10, -10); at the end, zero-shot classification of fresh images against the 8 class texts
// (chance: 12.5 %). docs/training.md.
// usage: pali3_siglip_train [steps=300] [threads=2]
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

#include <pali3/core/malloc_tuning.hpp>
#include <pali3/models/siglip.hpp>
#include <pali3/train/optimizer.hpp>
#include <pali3/weights/random_source.hpp>

using namespace pali3;

namespace {

constexpr std::size_t side = 16, classes = 8, text_len = 4;

// Image of class c: N(0, 0.3) noise, a 6 x 6 square in one of 8 places, coloured by c % 4.
void draw(std::size_t c, std::mt19937& gen, float* px) {
    std::normal_distribution<float> noise(0.f, 0.3f);
    for (std::size_t i = 0; i < 3 * side * side; ++i) px[i] = noise(gen);
    const std::size_t y0 = (c % 2) * 8 + 1, x0 = (c / 2) * 4 % 12 + 1;
    const float colour[4][3] = {{1, -1, -1}, {-1, 1, -1}, {-1, -1, 1}, {1, 1, -1}};
    for (std::size_t ch = 0; ch < 3; ++ch)
        for (std::size_t y = y0; y < y0 + 6; ++y)
            for (std::size_t x = x0; x < x0 + 6; ++x) px[(ch * side + y) * side + x] += colour[c % 4][ch];
}

// Text of class c: [token 3 + c, eos 1, pad 0, pad 0].
void text(std::size_t c, std::int32_t* ids) {
    ids[0] = static_cast<std::int32_t>(3 + c);
    ids[1] = 1;
    for (std::size_t i = 2; i < text_len; ++i) ids[i] = 0;
}

}  // namespace

int main(int argc, char** argv) {
    core::retain_freed_memory();  // each step's activations reuse the last step's memory
    const std::size_t steps = argc > 1 ? std::strtoul(argv[1], nullptr, 10) : 300;
    const std::size_t threads = argc > 2 ? std::strtoul(argv[2], nullptr, 10) : 2;
    if (steps == 0 || steps > 1000000 || threads == 0 || threads > 256) {
        std::fprintf(stderr, "usage: pali3_siglip_train [steps 1..1e6] [threads 1..256]\n");
        return 1;
    }
    const std::size_t batch = classes;
    // Width 32, 2 blocks, patch 4 (16 tokens); text tower of the same sizes over 16 token ids.
    const auto cfg = models::siglip_of(models::vit_config{32, 2, 64, 4, 4, side}, 16, text_len);
    models::siglip_model<float> model(cfg, weights::cursor(weights::random_source(1)));
    train::parameters params(model);
    params.at("logit_scale").value[0] = std::log(10.f);
    params.at("logit_bias").value[0] = -10.f;
    train::adamw opt(params, {3e-3f, 0.9f, 0.999f, 1e-8f, 1e-4f, 1.f},
                     {train::schedule::cosine, steps / 10, steps, 0.05f});
    core::thread_pool pool(threads);
    std::mt19937 gen(7);
    std::vector<float> px(batch * 3 * side * side);
    std::vector<std::int32_t> ids(batch * text_len);
    std::printf("SigLIP pair: %zu trainable parameters, batch %zu, %zu steps\n", params.count(), batch, steps);
    double first = 0, last = 0;
    for (std::size_t step = 0; step < steps; ++step) {
        std::vector<std::size_t> perm(classes);
        for (std::size_t i = 0; i < classes; ++i) perm[i] = i;
        std::shuffle(perm.begin(), perm.end(), gen);
        for (std::size_t i = 0; i < batch; ++i) {
            draw(perm[i], gen, px.data() + i * 3 * side * side);
            text(perm[i], ids.data() + i * text_len);
        }
        params.zero_grad();
        const double loss = model.loss_and_grad(px.data(), ids.data(), batch, &params, pool);
        const auto st = opt.step();
        if (step == 0) first = loss;
        last = loss;
        if (step % std::max<std::size_t>(steps / 10, 1) == 0 || step + 1 == steps)
            std::printf("step %4zu  loss %.4f  lr %.2e  |g| %.3f  t' %.3f  b %.3f\n", step + 1, loss, st.lr, st.grad_norm,
                        model.log_t(), model.bias());
    }
    // Zero-shot: 200 fresh images against the 8 class texts.
    core::workspace ws(model.workspace_floats(1, classes));
    std::vector<std::int32_t> all(classes * text_len);
    for (std::size_t c = 0; c < classes; ++c) text(c, all.data() + c * text_len);
    std::vector<float> txt(classes * model.embed_dim()), img(model.embed_dim()), one(3 * side * side);
    model.embed_texts(all.data(), classes, txt.data(), ws, pool);
    std::size_t hits = 0;
    const std::size_t n = 200;
    for (std::size_t i = 0; i < n; ++i) {
        const std::size_t c = gen() % classes;
        draw(c, gen, one.data());
        model.embed_images(one.data(), 1, img.data(), ws, pool);
        const auto s = model.scores(img.data(), 1, txt.data(), classes);
        std::size_t best = 0;
        for (std::size_t j = 1; j < classes; ++j)
            if (s[j] > s[best]) best = j;
        hits += best == c;
    }
    const double acc = static_cast<double>(hits) / static_cast<double>(n);
    std::printf("loss %.4f -> %.4f; zero-shot accuracy on %zu new images: %.1f %% (chance 12.5 %%)\n", first, last, n, 100 * acc);
    return last < first ? 0 : 1;
}
