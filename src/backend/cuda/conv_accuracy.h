// How far an FFT or Winograd engine's result may lie from a direct engine's (conv_engine.h). Those
// engines compute a convolution through transforms of its tiles, with more rounding than a direct
// float32 sum; kiln takes one only while, on the first call's operands, its result stays within the
// bound its GPU-CPU parity tests hold every float32 convolution to, per product term summed.
// Shape letters: N batch, H/W input, C channels, KH/KW kernel, F filters, OH/OW output.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <vector>

#include "backend/cuda/conv_engine.h"

namespace kiln::backend {

/// The direction's output among x, w and y: y forward, x for the data gradient, w for the filter's.
const void* conv_output(ConvDirection direction, const void* x, const void* w, const void* y);

/// The element count of that output.
int64_t conv_output_count(ConvDirection direction, const ConvEngineShape& shape);

/// The largest difference from a direct engine's output that an FFT or Winograd engine's may show
/// on these operands: kTransformSlackPerTerm (conv_accuracy.cpp) times the number of products an
/// output sums, times the largest magnitudes of the direction's two inputs. Reads both to the host.
double transform_allowance(ConvDirection direction, const ConvEngineShape& shape, const void* x, const void* w,
                           const void* y, cudaStream_t stream);

/// `count` floats at `device` copied to the host (waits for `stream`).
std::vector<float> to_host(const void* device, int64_t count, cudaStream_t stream);

/// max |got - want|; infinity when the sizes differ or a difference is NaN.
double max_abs_difference(const std::vector<float>& got, const std::vector<float>& want);

/// max |v|.
double max_abs(const std::vector<float>& v);

}  // namespace kiln::backend
