// Drawing detect / segment results for a person: masks tinted red, boxes outlined in green, and
// the objects listed.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <vector>

#include <pali3/generation/tasks.hpp>
#include <pali3/io/image.hpp>

#include "common.hpp"

namespace pali3::cli {

inline void draw_overlay(io::image& img, const std::vector<generation::detection>& objs,
                         const std::vector<std::vector<std::uint8_t>>& masks) {
    for (const auto& m : masks)
        if (m.size() == img.width * img.height)
            for (std::size_t p = 0; p < img.width * img.height; ++p)
                if (m[p]) {
                    auto* px = img.rgb.data() + 3 * p;
                    px[0] = static_cast<std::uint8_t>((px[0] + 255) / 2);
                    px[1] = static_cast<std::uint8_t>(px[1] / 2);
                    px[2] = static_cast<std::uint8_t>(px[2] / 2);
                }
    const auto clamp = [](float v, std::size_t n) { return std::min<std::size_t>(n - 1, static_cast<std::size_t>(std::max(0.f, v))); };
    for (const auto& o : objs) {
        if (!o.where || img.width == 0 || img.height == 0) continue;
        const std::size_t x0 = clamp(o.where->x1, img.width), x1 = clamp(o.where->x2, img.width);
        const std::size_t y0 = clamp(o.where->y1, img.height), y1 = clamp(o.where->y2, img.height);
        const auto green = [&](std::size_t y, std::size_t x) {
            auto* px = img.at(y, x);
            px[0] = 0, px[1] = 255, px[2] = 0;
        };
        for (std::size_t x = x0; x <= x1; ++x) green(y0, x), green(y1, x);
        for (std::size_t y = y0; y <= y1; ++y) green(y, x0), green(y, x1);
    }
}

inline void print_objects(const std::vector<generation::detection>& objs, const std::vector<std::vector<std::uint8_t>>& masks,
                          bool segment) {
    if (objs.empty()) std::printf("objects: none (the output has no <loc> tokens)\n");
    for (std::size_t i = 0; i < objs.size(); ++i) {
        const auto& o = objs[i];
        if (o.where)
            std::printf("object \"%s\": box y1=%.1f x1=%.1f y2=%.1f x2=%.1f%s\n", o.label.c_str(), o.where->y1, o.where->x1,
                        o.where->y2, o.where->x2, o.seg_codes.size() == 16 ? ", 16 mask codes" : "");
        else
            std::printf("object \"%s\": %s\n", o.label.c_str(), o.problem.c_str());
        if (i < masks.size() && !masks[i].empty()) {
            std::size_t on = 0;
            for (const auto v : masks[i]) on += v;
            std::printf("mask for \"%s\": %zu pixels\n", o.label.c_str(), on);
        }
    }
    if (segment && std::all_of(masks.begin(), masks.end(), [](const auto& m) { return m.empty(); }))
        std::printf("mask: none (the output has no box with 16 <seg> tokens)\n");
}

// What detect and segment do with their answer: the overlay PNG written to `out`, then one JSON
// object (with "overlay") or the human report.
inline void report_objects(const std::string& command, const pipeline::pali3_pipeline& p, pipeline::answer& ans,
                           const std::string& out, bool json) {
    pipeline::stopwatch sw;
    draw_overlay(ans.image, ans.objects, ans.masks);
    io::write_png(out, ans.image);
    ans.times.add("overlay", sw.ms());
    if (json) {
        auto v = answer_json(command, p, ans);
        v.set("overlay", json::string(out));
        return print_json(v);
    }
    print_answer(p, ans);
    print_objects(ans.objects, ans.masks, command == "segment");
    std::printf("overlay: %s\n", out.c_str());
    print_times(p, ans);
}

}  // namespace pali3::cli
