// Double-precision twins of the layers' forward passes, written plainly from the formulas, and
// a central finite-difference checker on them. A gradient test runs our f32 forward_train +
// backward with an upstream gradient r, and compares each tensor's gradient with the finite
// differences of the twin's L = sum(r * y): relative error ||ours - fd|| / ||fd||.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <limits>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "pali3/kernels/reference.hpp"
#include "pali3/layers/position_bias.hpp"
#include "pali3/train/parameters.hpp"

namespace pali3::test {

using dvec = std::vector<double>;
using dmap = std::map<std::string, dvec>;

inline dvec to_d(const float* p, std::size_t n) { return dvec(p, p + n); }
inline dvec to_d(const std::vector<float>& v) { return dvec(v.begin(), v.end()); }

// Every adopted parameter as doubles, by name.
inline dmap values_of(const train::parameters& ps) {
    dmap m;
    for (const auto& p : ps.list()) m[p.name] = to_d(p.value, p.size());
    return m;
}

inline const dvec& at(const dmap& m, const std::string& k) {
    const auto it = m.find(k);
    if (it == m.end()) throw std::runtime_error("twin: no tensor " + k);
    return it->second;
}

// y (rows, out) = x W^T + b
inline dvec d_linear(const dvec& x, std::size_t rows, std::size_t in, const dvec& w, const dvec* b, std::size_t out) {
    dvec y(rows * out);
    for (std::size_t i = 0; i < rows; ++i)
        for (std::size_t j = 0; j < out; ++j) {
            double s = b ? (*b)[j] : 0.0;
            for (std::size_t p = 0; p < in; ++p) s += x[i * in + p] * w[j * in + p];
            y[i * out + j] = s;
        }
    return y;
}
// "a" + "b" -> "a.b"; "" + "b" -> "b" (the adopted names of a module at the root).
inline std::string sub(const std::string& name, const std::string& child) {
    return name.empty() ? child : name + "." + child;
}

inline dvec d_linear(const dmap& m, const std::string& name, const dvec& x, std::size_t rows, std::size_t in,
                     std::size_t out, bool bias) {
    return d_linear(x, rows, in, at(m, sub(name, "weight")), bias ? &at(m, sub(name, "bias")) : nullptr, out);
}

inline dvec d_layer_norm(const dvec& x, std::size_t rows, std::size_t w, const dvec& g, const dvec* b, double eps) {
    dvec y(x.size());
    for (std::size_t r = 0; r < rows; ++r) {
        double mean = 0, var = 0;
        for (std::size_t i = 0; i < w; ++i) mean += x[r * w + i];
        mean /= static_cast<double>(w);
        for (std::size_t i = 0; i < w; ++i) var += (x[r * w + i] - mean) * (x[r * w + i] - mean);
        var /= static_cast<double>(w);
        for (std::size_t i = 0; i < w; ++i)
            y[r * w + i] = (x[r * w + i] - mean) / std::sqrt(var + eps) * g[i] + (b ? (*b)[i] : 0.0);
    }
    return y;
}
inline dvec d_rms_norm(const dvec& x, std::size_t rows, std::size_t w, const dvec& g, double eps) {
    dvec y(x.size());
    for (std::size_t r = 0; r < rows; ++r) {
        double ms = 0;
        for (std::size_t i = 0; i < w; ++i) ms += x[r * w + i] * x[r * w + i];
        ms /= static_cast<double>(w);
        for (std::size_t i = 0; i < w; ++i) y[r * w + i] = x[r * w + i] / std::sqrt(ms + eps) * g[i];
    }
    return y;
}

template <class Act>
dvec d_act(dvec x) {
    for (auto& v : x) v = kernels::ref::apply<Act>(v);
    return x;
}

inline void d_add(dvec& y, const dvec& x) {
    for (std::size_t i = 0; i < y.size(); ++i) y[i] += x[i];
}

// Multi-head attention of the layers (q/k/v/o linears named name.{q,k,v,o}).
struct d_attention_args {
    std::size_t batch = 1, tq = 1, tm = 1, width = 0, heads = 1, dh = 0;
    bool bias = true;
    double scale = 1.0;
    bool causal = false;
    std::vector<std::size_t> key_lens;         // empty: all
    const dvec* rel_table = nullptr;           // (num_buckets, heads)
    std::size_t num_buckets = 32, max_distance = 128;
    bool bidirectional = true;
    std::vector<std::uint8_t> keep{};          // (batch, tm) 0/1 per key; empty: all
};

inline dvec d_attention(const dmap& m, const std::string& name, const dvec& x, const dvec& mem, const d_attention_args& a) {
    const std::size_t inner = a.heads * a.dh;
    const dvec q = d_linear(m, sub(name, "q"), x, a.batch * a.tq, a.width, inner, a.bias);
    const dvec k = d_linear(m, sub(name, "k"), mem, a.batch * a.tm, a.width, inner, a.bias);
    const dvec v = d_linear(m, sub(name, "v"), mem, a.batch * a.tm, a.width, inner, a.bias);
    dvec ctx(a.batch * a.tq * inner, 0.0);
    for (std::size_t b = 0; b < a.batch; ++b)
        for (std::size_t h = 0; h < a.heads; ++h)
            for (std::size_t i = 0; i < a.tq; ++i) {
                std::vector<double> s(a.tm);
                double mx = -std::numeric_limits<double>::infinity();
                for (std::size_t j = 0; j < a.tm; ++j) {
                    const bool visible = (a.key_lens.empty() || j < a.key_lens[b]) && (!a.causal || j <= i) &&
                                         (a.keep.empty() || a.keep[b * a.tm + j] == 1);
                    if (!visible) {
                        s[j] = -std::numeric_limits<double>::infinity();
                        continue;
                    }
                    double d = 0;
                    for (std::size_t c = 0; c < a.dh; ++c)
                        d += q[(b * a.tq + i) * inner + h * a.dh + c] * k[(b * a.tm + j) * inner + h * a.dh + c];
                    d *= a.scale;
                    if (a.rel_table) {
                        const auto bucket = layers::relative_position_bucket(
                            static_cast<std::ptrdiff_t>(j) - static_cast<std::ptrdiff_t>(i), a.bidirectional,
                            a.num_buckets, a.max_distance);
                        d += (*a.rel_table)[bucket * a.heads + h];
                    }
                    s[j] = d;
                    mx = std::max(mx, d);
                }
                if (mx == -std::numeric_limits<double>::infinity()) continue;
                double sum = 0;
                for (auto& e : s) sum += (e = std::exp(e - mx));
                for (std::size_t j = 0; j < a.tm; ++j)
                    for (std::size_t c = 0; c < a.dh; ++c)
                        ctx[(b * a.tq + i) * inner + h * a.dh + c] += s[j] / sum * v[(b * a.tm + j) * inner + h * a.dh + c];
            }
    return d_linear(m, sub(name, "o"), ctx, a.batch * a.tq, inner, a.width, a.bias);
}

template <class Act>
dvec d_mlp(const dmap& m, const std::string& name, const dvec& x, std::size_t rows, std::size_t w, std::size_t hidden,
           bool bias) {
    const dvec h = d_act<Act>(d_linear(m, sub(name, "fc1"), x, rows, w, hidden, bias));
    return d_linear(m, sub(name, "fc2"), h, rows, hidden, w, bias);
}

template <class Act>
dvec d_gated_mlp(const dmap& m, const std::string& name, const dvec& x, std::size_t rows, std::size_t w,
                 std::size_t hidden) {
    dvec g = d_act<Act>(d_linear(m, sub(name, "wi_0"), x, rows, w, hidden, false));
    const dvec u = d_linear(m, sub(name, "wi_1"), x, rows, w, hidden, false);
    for (std::size_t i = 0; i < g.size(); ++i) g[i] *= u[i];
    return d_linear(m, sub(name, "wo"), g, rows, hidden, w, false);
}

inline double d_dot(const dvec& a, const std::vector<float>& r) {
    double s = 0;
    for (std::size_t i = 0; i < a.size(); ++i) s += a[i] * r[i];
    return s;
}

// Central finite differences of loss(values) with respect to tensor `name`, at up to `samples`
// coordinates (all when the tensor is small), against the analytic gradient `ours`:
// returns ||ours - fd|| / ||fd|| over those n coordinates (the RMS error when fd is ~0).
inline double fd_rel_error(dmap values, const std::string& name, const float* ours,
                           const std::function<double(const dmap&)>& loss, std::size_t samples = 40) {
    dvec& t = values.at(name);
    std::vector<std::size_t> idx;
    if (t.size() <= samples) {
        for (std::size_t i = 0; i < t.size(); ++i) idx.push_back(i);
    } else {
        std::mt19937 gen(static_cast<std::uint32_t>(t.size() * 7919 + name.size()));
        std::uniform_int_distribution<std::size_t> pick(0, t.size() - 1);
        for (std::size_t i = 0; i < samples; ++i) idx.push_back(pick(gen));
    }
    double num = 0, den = 0;
    for (const std::size_t i : idx) {
        const double v = t[i], h = 1e-5 * std::max(1.0, std::abs(v));
        t[i] = v + h;
        const double lp = loss(values);
        t[i] = v - h;
        const double lm = loss(values);
        t[i] = v;
        const double fd = (lp - lm) / (2 * h);
        num += (ours[i] - fd) * (ours[i] - fd);
        den += fd * fd;
    }
    // A gradient that is zero in exact arithmetic (a key bias: softmax ignores a constant per
    // row) leaves only rounding in ours: then the RMS absolute error is returned.
    const double n = static_cast<double>(idx.size());
    if (den < 1e-16 * n) return std::sqrt(num / n);
    return std::sqrt(num / den);
}

// Checks every adopted parameter (and the extra tensors, e.g. "input") and prints one line per
// tensor with its relative error; returns the worst.
inline double check_all(const char* what, const train::parameters& ps, const dmap& extra_values,
                        const std::map<std::string, const float*>& extra_grads,
                        const std::function<double(const dmap&)>& loss, std::size_t samples = 40) {
    dmap values = values_of(ps);
    for (const auto& [k, v] : extra_values) values[k] = v;
    double worst = 0;
    for (const auto& p : ps.list()) {
        const double e = fd_rel_error(values, p.name, p.grad.data(), loss, samples);
        std::printf("  %-12s %-40s rel. error %.2e\n", what, p.name.c_str(), e);
        worst = std::max(worst, e);
    }
    for (const auto& [k, g] : extra_grads) {
        const double e = fd_rel_error(values, k, g, loss, samples);
        std::printf("  %-12s %-40s rel. error %.2e\n", what, k.c_str(), e);
        worst = std::max(worst, e);
    }
    return worst;
}

}  // namespace pali3::test
