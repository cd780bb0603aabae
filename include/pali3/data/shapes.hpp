// A world of shapes to train and check PaLI-3 and SigLIP models on (docs/shapes.md): 64 x 64
// scenes of 1 to 3 coloured circles, squares and triangles on a grey background, with the texts
// of every task — caption, detection in PaLI's <loc> format, VQA — and the ground truth to score
// a model's answers. Seeded: scene i of seed s is the same everywhere.
//
// The spec (any renderer that follows it must do):
//   background one grey g in [190, 240] (all channels), optional N(0, sigma) noise, sigma <= 4;
//   1..3 objects, shape in {circle, square, triangle}, colour in {red (220,40,40), green
//   (40,170,60), blue (40,80,220), yellow (230,200,40)}, each channel jittered by up to +-12;
//   size s in [14, 26] (bounding-box side): circle of diameter s, axis-aligned square of side s,
//   isosceles triangle with base s at the bottom and apex at the top centre, height s; boxes
//   inside the image and pairwise at least 2 px apart; objects named left to right by the x of
//   their box centre.
#pragma once

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "pali3/core/error.hpp"

namespace pali3::data {

inline constexpr std::size_t scene_side = 64;
inline constexpr std::array<const char*, 3> shape_names = {"circle", "square", "triangle"};
inline constexpr std::array<const char*, 4> colour_names = {"red", "green", "blue", "yellow"};
inline constexpr int colour_rgb[4][3] = {{220, 40, 40}, {40, 170, 60}, {40, 80, 220}, {230, 200, 40}};

struct shape_object {
    int shape = 0, colour = 0;       // indices into shape_names / colour_names
    int rgb[3] = {0, 0, 0};          // the jittered colour drawn
    float y1 = 0, x1 = 0, y2 = 0, x2 = 0;  // bounding box in pixels (y2 = y1 + size)
    std::string name() const { return std::string(colour_names[static_cast<std::size_t>(colour)]) + " " + shape_names[static_cast<std::size_t>(shape)]; }
    float centre_x() const { return 0.5f * (x1 + x2); }
};

struct scene_options {
    bool antialias = true;     // 4 x 4 samples per pixel at the edges
    float max_noise = 4.f;     // sigma drawn in [0, max_noise]
    std::size_t max_objects = 3;
};

struct scene {
    int background = 200;
    std::vector<shape_object> objects;  // left to right
    std::vector<std::uint8_t> rgb;      // (64, 64, 3)
};

namespace detail {
// Coverage of pixel (px, py) by the shape whose box starts at (x0, y0) with side s: the fraction
// of n x n sample points inside.
inline float coverage(int shape, float x0, float y0, float s, int px, int py, int n) {
    int inside = 0;
    for (int j = 0; j < n; ++j)
        for (int i = 0; i < n; ++i) {
            const float x = static_cast<float>(px) + (static_cast<float>(i) + 0.5f) / static_cast<float>(n);
            const float y = static_cast<float>(py) + (static_cast<float>(j) + 0.5f) / static_cast<float>(n);
            bool in = false;
            if (shape == 0) {  // circle
                const float cx = x0 + 0.5f * s, cy = y0 + 0.5f * s, r = 0.5f * s;
                in = (x - cx) * (x - cx) + (y - cy) * (y - cy) <= r * r;
            } else if (shape == 1) {  // square
                in = x >= x0 && x < x0 + s && y >= y0 && y < y0 + s;
            } else {  // triangle: apex (x0 + s/2, y0), base y = y0 + s
                const float t = (y - y0) / s;  // 0 at the apex, 1 at the base
                in = t >= 0.f && t <= 1.f && std::abs(x - (x0 + 0.5f * s)) <= 0.5f * s * t;
            }
            inside += in;
        }
    return static_cast<float>(inside) / static_cast<float>(n * n);
}

inline bool apart(const shape_object& a, const shape_object& b, float gap) {
    return a.x2 + gap <= b.x1 || b.x2 + gap <= a.x1 || a.y2 + gap <= b.y1 || b.y2 + gap <= a.y1;
}
}  // namespace detail

// Scene `index` of `seed`.
inline scene make_scene(std::uint64_t seed, std::uint64_t index, const scene_options& o = {}) {
    if (o.max_objects < 1 || o.max_objects > 3)
        throw value_error(core::describe("objects per scene", "make_scene", "1..3", o.max_objects));
    std::mt19937_64 gen(seed * 0x9E3779B97F4A7C15ull ^ (index + 0x632BE59BD9B4E019ull));
    auto uniform = [&](int lo, int hi) { return static_cast<int>(lo + static_cast<int>(gen() % static_cast<std::uint64_t>(hi - lo + 1))); };
    scene sc;
    sc.background = uniform(190, 240);
    const int count = uniform(1, static_cast<int>(o.max_objects));
    for (int tries = 0; static_cast<int>(sc.objects.size()) < count && tries < 1000; ++tries) {
        shape_object ob;
        ob.shape = uniform(0, 2);
        ob.colour = uniform(0, 3);
        for (int c = 0; c < 3; ++c) ob.rgb[c] = std::clamp(colour_rgb[ob.colour][c] + uniform(-12, 12), 0, 255);
        const int s = uniform(14, 26);
        const int x0 = uniform(0, static_cast<int>(scene_side) - s), y0 = uniform(0, static_cast<int>(scene_side) - s);
        ob.x1 = static_cast<float>(x0);
        ob.y1 = static_cast<float>(y0);
        ob.x2 = static_cast<float>(x0 + s);
        ob.y2 = static_cast<float>(y0 + s);
        bool ok = true;
        for (const auto& other : sc.objects) ok = ok && detail::apart(ob, other, 2.f);
        if (ok) sc.objects.push_back(ob);
    }
    std::stable_sort(sc.objects.begin(), sc.objects.end(),
                     [](const shape_object& a, const shape_object& b) { return a.centre_x() < b.centre_x(); });
    // Render: background, objects (coverage-weighted over their boxes), noise.
    std::vector<float> img(scene_side * scene_side * 3, static_cast<float>(sc.background));
    const int n = o.antialias ? 4 : 1;
    for (const auto& ob : sc.objects) {
        const float s = ob.x2 - ob.x1;
        for (int py = static_cast<int>(ob.y1); py < static_cast<int>(ob.y2); ++py)
            for (int px = static_cast<int>(ob.x1); px < static_cast<int>(ob.x2); ++px) {
                const float a = detail::coverage(ob.shape, ob.x1, ob.y1, s, px, py, n);
                if (a <= 0.f) continue;
                float* p = img.data() + (static_cast<std::size_t>(py) * scene_side + static_cast<std::size_t>(px)) * 3;
                for (int c = 0; c < 3; ++c) p[c] = (1.f - a) * p[c] + a * static_cast<float>(ob.rgb[c]);
            }
    }
    const float sigma = std::uniform_real_distribution<float>(0.f, o.max_noise)(gen);
    std::normal_distribution<float> noise(0.f, sigma > 0.f ? sigma : 1.f);
    sc.rgb.resize(img.size());
    for (std::size_t i = 0; i < img.size(); ++i) {
        const float v = img[i] + (sigma > 0.f ? noise(gen) : 0.f);
        sc.rgb[i] = static_cast<std::uint8_t>(std::clamp(std::lround(v), 0L, 255L));
    }
    return sc;
}

// The ground-truth mask of one object (side x side, 0/1): the pixels whose 4 x 4 samples are at
// least half inside the shape drawn in the object's box, as the spec defines it (any renderer's
// scenes.jsonl gives the box and the shape; boxes may be fractional).
inline std::vector<std::uint8_t> object_mask(int shape, float y1, float x1, float y2, float x2, std::size_t side = scene_side) {
    if (shape < 0 || shape > 2) throw value_error(core::describe("shape index", "object_mask", "0..2", shape));
    if (!(y2 > y1 && x2 > x1)) throw value_error(core::describe("box", "object_mask", "y2 > y1 and x2 > x1", std::to_string(y1) + ", " + std::to_string(x1) + ", " + std::to_string(y2) + ", " + std::to_string(x2)));
    std::vector<std::uint8_t> mask(side * side, 0);
    const float s = 0.5f * ((y2 - y1) + (x2 - x1));
    const int lo_y = std::max(0, static_cast<int>(std::floor(y1))), hi_y = std::min(static_cast<int>(side), static_cast<int>(std::ceil(y2)));
    const int lo_x = std::max(0, static_cast<int>(std::floor(x1))), hi_x = std::min(static_cast<int>(side), static_cast<int>(std::ceil(x2)));
    for (int py = lo_y; py < hi_y; ++py)
        for (int px = lo_x; px < hi_x; ++px)
            mask[static_cast<std::size_t>(py) * side + static_cast<std::size_t>(px)] = detail::coverage(shape, x1, y1, s, px, py, 4) >= 0.5f;
    return mask;
}

inline int shape_index(const std::string& name) {
    for (std::size_t i = 0; i < shape_names.size(); ++i)
        if (name == shape_names[i]) return static_cast<int>(i);
    throw value_error(core::describe("shape name", "shapes world", "circle, square or triangle", name));
}

// ---- the tasks' texts ------------------------------------------------------------------------

// "a red circle", "a red circle and a blue square", "a red circle, a blue square and a green triangle".
inline std::string caption_of(const scene& sc) {
    std::string out;
    for (std::size_t i = 0; i < sc.objects.size(); ++i) {
        if (i > 0) out += i + 1 == sc.objects.size() ? " and " : ", ";
        out += "a " + sc.objects[i].name();
    }
    return out;
}

// PaLI's coordinate bin of a pixel coordinate: 0..1023 over the image side (decoded as bin / 1023 * side).
inline int loc_bin(float v, std::size_t side = scene_side) {
    return static_cast<int>(std::clamp(std::lround(v / static_cast<float>(side) * 1023.f), 0L, 1023L));
}

inline std::string loc_token(int bin) {
    char buf[16];
    std::snprintf(buf, sizeof buf, "<loc%04d>", bin);
    return buf;
}

// Does `thing` ("circle", "red circle", "red", ...) name this object?
inline bool matches(const shape_object& ob, const std::string& thing) {
    return thing == shape_names[static_cast<std::size_t>(ob.shape)] || thing == colour_names[static_cast<std::size_t>(ob.colour)] ||
           thing == ob.name();
}

// The detection target for `things` (each a shape, or a colour and a shape): every matching
// object, left to right, as four <loc> tokens and the thing it matched, joined by " ; ". An
// absent thing gives nothing; an empty string when nothing matches.
inline std::string detection_of(const scene& sc, const std::vector<std::string>& things) {
    std::string out;
    for (const auto& ob : sc.objects)
        for (const auto& t : things)
            if (matches(ob, t)) {
                if (!out.empty()) out += " ; ";
                out += loc_token(loc_bin(ob.y1)) + loc_token(loc_bin(ob.x1)) + loc_token(loc_bin(ob.y2)) +
                       loc_token(loc_bin(ob.x2)) + " " + t;
                break;
            }
    return out;
}

struct qa {
    std::string question, answer;
};

// The questions a scene can answer unambiguously: the count; the colour of a shape present once;
// the shape of a colour present once.
inline std::vector<qa> questions_of(const scene& sc) {
    std::vector<qa> out;
    out.push_back({"how many shapes are there?", std::to_string(sc.objects.size())});
    for (int s = 0; s < 3; ++s) {
        const auto n = std::count_if(sc.objects.begin(), sc.objects.end(), [s](const auto& o) { return o.shape == s; });
        if (n != 1) continue;
        const auto& ob = *std::find_if(sc.objects.begin(), sc.objects.end(), [s](const auto& o) { return o.shape == s; });
        out.push_back({std::string("what color is the ") + shape_names[static_cast<std::size_t>(s)] + "?",
                       colour_names[static_cast<std::size_t>(ob.colour)]});
    }
    for (int c = 0; c < 4; ++c) {
        const auto n = std::count_if(sc.objects.begin(), sc.objects.end(), [c](const auto& o) { return o.colour == c; });
        if (n != 1) continue;
        const auto& ob = *std::find_if(sc.objects.begin(), sc.objects.end(), [c](const auto& o) { return o.colour == c; });
        out.push_back({std::string("what shape is ") + colour_names[static_cast<std::size_t>(c)] + "?",
                       shape_names[static_cast<std::size_t>(ob.shape)]});
    }
    return out;
}

// Training examples of a scene for PaLI-3, as (prompt, target): the caption, detection of things
// that are there (a shape, a colour and shape, two shapes) and of a shape that is not (empty
// target), and every question the scene answers. `gen` picks which things to ask for.
struct prompt_target {
    std::string prompt, target;
};

template <class Gen>
std::vector<prompt_target> examples_of(const scene& sc, Gen& gen) {
    std::vector<prompt_target> out;
    out.push_back({"caption en", caption_of(sc)});
    const auto& pick = sc.objects[gen() % sc.objects.size()];
    const std::string shape = shape_names[static_cast<std::size_t>(pick.shape)];
    out.push_back({"detect " + shape, detection_of(sc, {shape})});
    out.push_back({"detect " + pick.name(), detection_of(sc, {pick.name()})});
    const std::string other = shape_names[(static_cast<std::size_t>(pick.shape) + 1 + gen() % 2) % 3];
    out.push_back({"detect " + shape + " ; " + other, detection_of(sc, {shape, other})});
    for (int s = 0; s < 3; ++s) {
        const bool present = std::any_of(sc.objects.begin(), sc.objects.end(), [s](const auto& o) { return o.shape == s; });
        if (!present) {
            out.push_back({std::string("detect ") + shape_names[static_cast<std::size_t>(s)], ""});
            break;
        }
    }
    for (const auto& q : questions_of(sc)) out.push_back({"answer en " + q.question, q.answer});
    return out;
}

}  // namespace pali3::data
