// The randomness family, counter-based: uniform numbers and dropout from the Philox stream of
// backend/philox.h, the CPU's code for the bits. One thread per Philox block (four elements). The
// step counter is read from device memory inside the kernel, never passed by value, so a recorded
// step (CUDA graph) draws new numbers on each replay once the counter has advanced on the device.
// Shape letters: n elements; j the block index (elements 4j .. 4j + 3).
#include "backend/cuda/check.h"
#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/kernels.h"
#include "backend/dtype_dispatch.h"
#include "backend/philox.h"
#include "device_math.cuh"

namespace kiln::backend {

namespace {

// ---------------------------------------------------------------------------------------------
// kernels

template <typename T>
__global__ void philox_uniform_kernel(T* y, int64_t n, uint64_t seed, const int64_t* counter, uint64_t draw) {
  const int64_t step = *counter;
  const int64_t blocks = (n + philox::kPerBlock - 1) / philox::kPerBlock;
  KILN_FOR_EACH(j, blocks) {
    const philox::Words w = philox::stream_block(seed, step, draw, static_cast<uint64_t>(j));
    const int64_t i0 = j * philox::kPerBlock;
#pragma unroll
    for (int k = 0; k < 4; ++k)
      if (i0 + k < n) y[i0 + k] = philox::to_uniform<T>(w.v[k]);
  }
}

template <typename T>
__global__ void dropout_kernel(const T* x, T* y, int64_t n, uint64_t seed, const int64_t* counter, uint64_t draw,
                               uint64_t threshold, T scale) {
  const int64_t step = *counter;
  const int64_t blocks = (n + philox::kPerBlock - 1) / philox::kPerBlock;
  KILN_FOR_EACH(j, blocks) {
    const philox::Words w = philox::stream_block(seed, step, draw, static_cast<uint64_t>(j));
    const int64_t i0 = j * philox::kPerBlock;
#pragma unroll
    for (int k = 0; k < 4; ++k)
      if (i0 + k < n) y[i0 + k] = philox::dropout_of(x[i0 + k], w.v[k], threshold, scale);
  }
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// the backend's entries

void CudaBackend::philox_uniform(DType dtype, void* y, int64_t n, uint64_t seed, const int64_t* counter,
                                 uint64_t draw) {
  DeviceGuard guard(device_);
  if (n <= 0) return;
  const int64_t blocks = (n + philox::kPerBlock - 1) / philox::kPerBlock;
  with_float_type(dtype, "random_uniform_philox", [&](auto tag) {
    using T = decltype(tag);
    philox_uniform_kernel<<<grid_for(blocks), kBlock, 0, stream_>>>(static_cast<T*>(y), n, seed, counter, draw);
  });
  KILN_LAUNCH_CHECK("philox_uniform_kernel");
}

void CudaBackend::dropout(DType dtype, const void* x, void* y, int64_t n, double rate, uint64_t seed,
                          const int64_t* counter, uint64_t draw) {
  DeviceGuard guard(device_);
  if (n <= 0) return;
  const int64_t blocks = (n + philox::kPerBlock - 1) / philox::kPerBlock;
  with_float_type(dtype, "dropout", [&](auto tag) {
    using T = decltype(tag);
    dropout_kernel<<<grid_for(blocks), kBlock, 0, stream_>>>(static_cast<const T*>(x), static_cast<T*>(y), n, seed,
                                                             counter, draw, philox::keep_threshold(rate),
                                                             philox::keep_scale<T>(rate));
  });
  KILN_LAUNCH_CHECK("dropout_kernel");
}

}  // namespace kiln::backend
