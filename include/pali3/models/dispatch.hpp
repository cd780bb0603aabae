// The one place a run-time config becomes a model type. `with_model<S>(config, f)` calls
// f(std::type_identity<Model>{}, part_config) with the C++ type the config describes (PaLI-3,
// a vision tower, T5 v1.1 or v1.0, a SigLIP text tower or pair) in weight storage S; the
// overload taking a dtype name picks S too. Everything that builds a model from a file (the
// pipeline, the command line, conversion) goes through here, so a new kind is added once.
#pragma once

#include <string_view>
#include <type_traits>

#include "pali3/models/config_io.hpp"
#include "pali3/models/pali3.hpp"
#include "pali3/models/siglip.hpp"
#include "pali3/models/t5.hpp"
#include "pali3/models/vit.hpp"

namespace pali3::models {

template <weight_storage S, class F>
decltype(auto) with_model(const any_config& c, F&& f) {
    switch (c.kind) {
        case model_kind::vit: return f(std::type_identity<vision_tower<S>>{}, c.vision);
        case model_kind::t5:
            if (c.gated_ffn) return f(std::type_identity<t5_v11<S>>{}, c.text);
            return f(std::type_identity<t5_v10<S>>{}, c.text);
        case model_kind::pali3:
            // One text kind: every extra type here is compiled into every program that dispatches
            // (a PaLI-3 with T5 v1.0 text is a compile-time composition: docs/concepts.md).
            if (!c.gated_ffn)
                throw config_error(core::describe("PaLI-3 text model", "pali3.config.text.ffn", "a gated feed-forward", "one without a gate"));
            return f(std::type_identity<pali3_model<S>>{}, c.pali);
        case model_kind::siglip_text: return f(std::type_identity<text_tower<S>>{}, c.siglip_text);
        case model_kind::siglip: return f(std::type_identity<siglip_model<S>>{}, siglip_config{c.vision, c.siglip_text});
    }
    throw config_error(core::describe("unknown model kind", "with_model", "vit, t5, pali3, siglip_text or siglip",
                                      static_cast<int>(c.kind)));
}

// The weight storage by name: "f32" or "bf16".
template <class F>
decltype(auto) with_model(const any_config& c, std::string_view dtype, F&& f) {
    if (dtype == "bf16") return with_model<bf16>(c, f);
    if (dtype != "f32") throw value_error(core::describe("weight dtype", "--dtype", "f32 or bf16", dtype));
    return with_model<float>(c, f);
}

// The default model set of the pipeline (pipeline/*.hpp): with_model. A program that runs its own
// composed models through the pipeline passes a callable of the same shape instead.
struct runtime_models {
    template <class F>
    decltype(auto) operator()(const any_config& c, std::string_view dtype, F&& f) const {
        return with_model(c, dtype, f);
    }
};

}  // namespace pali3::models
