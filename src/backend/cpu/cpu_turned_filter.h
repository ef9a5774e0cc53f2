// The filter of a stride-1 convolution's data gradient, which is a forward pass over dy: the taps in
// reverse order and each tap's channels and filters swapped. One definition for the CPU's Winograd
// and direct paths.
#pragma once

#include <cstdint>

namespace kiln::backend {

/// out[t][f][c] = w[taps - 1 - t][c][f], w [taps, C, F] as a convolution stores its kernel
/// ([KH, KW, C, F]: reversing the taps turns the window by 180 degrees).
template <typename T>
void turned_filter(const T* w, int64_t taps, int64_t C, int64_t F, T* out) {
  const int64_t pairs = C * F;
  for (int64_t t = 0; t < taps; ++t)
    for (int64_t c = 0; c < C; ++c)
      for (int64_t f = 0; f < F; ++f) out[t * pairs + f * C + c] = w[(taps - 1 - t) * pairs + c * F + f];
}

}  // namespace kiln::backend
