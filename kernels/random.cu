// The randomness family, counter-based: uniform numbers and dropout from the Philox stream of
// backend/philox.h, the CPU's code for the bits. One thread per Philox block (four elements). The
// step counter is read from device memory inside the kernel, never passed by value, so a recorded
// step (CUDA graph) draws new numbers on each replay once the counter has advanced on the device.
// float16 and bfloat16 draw float32's numbers: a uniform is float32's rounded toward zero (so it
// stays below 1, as philox::to_uniform rounds down), and dropout decides keep on the same integer
// word, scales in float and rounds once, so its mask is float32's.
// Shape letters: n elements; j the block index (elements 4j .. 4j + 3); first the stream element of
// x[0] (a data-parallel replica's shard starts inside the global batch's draw). first is passed by
// value, so a recorded step keeps the one it was recorded with: a shard's start is the same at
// every step of one batch size (layers/random_stream.h).
#include <type_traits>

#include "backend/cuda/check.h"
#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/kernels.h"
#include "backend/dtype_dispatch.h"
#include "backend/philox.h"
#include "device_math.cuh"

namespace kiln::backend {

namespace {

using kernels::load_value;
using kernels::store_value;

// The uniform number of word w as T, in [0, 1): philox::to_uniform's for float and double; for the
// 16-bit types float's number rounded toward zero (rounding to nearest could give 1).
template <typename T>
__device__ T uniform_of(uint32_t w) {
  if constexpr (std::is_same_v<T, __half>)
    return __float2half_rz(philox::to_uniform<float>(w));
  else if constexpr (std::is_same_v<T, __nv_bfloat16>)
    return __float2bfloat16_rz(philox::to_uniform<float>(w));
  else
    return philox::to_uniform<T>(w);
}

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
      if (i0 + k < n) y[i0 + k] = uniform_of<T>(w.v[k]);
  }
}

// x[i] is element first + i of the stream (a replica's shard of a larger x); one thread per stream
// block from the one holding element first, so a first not a multiple of 4 splits blocks at the ends.
template <typename T>
__global__ void dropout_kernel(const T* x, T* y, int64_t n, uint64_t seed, const int64_t* counter, uint64_t draw,
                               int64_t first, uint64_t threshold, accumulate_t<T> scale) {
  const int64_t step = *counter;
  const int64_t j_first = first / philox::kPerBlock;
  const int64_t blocks = (first + n + philox::kPerBlock - 1) / philox::kPerBlock - j_first;
  KILN_FOR_EACH(b, blocks) {
    const int64_t j = j_first + b;
    const philox::Words w = philox::stream_block(seed, step, draw, static_cast<uint64_t>(j));
    const int64_t i0 = j * philox::kPerBlock - first;  // x's index of the block's word 0
#pragma unroll
    for (int k = 0; k < 4; ++k)
      if (i0 + k >= 0 && i0 + k < n)
        y[i0 + k] = store_value<T>(philox::dropout_of(load_value(x[i0 + k]), w.v[k], threshold, scale));
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
  kernels::with_cuda_compute_type(dtype, "random_uniform_philox", [&](auto tag) {
    using T = decltype(tag);
    philox_uniform_kernel<<<grid_for(blocks), kBlock, 0, stream_>>>(static_cast<T*>(y), n, seed, counter, draw);
  });
  KILN_LAUNCH_CHECK("philox_uniform_kernel");
}

void CudaBackend::dropout(DType dtype, const void* x, void* y, int64_t n, double rate, uint64_t seed,
                          const int64_t* counter, uint64_t draw, int64_t first) {
  DeviceGuard guard(device_);
  if (n <= 0) return;
  const int64_t blocks = (first + n + philox::kPerBlock - 1) / philox::kPerBlock - first / philox::kPerBlock;
  kernels::with_cuda_compute_type(dtype, "dropout", [&](auto tag) {
    using T = decltype(tag);
    dropout_kernel<<<grid_for(blocks), kBlock, 0, stream_>>>(static_cast<const T*>(x), static_cast<T*>(y), n, seed,
                                                             counter, draw, first, philox::keep_threshold(rate),
                                                             philox::keep_scale<accumulate_t<T>>(rate));
  });
  KILN_LAUNCH_CHECK("dropout_kernel");
}

}  // namespace kiln::backend
