// The world of shapes follows its spec (include/pali3/data/shapes.hpp): sizes, colours, boxes inside
// the image and apart, left-to-right naming, the texts of every task, and determinism by seed.
#include <catch2/catch.hpp>

#include <random>
#include <set>

#include "pali3/data/shapes.hpp"

namespace shapes = pali3::data;  // not `using namespace pali3`: in a unity build, xtl/xvariant.hpp parsed after it fails to
                                 // compile, its unqualified data(...) finding the namespace pali3::data

TEST_CASE("scenes follow the spec", "[data][shapes]") {
    std::set<std::size_t> counts;
    std::set<int> shapes, colours;
    for (std::uint64_t i = 0; i < 300; ++i) {
        const auto sc = shapes::make_scene(5, i, {i % 2 == 0, 4.f, 3});
        REQUIRE(sc.rgb.size() == 64 * 64 * 3);
        CHECK(sc.background >= 190);
        CHECK(sc.background <= 240);
        REQUIRE(!sc.objects.empty());
        REQUIRE(sc.objects.size() <= 3);
        counts.insert(sc.objects.size());
        for (std::size_t k = 0; k < sc.objects.size(); ++k) {
            const auto& o = sc.objects[k];
            shapes.insert(o.shape);
            colours.insert(o.colour);
            const float s = o.x2 - o.x1;
            CHECK(s == o.y2 - o.y1);
            CHECK(s >= 14.f);
            CHECK(s <= 26.f);
            CHECK(o.x1 >= 0.f);
            CHECK(o.y1 >= 0.f);
            CHECK(o.x2 <= 64.f);
            CHECK(o.y2 <= 64.f);
            for (int c = 0; c < 3; ++c) CHECK(std::abs(o.rgb[c] - shapes::colour_rgb[o.colour][c]) <= 12);
            if (k > 0) CHECK(sc.objects[k - 1].centre_x() <= o.centre_x());
            for (std::size_t j = 0; j < k; ++j) CHECK(shapes::detail::apart(sc.objects[j], o, 2.f));
            // the box centre pixel has (about) the object's colour: shapes are drawn where their boxes say
            const std::size_t cy = static_cast<std::size_t>(o.y1 + 0.75f * s), cx = static_cast<std::size_t>(o.centre_x());
            const auto* p = sc.rgb.data() + (cy * 64 + cx) * 3;
            for (int c = 0; c < 3; ++c) CHECK(std::abs(int(p[c]) - o.rgb[c]) <= 16);
        }
    }
    CHECK(counts.size() == 3);
    CHECK(shapes.size() == 3);
    CHECK(colours.size() == 4);
    const auto a = shapes::make_scene(9, 42), b = shapes::make_scene(9, 42), c = shapes::make_scene(9, 43);
    CHECK(a.rgb == b.rgb);
    CHECK(a.rgb != c.rgb);
    CHECK_THROWS_WITH(shapes::make_scene(1, 1, {true, 4.f, 4}), Catch::Contains("objects per scene"));
}

TEST_CASE("captions, detection targets and questions", "[data][shapes]") {
    shapes::scene sc;
    auto obj = [](int shape, int colour, float x, float y, float s) {
        shapes::shape_object o;
        o.shape = shape;
        o.colour = colour;
        o.x1 = x;
        o.y1 = y;
        o.x2 = x + s;
        o.y2 = y + s;
        return o;
    };
    sc.objects = {obj(0, 0, 2, 10, 16), obj(1, 2, 24, 30, 14), obj(2, 1, 44, 4, 18)};
    CHECK(shapes::caption_of(sc) == "a red circle, a blue square and a green triangle");
    sc.objects.pop_back();
    CHECK(shapes::caption_of(sc) == "a red circle and a blue square");
    CHECK(shapes::loc_bin(0.f) == 0);
    CHECK(shapes::loc_bin(64.f) == 1023);
    CHECK(shapes::loc_bin(32.f) == 512);
    CHECK(shapes::detection_of(sc, {"square"}) == "<loc0480><loc0384><loc0703><loc0607> square");
    CHECK(shapes::detection_of(sc, {"circle", "square"}) ==
          "<loc0160><loc0032><loc0416><loc0288> circle ; <loc0480><loc0384><loc0703><loc0607> square");
    CHECK(shapes::detection_of(sc, {"red circle"}) == "<loc0160><loc0032><loc0416><loc0288> red circle");
    CHECK(shapes::detection_of(sc, {"triangle"}).empty());
    CHECK(shapes::detection_of(sc, {"green circle"}).empty());
    const auto qs = shapes::questions_of(sc);
    REQUIRE(qs.size() == 5);
    CHECK(qs[0].question == "how many shapes are there?");
    CHECK(qs[0].answer == "2");
    CHECK(qs[1].question == "what color is the circle?");
    CHECK(qs[1].answer == "red");
    CHECK(qs[4].question == "what shape is blue?");
    CHECK(qs[4].answer == "square");
    std::mt19937 gen(1);
    const auto ex = shapes::examples_of(sc, gen);
    CHECK(ex.front().prompt == "caption en");
    bool absent = false;
    for (const auto& e : ex) absent = absent || (e.prompt == "detect triangle" && e.target.empty());
    CHECK(absent);
}

TEST_CASE("object masks: the pixels the renderer colours, areas of the spec's shapes, bad input refused", "[data][shapes]") {
    // Hard edges, no noise: a pixel is drawn in the object's colour exactly where its one sample
    // is inside; the 4 x 4-sample mask may differ only at the edge (a pixel at most half covered).
    std::size_t checked = 0, edge_disagreements = 0, drawn = 0;
    for (std::uint64_t i = 0; i < 40; ++i) {
        const auto sc = shapes::make_scene(11, i, {false, 0.f, 3});
        for (const auto& o : sc.objects) {
            const auto m = shapes::object_mask(o.shape, o.y1, o.x1, o.y2, o.x2);
            REQUIRE(m.size() == 64u * 64u);
            for (std::size_t p = 0; p < m.size(); ++p) {
                const auto* px = sc.rgb.data() + p * 3;
                const bool coloured = px[0] == o.rgb[0] && px[1] == o.rgb[1] && px[2] == o.rgb[2];
                const int y = static_cast<int>(p / 64), x = static_cast<int>(p % 64);
                const bool in_box = y >= o.y1 && y < o.y2 && x >= o.x1 && x < o.x2;
                if (!in_box) {
                    CHECK(m[p] == 0);
                    continue;
                }
                ++checked;
                drawn += coloured;
                if (coloured != (m[p] == 1)) {
                    ++edge_disagreements;
                    const float cov = shapes::detail::coverage(o.shape, o.x1, o.y1, o.x2 - o.x1, x, y, 16);
                    CHECK(cov > 0.1f);
                    CHECK(cov < 0.9f);
                }
            }
        }
    }
    INFO("box pixels " << checked << ", drawn " << drawn << ", edge disagreements " << edge_disagreements);
    CHECK(edge_disagreements * 100 < drawn);  // under 1 % (8 of 23188 here): edge pixels only
    // Areas against the continuous shapes (side 20 at a fractional offset): circle pi r^2, square
    // s^2, triangle s^2 / 2, each within a perimeter's worth of pixels.
    const float s = 20.f, y0 = 10.3f, x0 = 7.6f;
    const double want[3] = {3.14159265 * 100.0, 400.0, 200.0};
    for (int shape = 0; shape < 3; ++shape) {
        const auto m = shapes::object_mask(shape, y0, x0, y0 + s, x0 + s);
        double area = 0;
        for (const auto v : m) area += v;
        INFO("shape " << shape << " area " << area << " want " << want[shape]);
        CHECK(std::abs(area - want[shape]) / want[shape] < 0.05);
    }
    CHECK(shapes::shape_index("triangle") == 2);
    CHECK_THROWS_WITH(shapes::shape_index("hexagon"), Catch::Contains("circle, square or triangle") && Catch::Contains("hexagon"));
    CHECK_THROWS_WITH(shapes::object_mask(3, 0, 0, 10, 10), Catch::Contains("shape index"));
    CHECK_THROWS_WITH(shapes::object_mask(0, 5, 0, 5, 10), Catch::Contains("y2 > y1"));
}
