// The former name of the bf16-product engines (AMX tiles and AVX512-BF16): kept so code written
// against `kernels::amx::...` compiles. New code: kernels/bf16_products.hpp (the engines) and
// kernels/cpu_features.hpp (what the CPU can run).
#pragma once

#include "pali3/kernels/bf16_products.hpp"

namespace pali3::kernels {
namespace amx = bf16_products;
}  // namespace pali3::kernels
