// Helpers for the kernels. Their float and double math functions (exp_of, log_of, ...) are in
// backend/elementwise_math.h, shared with the CPU backend.
#pragma once

namespace kiln::backend::kernels {

/// Grid-stride loop over [0, n).
#define KILN_FOR_EACH(i, n) \
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < (n); i += int64_t(gridDim.x) * blockDim.x)

}  // namespace kiln::backend::kernels
