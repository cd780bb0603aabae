// part_source: one part of a model from another source. Names under `prefix` ("img.") come
// from `part` under `part_prefix` ("img.X" is read as "vision.X" from a SigLIP pair, as "X" from
// a lone ViT); every one must be there, with the shape asked for. All other names come from
// `rest` (random weights, another checkpoint). This is how a PaLI-3 starts
// from a contrastively pretrained image encoder, as in the PaLI-3 paper (`pali3 train
// --init-vision`). Both sources must outlive the part_source.
#pragma once

#include <string>

#include "pali3/core/error.hpp"
#include "pali3/weights/source.hpp"

namespace pali3::weights {

template <weight_source Part, weight_source Rest>
class part_source {
public:
    part_source(std::string prefix, const Part& part, std::string part_prefix, std::string part_name, const Rest& rest)
        : prefix_(std::move(prefix)), part_prefix_(std::move(part_prefix)), part_name_(std::move(part_name)), part_(&part),
          rest_(&rest) {}

    bool contains(const std::string& name) const { return in_part(name) ? part_->contains(renamed(name)) : rest_->contains(name); }

    tensor_data get(const std::string& name, const shape_t& shape) const {
        if (!in_part(name)) return rest_->get(name, shape);
        const std::string there = renamed(name);
        if (!part_->contains(there))
            throw format_error(core::describe("pretrained part without this tensor", part_name_,
                                              there + " of shape " + shape_string(shape), "no such tensor"));
        ++taken_;
        return part_->get(there, shape);
    }

    // Tensors handed out from the part so far.
    std::size_t taken() const { return taken_; }

private:
    bool in_part(const std::string& name) const { return name.compare(0, prefix_.size(), prefix_) == 0; }
    std::string renamed(const std::string& name) const { return part_prefix_ + name.substr(prefix_.size()); }

    std::string prefix_, part_prefix_, part_name_;
    const Part* part_;
    const Rest* rest_;
    mutable std::size_t taken_ = 0;
};

}  // namespace pali3::weights
