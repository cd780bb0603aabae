// The one translation unit of the command line that builds models (every PaLI-3 and SigLIP type a
// config can describe, in f32 and bf16): the other commands call these and stay quick to compile.
#include "common.hpp"

namespace pali3::cli {

std::unique_ptr<pipeline::pali3_pipeline> open_pali3(const pipeline::options& o) {
    return std::make_unique<pipeline::pali3_pipeline>(o);
}

std::unique_ptr<pipeline::siglip_pipeline> open_siglip(const pipeline::siglip_options& o) {
    return std::make_unique<pipeline::siglip_pipeline>(o);
}

}  // namespace pali3::cli
