// The explicit pads of a sliding window (Conv, MaxPool, AveragePool) for Keras' "valid" and "same".
// ONNX's auto_pad SAME_UPPER would match TensorFlow too, but explicit pads say exactly what runs and
// are what every runtime implements the same way.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace kiln::onnx_export {

/// ONNX's pads [top, left, bottom, right] for an input of (height, width) `in`, a window of
/// `kernel` with `strides` and `dilations`: none for "valid"; for "same", TensorFlow's total
/// max((out - 1) * stride + (k - 1) * dilation + 1 - in, 0), out = ceil(in / stride), with the odd
/// extra pixel after the input.
inline std::vector<int64_t> window_pads(const std::string& padding, std::array<int64_t, 2> in,
                                        std::array<int64_t, 2> kernel, std::array<int64_t, 2> strides,
                                        std::array<int64_t, 2> dilations = {1, 1}) {
  std::vector<int64_t> pads(4, 0);
  if (padding != "same") return pads;
  for (std::size_t a = 0; a < 2; ++a) {
    const int64_t out = (in[a] + strides[a] - 1) / strides[a];
    const int64_t total = std::max<int64_t>((out - 1) * strides[a] + (kernel[a] - 1) * dilations[a] + 1 - in[a], 0);
    pads[a] = total / 2;
    pads[a + 2] = total - total / 2;
  }
  return pads;
}

}  // namespace kiln::onnx_export
