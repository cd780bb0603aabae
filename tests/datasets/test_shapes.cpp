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
