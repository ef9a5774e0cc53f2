// Precise (never the fast-math intrinsic) float and double math for the kernels, so results stay
// within a few ulps of the CPU backend's std:: functions.
#pragma once

namespace kiln::backend::kernels {

__device__ inline float d_exp(float x) { return expf(x); }
__device__ inline double d_exp(double x) { return exp(x); }
__device__ inline float d_log(float x) { return logf(x); }
__device__ inline double d_log(double x) { return log(x); }
__device__ inline float d_tanh(float x) { return tanhf(x); }
__device__ inline double d_tanh(double x) { return tanh(x); }
__device__ inline float d_sqrt(float x) { return sqrtf(x); }
__device__ inline double d_sqrt(double x) { return sqrt(x); }

/// Grid-stride loop over [0, n).
#define KILN_FOR_EACH(i, n)                                                          \
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < (n);          \
       i += int64_t(gridDim.x) * blockDim.x)

}  // namespace kiln::backend::kernels
