// Models in the tests start on the CPU, so results do not depend on the machine; GPU tests ask for
// the GPU explicitly.
#include "kiln/config.h"

namespace {
const bool cpu_default = [] {
  kiln::set_default_device(kiln::Device::cpu());
  return true;
}();
}  // namespace
