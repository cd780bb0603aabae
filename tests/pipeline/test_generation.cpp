// Greedy and beam search on a tiny T5: beam search with enough beams finds the exact best
// sequence (checked by enumerating every sequence), scores equal teacher-forced log-probabilities,
// and beam 1 equals greedy.
#include <cmath>
#include <functional>
#include <limits>
#include <vector>

#include <catch2/catch.hpp>

#include "pali3/generation/generate.hpp"
#include "pali3/weights/random_source.hpp"

using namespace pali3;
using Catch::Contains;

namespace {

struct tiny {
    models::t5_config c{7, 16, 24, 2, 8, 1, 2};
    weights::random_source src{31};
    models::t5_v11<float> model{c, weights::cursor(src)};
    std::vector<std::int32_t> enc{3, 5, 6, 2};
    std::vector<std::size_t> lens{4};
    std::vector<float> memory = std::vector<float>(4 * 16);
    core::workspace ws{model.workspace_floats(16, 4, 8)};

    tiny() {
        // Larger logits so the distributions are peaked and sequences differ in probability.
        model.embed(enc.data(), 4, memory.data());
        model.encode(memory.data(), 1, 4, lens, ws);
    }
    models::t5_decoder_state start(std::size_t steps) { return model.start(memory.data(), 1, 4, lens, steps); }
    generation::step_fn stepper() {
        return [this](const std::int32_t* ids, models::t5_decoder_state& s, float* logits) { model.step(ids, 1, s, logits, ws); };
    }
    // log P(tokens) by teacher forcing (start token 0 first).
    double log_prob(const std::vector<std::int32_t>& toks) {
        std::vector<std::int32_t> in{0};
        in.insert(in.end(), toks.begin(), toks.end() - 1);
        auto s = start(in.size());
        std::vector<float> logits(in.size() * c.vocab);
        model.step(in.data(), in.size(), s, logits.data(), ws);
        double lp = 0;
        for (std::size_t t = 0; t < toks.size(); ++t) {
            float* row = logits.data() + t * c.vocab;
            double m = row[0], z = 0;
            for (std::size_t v = 0; v < c.vocab; ++v) m = std::max(m, static_cast<double>(row[v]));
            for (std::size_t v = 0; v < c.vocab; ++v) z += std::exp(row[v] - m);
            lp += row[toks[t]] - m - std::log(z);
        }
        return lp;
    }
};

}  // namespace

TEST_CASE("beam search finds the best sequence; greedy and beam 1 agree", "[generation]") {
    tiny t;
    const std::size_t max_len = 3;
    // Every sequence of up to 3 tokens that ends at EOS (id 1) or at the length limit.
    double best = -1e300;
    std::vector<std::int32_t> best_seq;
    std::function<void(std::vector<std::int32_t>&)> walk = [&](std::vector<std::int32_t>& seq) {
        if (!seq.empty() && (seq.back() == 1 || seq.size() == max_len)) {
            const double lp = t.log_prob(seq);
            if (lp > best) {
                best = lp;
                best_seq = seq;
            }
            return;
        }
        for (std::int32_t v = 0; v < 7; ++v) {
            seq.push_back(v);
            walk(seq);
            seq.pop_back();
        }
    };
    std::vector<std::int32_t> seq;
    walk(seq);

    generation::options o;
    o.max_new_tokens = max_len;
    o.beam = 49;  // >= 7^(3-1): nothing is ever pruned, so the search is exact
    const auto exact = generation::generate(t.stepper(), t.start(max_len), 7, o);
    CHECK(exact[0].tokens == best_seq);
    CHECK(exact[0].log_prob == Approx(best).margin(1e-4));
    CHECK(exact[0].log_prob == Approx(t.log_prob(exact[0].tokens)).margin(1e-4));

    o.beam = 1;
    const auto greedy = generation::generate(t.stepper(), t.start(8), 7, o);
    CHECK(greedy[0].log_prob == Approx(t.log_prob(greedy[0].tokens)).margin(1e-4));
    CHECK(greedy[0].log_prob <= exact[0].log_prob + 1e-6);
    o.beam = 3;
    const auto beam3 = generation::generate(t.stepper(), t.start(8), 7, o);
    CHECK(beam3[0].log_prob == Approx(t.log_prob(beam3[0].tokens)).margin(1e-4));
    // A length penalty > 0 never prefers a shorter sequence with lower normalised score.
    o.length_penalty = 1.f;
    const auto lp1 = generation::generate(t.stepper(), t.start(8), 7, o);
    CHECK(lp1[0].score == Approx(lp1[0].log_prob / static_cast<double>(lp1[0].tokens.size())));

    o.beam = 0;
    CHECK_THROWS_AS(generation::generate(t.stepper(), t.start(8), 7, o), value_error);
    o.beam = 1;
    o.eos_id = 9;
    CHECK_THROWS_AS(generation::generate(t.stepper(), t.start(8), 7, o), value_error);
    o.eos_id = 0;
    for (const float bad : {std::nanf(""), INFINITY, -1.f}) {  // scores go into a sort comparator
        o.length_penalty = bad;
        CHECK_THROWS_WITH(generation::generate(t.stepper(), t.start(8), 7, o), Contains("length penalty"));
    }
}

TEST_CASE("beam search over a batch equals each prompt alone", "[generation]") {
    tiny t;
    // Batch of two identical prompts through gather: same result as one.
    generation::options o;
    o.max_new_tokens = 5;
    o.beam = 4;
    const auto one = generation::generate(t.stepper(), t.start(5), 7, o);
    const std::vector<std::size_t> dup{0, 0};
    auto two_state = t.start(5).gather(dup);
    const auto two = generation::generate(
        [&](const std::int32_t* ids, models::t5_decoder_state& s, float* logits) { t.model.step(ids, 1, s, logits, t.ws); },
        std::move(two_state), 7, o);
    REQUIRE(two.size() == 2);
    CHECK(two[0].tokens == one[0].tokens);
    CHECK(two[1].tokens == one[0].tokens);
    CHECK(two[1].log_prob == Approx(one[0].log_prob).margin(1e-5));
}

TEST_CASE("non-finite logits stop decoding with the step named, greedy and beam", "[generation][robustness]") {
    tiny t;
    const auto inner = t.stepper();
    for (const std::size_t beam : {std::size_t{1}, std::size_t{2}}) {
        int calls = 0;
        const generation::step_fn poisoned = [&](const std::int32_t* ids, models::t5_decoder_state& s, float* logits) {
            inner(ids, s, logits);
            if (++calls == 2) logits[3] = std::numeric_limits<float>::quiet_NaN();
        };
        generation::options o;
        o.max_new_tokens = 4;
        o.beam = beam;
        o.eos_id = 6;  // not reached before the poisoned step: the tiny model's step 1 must run
        CHECK_THROWS_WITH(generation::generate(poisoned, t.start(8), 7, o),
                          "non-finite logits (at decoder step 1, row 0): expected finite values, found NaN");
    }
}
