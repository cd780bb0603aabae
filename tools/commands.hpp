// The pipeline subcommands of `pali3` (everything but inspect), looked up by name.
#pragma once

#include <string>

namespace pali3::cli {

using command_fn = int (*)(int, char**);

inline command_fn find_command(const std::string&) { return nullptr; }

}  // namespace pali3::cli
