// kiln::version(): the CMake project version, handed over as the KILN_VERSION definition.
#include "kiln/version.h"

#ifndef KILN_VERSION
#error "KILN_VERSION must be defined by the build (CMakeLists.txt sets it to the project version)"
#endif

namespace kiln {

std::string version() { return KILN_VERSION; }

}  // namespace kiln
