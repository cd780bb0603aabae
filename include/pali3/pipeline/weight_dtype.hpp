// --dtype, the weights' form in memory: "f32" or "bf16" storage, or "int8": bf16 storage whose
// linear layers swap their matrices for int8 as they are loaded (layers::load_int8: one
// scale per output row, or per --int8-group values along the input). Embedding tables, the patch
// embedding, norms, biases and position tables keep bf16 / f32. The int8 form is for inference:
// training refuses it.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "pali3/core/error.hpp"
#include "pali3/kernels/int8_matrix.hpp"
#include "pali3/layers/module.hpp"
#include "pali3/pipeline/config_source.hpp"

namespace pali3::pipeline {

inline constexpr const char* dtype_names = "f32, bf16 or int8";

// A bad --dtype or --int8-group, named before anything is loaded.
inline void check_dtype(std::string_view dtype, std::size_t int8_group) {
    if (dtype != "f32" && dtype != "bf16" && dtype != "int8")
        throw value_error(core::describe("weight dtype", "--dtype", dtype_names, dtype));
    kernels::check_int8_group(int8_group, "--int8-group");
}

// The storage the model is built in (models::with_model's dtype).
inline std::string_view storage_of(std::string_view dtype) { return dtype == "int8" ? std::string_view("bf16") : dtype; }

// How the weights of `dtype` are held, for the memory estimate: 4 or 2 bytes per weight; int8:
// the linear layers' matrices at 1 byte (+ scales), the kept tensors in bf16.
inline void set_weight_request(models::run_request& req, std::string_view dtype, std::size_t int8_group) {
    req.weight_bytes = dtype == "f32" ? 4 : 2;
    req.int8 = dtype == "int8";
    req.int8_group = int8_group;
}

// Loads `model` from `cur` in the form `dtype` names (the model is built in storage_of(dtype)):
// "int8" quantises each linear layer as soon as it is loaded, so the bf16 matrices never all sit
// in memory. Adds the time to `t` under `label` (with the int8 layers and bytes).
template <class M, weights::weight_source S>
void load_weights(M& model, const weights::cursor<S>& cur, std::string_view dtype, std::size_t int8_group, timings& t,
                  std::string label) {
    stopwatch sw;
    if (dtype != "int8") {
        layers::load(model, cur);
        t.add(label, sw.ms());
        return;
    }
    const auto s = layers::load_int8(model, cur, int8_group);
    t.add(label + ", int8 (" + std::to_string(s.layers) + " layers, " + human_bytes(static_cast<double>(s.bytes)) +
              (int8_group ? ", per " + std::to_string(int8_group) : std::string()) + ")",
          sw.ms());
}

}  // namespace pali3::pipeline
