// The NCHW route of a graph-API convolution (conv_engine.h): cuDNN's FFT and Winograd engines for
// float32 take NCHW tensors only, so such an engine runs on NCHW copies of kiln's NHWC operands,
// kept in the plan's workspace after the engine's own: the direction's two inputs are transposed
// into their copies before it runs, its output back after.
// Shape letters: N batch, H/W input, C channels, KH/KW kernel, F filters, OH/OW output.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>

#include "backend/cuda/conv_engine.h"

namespace kiln::backend {

/// Byte offsets of the NCHW copies of x, w (KCRS) and y in a workspace whose first
/// `engine_bytes` are the engine's; `end` is the whole workspace's size.
struct NchwCopies {
  std::size_t x = 0, w = 0, y = 0, end = 0;
};

/// Where the copies lie for `shape` (float32), each at a 256-byte boundary.
NchwCopies nchw_copies(const ConvEngineShape& shape, std::size_t engine_bytes);

/// Transposes the direction's two inputs among x (NHWC), w (KRSC) and y (NHWC) into their copies.
void to_nchw(ConvDirection direction, const ConvEngineShape& shape, const NchwCopies& copies, const void* x,
             const void* w, const void* y, void* workspace, cudaStream_t stream);

/// Transposes the direction's output (y, x or w) from its copy back into kiln's layout.
void from_nchw(ConvDirection direction, const ConvEngineShape& shape, const NchwCopies& copies, const void* workspace,
               void* out, cudaStream_t stream);

}  // namespace kiln::backend
