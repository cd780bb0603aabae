// Training with the SigLIP loss's gradients: fixed random "image" and "text" embeddings whose
// pairs share a hidden direction, a linear adapter W on the image side, and the learnable
// temperature t' and bias b. Plain gradient descent (Adam) on dL/dW (through d_img), dL/dt',
// dL/db until the loss falls and the positives outrank the negatives.
// usage: pali3_siglip_train [steps=300] [batch=256] [width=64]
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

#include <pali3/loss/siglip_loss.hpp>

namespace {

struct adam {
    std::vector<double> m, v;
    double lr, b1 = 0.9, b2 = 0.999;
    int t = 0;
    adam(std::size_t n, double lr_) : m(n, 0.0), v(n, 0.0), lr(lr_) {}
    void step(float* p, const double* g, std::size_t n) {
        ++t;
        for (std::size_t i = 0; i < n; ++i) {
            m[i] = b1 * m[i] + (1 - b1) * g[i];
            v[i] = b2 * v[i] + (1 - b2) * g[i] * g[i];
            const double mh = m[i] / (1 - std::pow(b1, t)), vh = v[i] / (1 - std::pow(b2, t));
            p[i] -= static_cast<float>(lr * mh / (std::sqrt(vh) + 1e-8));
        }
    }
};

// Fraction of images whose own text scores highest.
double top1(const std::vector<float>& a, const std::vector<float>& b, std::size_t n, std::size_t d) {
    std::size_t hits = 0;
    for (std::size_t i = 0; i < n; ++i) {
        std::size_t best = 0;
        double best_s = -1e30;
        for (std::size_t j = 0; j < n; ++j) {
            double s = 0, na = 0, nb = 0;
            for (std::size_t k = 0; k < d; ++k) {
                s += double(a[i * d + k]) * b[j * d + k];
                na += double(a[i * d + k]) * a[i * d + k];
                nb += double(b[j * d + k]) * b[j * d + k];
            }
            s /= std::sqrt(na * nb) + 1e-12;
            if (s > best_s) best_s = s, best = j;
        }
        hits += best == i;
    }
    return double(hits) / double(n);
}

}  // namespace

int main(int argc, char** argv) {
    const int steps = argc > 1 ? std::atoi(argv[1]) : 300;
    const std::size_t n = argc > 2 ? std::strtoul(argv[2], nullptr, 10) : 256, d = argc > 3 ? std::strtoul(argv[3], nullptr, 10) : 64;
    std::mt19937 gen(7);
    std::normal_distribution<float> dist(0.f, 1.f);
    // Pairs share a latent z: image = A z + noise, text = z + noise; A is a fixed random mixing, so
    // the adapter has to learn (roughly) its inverse for image and text to line up.
    std::vector<float> A(d * d), z(n * d), x(n * d), txt(n * d);
    for (auto& a : A) a = dist(gen) / std::sqrt(float(d));
    for (auto& v : z) v = dist(gen);
    for (std::size_t i = 0; i < n; ++i)
        for (std::size_t r = 0; r < d; ++r) {
            float s = 0;
            for (std::size_t c = 0; c < d; ++c) s += A[r * d + c] * z[i * d + c];
            x[i * d + r] = s + 0.3f * dist(gen);
            txt[i * d + r] = z[i * d + r] + 0.3f * dist(gen);
        }
    std::vector<float> W(d * d, 0.f);  // adapter, starts at identity
    for (std::size_t i = 0; i < d; ++i) W[i * d + i] = 1.f;
    float log_t = std::log(10.f), bias = -10.f;
    adam opt_w(d * d, 1e-2), opt_tb(2, 5e-2);
    std::vector<float> img(n * d), d_img(n * d);
    std::vector<double> gW(d * d);
    double first = 0, last = 0;
    std::printf("SigLIP loss, batch %zu, width %zu: training a linear adapter, t' and b\n", n, d);
    for (int s = 0; s <= steps; ++s) {
        for (std::size_t i = 0; i < n; ++i)  // img = x W^T
            for (std::size_t r = 0; r < d; ++r) {
                float acc = 0;
                for (std::size_t c = 0; c < d; ++c) acc += W[r * d + c] * x[i * d + c];
                img[i * d + r] = acc;
            }
        const auto res = pali3::loss::siglip_loss(img.data(), txt.data(), n, d, log_t, bias, {d_img.data()});
        if (s == 0) first = res.loss;
        last = res.loss;
        if (s % (steps / 10 ? steps / 10 : 1) == 0)
            std::printf("  step %4d  loss %.4f  t %.2f  b %.2f  image->text top-1 %.2f\n", s, res.loss, std::exp(log_t), bias,
                        top1(img, txt, n, d));
        if (s == steps) break;
        std::fill(gW.begin(), gW.end(), 0.0);  // dL/dW = d_img^T x
        for (std::size_t i = 0; i < n; ++i)
            for (std::size_t r = 0; r < d; ++r)
                for (std::size_t c = 0; c < d; ++c) gW[r * d + c] += double(d_img[i * d + r]) * x[i * d + c];
        opt_w.step(W.data(), gW.data(), d * d);
        const double gtb[2] = {res.d_log_t, res.d_bias};
        float tb[2] = {log_t, bias};
        opt_tb.step(tb, gtb, 2);
        log_t = tb[0];
        bias = tb[1];
    }
    std::printf("loss %.4f -> %.4f (%s)\n", first, last, last < 0.5 * first ? "the gradients train" : "did not fall enough");
    return last < first ? 0 : 1;
}
