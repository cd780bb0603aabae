// PaLI task prompts and the parsing of their outputs.
//   caption:  "caption en"                -> text
//   vqa:      "answer en {question}"      -> text
//   detect:   "detect {thing} ; {thing}"  -> "<loc y1><loc x1><loc y2><loc x2> label ; ..."
//   segment:  "segment {thing}"           -> "<loc..>x4 <seg..>x16 label"
// Coordinates are bins 0..1023 over the image side (value / 1023 * size). Model output that does not
// have this shape parses to "no box" / "no mask" with a reason, never an exception or a crash.
#pragma once

#include <algorithm>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "pali3/text/tokenizer.hpp"
#include "pali3/vision/preprocess.hpp"
#include "pali3/vision/vqvae.hpp"

namespace pali3::generation {

inline std::string caption_prompt(std::string_view lang = "en") { return "caption " + std::string(lang); }
inline std::string vqa_prompt(std::string_view question, std::string_view lang = "en") {
    return "answer " + std::string(lang) + " " + std::string(question);
}
inline std::string detect_prompt(std::string_view things) { return "detect " + std::string(things); }
inline std::string segment_prompt(std::string_view thing) { return "segment " + std::string(thing); }

struct box {
    float y1 = 0, x1 = 0, y2 = 0, x2 = 0;  // pixels in the original image
};

struct detection {
    std::optional<box> where;             // nullopt: no box (see `problem`)
    std::vector<int> seg_codes;           // 16 codes when the model produced a mask
    std::string label;
    std::string problem;                  // why there is no box / no mask, empty when fine
};

// Scans generated ids for objects the way big_vision's output regex does: text before the first
// <loc> is skipped; an object is 4 consecutive <loc>, then optionally 16 <seg>, then a label up to
// the next <loc>/<seg> or ";". A run of more than 4 <loc> yields one object per 4; a shorter run,
// inverted coordinates or a seg run other than 16 give an object with `problem` set (no box / no
// mask). Ids outside the tokenizer are skipped.
inline std::vector<detection> parse_objects(std::span<const std::int32_t> ids, const text::tokenizer& tok,
                                            std::size_t image_height, std::size_t image_width) {
    struct item { int loc = -1, seg = -1; bool sep = false; std::int32_t id = 0; };
    std::vector<item> items;
    for (const auto id : ids) {
        if (id == tok.eos_id()) break;
        if (id == tok.pad_id() || id < 0 || static_cast<std::size_t>(id) >= tok.vocab_size()) continue;
        item it;
        it.id = id;
        if (const auto l = tok.loc_index(id)) it.loc = *l;
        else if (const auto s = tok.seg_index(id)) it.seg = *s;
        else {
            const std::int32_t one[1] = {id};
            it.sep = tok.decode(one).find(';') != std::string::npos;
        }
        items.push_back(it);
    }
    const float sy = static_cast<float>(image_height) / 1023.f, sx = static_cast<float>(image_width) / 1023.f;
    std::vector<detection> out;
    std::size_t i = 0;
    while (i < items.size()) {
        if (items[i].loc < 0) { ++i; continue; }  // text before a box
        std::vector<int> locs;
        while (i < items.size() && items[i].loc >= 0 && locs.size() < 4) locs.push_back(items[i++].loc);
        detection d;
        if (locs.size() < 4) {
            d.problem = "no box: expected 4 <loc> tokens, found " + std::to_string(locs.size());
        } else {
            box b{locs[0] * sy, locs[1] * sx, locs[2] * sy, locs[3] * sx};
            if (b.y2 <= b.y1 || b.x2 <= b.x1)
                d.problem = "no box: empty or inverted coordinates (" + std::to_string(locs[0]) + ", " + std::to_string(locs[1]) + ", " +
                            std::to_string(locs[2]) + ", " + std::to_string(locs[3]) + ")";
            else
                d.where = b;
        }
        while (i < items.size() && items[i].seg >= 0) d.seg_codes.push_back(items[i++].seg);
        if (!d.seg_codes.empty() && d.seg_codes.size() != 16) {
            if (d.problem.empty()) d.problem = "no mask: expected 16 <seg> tokens, found " + std::to_string(d.seg_codes.size());
            d.seg_codes.clear();
        }
        std::vector<std::int32_t> label;
        while (i < items.size() && items[i].loc < 0 && items[i].seg < 0 && !items[i].sep) label.push_back(items[i++].id);
        if (i < items.size() && items[i].sep) ++i;
        d.label = tok.decode(label);
        while (!d.label.empty() && d.label.front() == ' ') d.label.erase(d.label.begin());
        while (!d.label.empty() && d.label.back() == ' ') d.label.pop_back();
        out.push_back(std::move(d));
    }
    return out;
}

// A binary mask (height x width, 0/1) for one detection: the VQ-VAE's 64x64 output resized to the
// box and thresholded at 0. Empty when the detection has no box or no codes.
inline std::vector<std::uint8_t> object_mask(const detection& d, const vision::vqvae_decoder& vae, std::size_t height,
                                             std::size_t width) {
    if (!d.where || d.seg_codes.size() != 16) return {};
    const auto logits = vae.decode(d.seg_codes);
    const box& b = *d.where;
    const auto y0 = static_cast<std::size_t>(std::clamp(std::lround(b.y1), 0L, static_cast<long>(height)));
    const auto x0 = static_cast<std::size_t>(std::clamp(std::lround(b.x1), 0L, static_cast<long>(width)));
    const auto y1 = static_cast<std::size_t>(std::clamp(std::lround(b.y2), 0L, static_cast<long>(height)));
    const auto x1 = static_cast<std::size_t>(std::clamp(std::lround(b.x2), 0L, static_cast<long>(width)));
    std::vector<std::uint8_t> mask(height * width, 0);
    if (y1 <= y0 || x1 <= x0) return mask;
    const auto inside = vision::resize_map(logits.data(), 64, 64, y1 - y0, x1 - x0);
    for (std::size_t y = y0; y < y1; ++y)
        for (std::size_t x = x0; x < x1; ++x) mask[y * width + x] = inside[(y - y0) * (x1 - x0) + (x - x0)] > 0.f;
    return mask;
}

}  // namespace pali3::generation
