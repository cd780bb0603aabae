// Golden output: the tiny PaLI-3 preset with seeded weights must keep producing the stored
// logits, so a refactor cannot silently change numerics. Regenerate deliberately with
//   PALI3_UPDATE_GOLDEN=1 build/gcc/tests/pali3_tests "[golden]"
// and say why in the commit. Tolerance: 1e-4 relative to the largest logit (SIMD width and
// summation order may move the last bits between machines).
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <vector>

#include <catch2/catch.hpp>

#include "pali3/models/pali3.hpp"
#include "pali3/weights/random_source.hpp"

using namespace pali3;
using namespace pali3::models;

TEST_CASE("tiny PaLI-3 golden logits", "[models][golden]") {
    const weights::random_source src(2026);
    fixed_pali3<presets::pali3_tiny> model{weights::cursor(src)};
    const auto& c = model.config();
    std::vector<float> image(3 * 32 * 32);
    for (std::size_t i = 0; i < image.size(); ++i) image[i] = std::sin(0.37f * static_cast<float>(i)) * 0.9f;
    const std::vector<std::vector<std::int32_t>> prompt{{17, 4, 250, 99, 1}};
    core::workspace ws(model.workspace_floats(1, 5, 3));
    std::vector<float> memory((c.vision.tokens() + 5) * c.text.d_model);
    const auto lens = model.encode(image.data(), prompt, memory.data(), ws);
    auto state = model.start(memory.data(), 1, lens, 3);
    std::vector<float> logits(c.text.vocab), got;
    std::int32_t id = 0;
    for (int s = 0; s < 3; ++s) {
        model.step(&id, state, logits.data(), ws);
        got.insert(got.end(), logits.begin(), logits.begin() + 32);  // 32 logits per step
        id = static_cast<std::int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
        got.push_back(static_cast<float>(id));
    }
    const std::string path = std::string(PALI3_TEST_DATA_DIR) + "/golden_pali3_tiny.txt";
    if (std::getenv("PALI3_UPDATE_GOLDEN")) {
        std::ofstream out(path);
        out.precision(9);
        for (float v : got) out << v << "\n";
        WARN("golden file rewritten: " << path);
        return;
    }
    std::ifstream in(path);
    REQUIRE(in.good());
    std::vector<float> expect;
    for (float v; in >> v;) expect.push_back(v);
    REQUIRE(expect.size() == got.size());
    float scale = 0;
    for (float v : expect) scale = std::max(scale, std::abs(v));
    for (std::size_t i = 0; i < got.size(); ++i) {
        INFO("entry " << i);
        REQUIRE(std::abs(got[i] - expect[i]) <= 1e-4f * scale);
    }
}
