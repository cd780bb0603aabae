// Decoding: greedy and beam search over an encoder-decoder whose encoder has already run once.
//
// The decoder is driven through a step function `step(ids, state, logits)` that appends one token
// per row of `state` (KV cache for self-attention, precomputed cross-attention K/V) and writes
// (rows, vocab) logits. Beam search keeps `beam` hypotheses per prompt as rows of one state,
// reorders the caches with `state.gather`, and scores finished hypotheses with a length penalty
// `score / length^alpha` (alpha = 0: raw log-probability). The result per prompt is the best
// hypothesis (tokens without the start token, ending at EOS when it was produced) and its
// log-probability.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <numeric>
#include <span>
#include <vector>

#include "pali3/core/error.hpp"
#include "pali3/models/t5.hpp"

namespace pali3::generation {

struct options {
    std::size_t max_new_tokens = 32;
    std::size_t beam = 1;             // 1: greedy
    float length_penalty = 0.f;       // alpha in score / length^alpha
    std::int32_t eos_id = 1;
    std::int32_t start_id = 0;        // T5: pad
};

struct hypothesis {
    std::vector<std::int32_t> tokens;  // generated tokens (EOS included when produced)
    double log_prob = 0;               // sum of token log-probabilities
    double score = 0;                  // log_prob / length^alpha
    bool finished = false;             // ended with EOS
};

using step_fn = std::function<void(const std::int32_t* ids, models::t5_decoder_state& state, float* logits)>;

namespace detail {
inline void log_softmax(float* x, std::size_t n) {
    const float m = *std::max_element(x, x + n);
    double s = 0;
    for (std::size_t i = 0; i < n; ++i) s += std::exp(static_cast<double>(x[i] - m));
    const float lse = m + static_cast<float>(std::log(s));
    for (std::size_t i = 0; i < n; ++i) x[i] -= lse;
}
inline double penalised(double log_prob, std::size_t length, float alpha) {
    return alpha == 0.f ? log_prob : log_prob / std::pow(static_cast<double>(std::max<std::size_t>(length, 1)), alpha);
}
// NaN or Inf in a step's logits (weights loaded with --allow-nonfinite, or an overflow) would
// be argmax'ed or sorted silently: a clear error naming the step instead.
inline void require_finite_logits(const std::vector<float>& logits, std::size_t vocab, std::size_t step) {
    for (std::size_t i = 0; i < logits.size(); ++i)
        if (!std::isfinite(logits[i]))
            throw value_error(core::describe("non-finite logits", "decoder step " + std::to_string(step) + ", row " + std::to_string(i / vocab),
                                             "finite values", std::isnan(logits[i]) ? "NaN" : "Inf"));
}
}  // namespace detail

// `state` holds `batch` rows started from the encoder memory (capacity >= max_new_tokens).
inline std::vector<hypothesis> generate(const step_fn& step, models::t5_decoder_state state, std::size_t vocab, const options& o) {
    const std::size_t batch = state.batch;
    if (o.beam == 0) throw value_error(core::describe("beam width", "generation::generate", ">= 1", 0));
    if (o.max_new_tokens == 0) throw value_error(core::describe("max_new_tokens", "generation::generate", ">= 1", 0));
    if (!(o.length_penalty >= 0 && o.length_penalty <= 100))  // NaN fails too: scores go into a sort
        throw value_error(core::describe("length penalty", "generation::generate", "a finite number in [0, 100]", o.length_penalty));
    if (o.eos_id < 0 || static_cast<std::size_t>(o.eos_id) >= vocab)
        throw value_error(core::describe("eos id", "generation::generate", "< vocab " + std::to_string(vocab), o.eos_id));
    const std::size_t k = o.beam;
    const double neg_inf = -std::numeric_limits<double>::infinity();

    if (k == 1) {  // greedy
        std::vector<hypothesis> out(batch);
        std::vector<std::int32_t> ids(batch, o.start_id);
        std::vector<float> logits(core::checked_mul("logits (batch x vocab)", batch, vocab));
        for (std::size_t t = 0; t < o.max_new_tokens; ++t) {
            step(ids.data(), state, logits.data());
            detail::require_finite_logits(logits, vocab, t);
            bool all_done = true;
            for (std::size_t b = 0; b < batch; ++b) {
                float* row = logits.data() + b * vocab;
                if (out[b].finished) {
                    ids[b] = o.eos_id;
                    continue;
                }
                detail::log_softmax(row, vocab);
                const auto best = static_cast<std::int32_t>(std::max_element(row, row + vocab) - row);
                out[b].tokens.push_back(best);
                out[b].log_prob += row[best];
                out[b].finished = best == o.eos_id;
                ids[b] = best;
                all_done = all_done && out[b].finished;
            }
            if (all_done) break;
        }
        for (auto& h : out) h.score = detail::penalised(h.log_prob, h.tokens.size(), o.length_penalty);
        return out;
    }

    // Beam search. Rows b*k .. b*k+k-1 of the state belong to prompt b.
    std::vector<std::size_t> expand(core::checked_mul("beams (batch x beam)", batch, k));
    for (std::size_t i = 0; i < expand.size(); ++i) expand[i] = i / k;
    state = state.gather(expand);
    std::vector<std::vector<std::int32_t>> live(batch * k);
    std::vector<double> live_lp(batch * k, neg_inf);
    for (std::size_t b = 0; b < batch; ++b) live_lp[b * k] = 0;  // one live beam at the start: no duplicates
    std::vector<std::vector<hypothesis>> done(batch);
    std::vector<bool> closed(batch, false);
    std::vector<std::int32_t> ids(batch * k, o.start_id);
    std::vector<float> logits(core::checked_mul("logits (batch x beam x vocab)", batch, k, vocab));
    struct cand { double lp; std::size_t row; std::int32_t tok; };
    std::vector<cand> cands;
    for (std::size_t t = 0; t < o.max_new_tokens; ++t) {
        step(ids.data(), state, logits.data());
        detail::require_finite_logits(logits, vocab, t);
        std::vector<std::size_t> src(batch * k);
        std::vector<std::vector<std::int32_t>> next(batch * k);
        std::vector<double> next_lp(batch * k, neg_inf);
        for (std::size_t b = 0; b < batch; ++b) {
            if (closed[b]) {  // keep rows in place, feed EOS
                for (std::size_t j = 0; j < k; ++j) {
                    src[b * k + j] = b * k + j;
                    ids[b * k + j] = o.eos_id;
                }
                continue;
            }
            cands.clear();
            for (std::size_t j = 0; j < k; ++j) {
                const std::size_t row = b * k + j;
                if (live_lp[row] == neg_inf) continue;
                float* l = logits.data() + row * vocab;
                detail::log_softmax(l, vocab);
                for (std::size_t v = 0; v < vocab; ++v) cands.push_back({live_lp[row] + l[v], row, static_cast<std::int32_t>(v)});
            }
            const std::size_t keep = std::min(cands.size(), 2 * k);
            std::partial_sort(cands.begin(), cands.begin() + static_cast<std::ptrdiff_t>(keep), cands.end(),
                              [](const cand& a, const cand& c) { return a.lp > c.lp || (a.lp == c.lp && (a.row < c.row || (a.row == c.row && a.tok < c.tok))); });
            std::size_t filled = 0;
            for (std::size_t i = 0; i < keep && filled < k; ++i) {
                const cand& c = cands[i];
                std::vector<std::int32_t> toks = live[c.row];
                toks.push_back(c.tok);
                if (c.tok == o.eos_id) {
                    done[b].push_back({toks, c.lp, detail::penalised(c.lp, toks.size(), o.length_penalty), true});
                    continue;
                }
                const std::size_t row = b * k + filled++;
                src[row] = c.row;
                next[row] = std::move(toks);
                next_lp[row] = c.lp;
                ids[row] = c.tok;
            }
            for (std::size_t j = filled; j < k; ++j) {  // fewer live candidates than beams
                src[b * k + j] = b * k;
                ids[b * k + j] = o.eos_id;
            }
            // Closed when k hypotheses are finished and no live one can still beat the worst of them.
            if (done[b].size() >= k) {
                std::sort(done[b].begin(), done[b].end(), [](const hypothesis& a, const hypothesis& c) { return a.score > c.score; });
                done[b].resize(k);
                const double best_live = filled ? detail::penalised(next_lp[b * k], t + 1, o.length_penalty) : neg_inf;
                if (best_live <= done[b].back().score) closed[b] = true;
            }
            if (filled == 0) closed[b] = true;
        }
        live = std::move(next);
        live_lp = std::move(next_lp);
        if (std::all_of(closed.begin(), closed.end(), [](bool c) { return c; })) break;
        if (t + 1 < o.max_new_tokens) state = state.gather(src);
    }
    std::vector<hypothesis> out(batch);
    for (std::size_t b = 0; b < batch; ++b) {
        auto pool = done[b];
        if (!closed[b])
            for (std::size_t j = 0; j < k; ++j)
                if (live_lp[b * k + j] != neg_inf)
                    pool.push_back({live[b * k + j], live_lp[b * k + j], detail::penalised(live_lp[b * k + j], live[b * k + j].size(), o.length_penalty), false});
        if (pool.empty()) continue;
        out[b] = *std::max_element(pool.begin(), pool.end(), [](const hypothesis& a, const hypothesis& c) { return a.score < c.score; });
    }
    return out;
}

}  // namespace pali3::generation
