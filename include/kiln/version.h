/// The library's version.
#pragma once

#include <string>

namespace kiln {

/// The version of the loaded library, "MAJOR.MINOR.PATCH": the version of kiln's CMake project
/// it was built from (find_package(kiln) reports the same one). CHANGELOG.md lists what changed.
std::string version();

}  // namespace kiln
