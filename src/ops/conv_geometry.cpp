// Text of window geometry for messages.
#include "ops/conv_geometry.h"

namespace kiln::ops {

// Appended piece by piece: "(" + std::to_string(...) trips GCC 12's false -Wrestrict (GCC bug 105651).
std::string pair_str(std::array<int64_t, 2> p) {
  std::string s = "(";
  s.append(std::to_string(p[0])).append(", ").append(std::to_string(p[1])).append(")");
  return s;
}

}  // namespace kiln::ops
