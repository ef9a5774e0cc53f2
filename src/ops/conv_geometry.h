// Output size and leading padding of one spatial axis of a sliding window, as Keras computes them.
#pragma once

#include <array>
#include <cstdint>
#include <string>

#include "kiln/ops.h"

namespace kiln::ops {

struct WindowAxis {
  int64_t out;         // output extent
  int64_t pad_before;  // zero (or ignored) cells before the input
};

/// Throws when the window does not fit ("valid") or sizes are not positive.
WindowAxis window_axis(const std::string& op, const char* axis, int64_t in, int64_t k, int64_t stride, Padding padding);

/// "(h, w)" for messages about windows, strides and sizes.
std::string pair_str(std::array<int64_t, 2> p);

}  // namespace kiln::ops
