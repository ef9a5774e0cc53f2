// Metric counts: a row's label among its top k (TensorFlow's in_top_k), and thresholded binary
// matches. Counts are whole numbers gathered in integers and added to the float total once per
// block (top-k) or once per call (binary), so the totals do not depend on the order of the adds.
// float16 and bfloat16 values are compared in float (exact); a 16-bit total is added to in float
// and rounded once per add.
// Shape letters: R rows, C cols, n elements.
#include "backend/cuda/check.h"
#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/kernels.h"
#include "backend/dtype_dispatch.h"
#include "device_math.cuh"

namespace kiln::backend {

namespace {

using kernels::load_value;
using kernels::store_value;

// ---------------------------------------------------------------------------------------------
// kernels

// One warp per row: each lane counts its columns strictly above the label's value and notes any
// non-finite value; a row counts when all are finite and fewer than k are greater.
template <typename T>
__global__ void in_top_k_sum_kernel(const T* x, const int32_t* labels, T* correct, int64_t R, int64_t C, int64_t k) {
  __shared__ int hits;
  if (threadIdx.x == 0) hits = 0;
  __syncthreads();
  const int64_t r = int64_t(blockIdx.x) * (blockDim.x / 32) + threadIdx.x / 32;
  if (r < R) {
    const int lane = threadIdx.x % 32;
    const T* row = x + r * C;
    const accumulate_t<T> target = load_value(row[labels[r]]);
    int64_t greater = 0;
    bool finite = isfinite(target);
    for (int64_t c = lane; c < C; c += 32) {
      const accumulate_t<T> v = load_value(row[c]);
      finite = finite && isfinite(v);
      greater += v > target;
    }
    for (int offset = 16; offset > 0; offset /= 2) greater += __shfl_down_sync(0xffffffffu, greater, offset);
    finite = __all_sync(0xffffffffu, finite);
    if (lane == 0 && finite && greater < k) atomicAdd(&hits, 1);
  }
  __syncthreads();
  if (threadIdx.x == 0 && hits > 0) kernels::atomic_add_value(correct, static_cast<accumulate_t<T>>(hits));
}

// One block over all n elements (metric batches are small): integer counts per thread, added in
// shared memory, then scaled and added to the total by one thread.
template <typename T>
__global__ void binary_accuracy_sum_kernel(const T* x, const T* z, T* matches, int64_t n, accumulate_t<T> threshold,
                                           double scale) {
  using A = accumulate_t<T>;
  __shared__ unsigned long long hits;
  if (threadIdx.x == 0) hits = 0;
  __syncthreads();
  unsigned long long mine = 0;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x)
    mine += (load_value(x[i]) > threshold ? A(1) : A(0)) == load_value(z[i]);
  if (mine > 0) atomicAdd(&hits, mine);
  __syncthreads();
  if (threadIdx.x == 0)
    *matches = store_value<T>(load_value(*matches) + static_cast<A>(static_cast<double>(hits) * scale));
}

constexpr int kRowsPerBlock = kBlock / 32;

}  // namespace

// ---------------------------------------------------------------------------------------------
// the backend's entries

void CudaBackend::in_top_k_sum(DType dtype, const void* x, const int32_t* labels, void* correct, int64_t rows,
                               int64_t cols, int64_t k) {
  DeviceGuard guard(device_);
  if (rows <= 0) return;
  const auto blocks = static_cast<unsigned>((rows + kRowsPerBlock - 1) / kRowsPerBlock);
  kernels::with_cuda_compute_type(dtype, "in_top_k", [&](auto tag) {
    using T = decltype(tag);
    in_top_k_sum_kernel<<<blocks, kBlock, 0, stream_>>>(static_cast<const T*>(x), labels, static_cast<T*>(correct),
                                                        rows, cols, k);
  });
  KILN_LAUNCH_CHECK("in_top_k_sum_kernel");
}

void CudaBackend::binary_accuracy_sum(DType dtype, const void* x, const void* targets, void* matches, int64_t n,
                                      double threshold, double scale) {
  DeviceGuard guard(device_);
  if (n <= 0) return;
  kernels::with_cuda_compute_type(dtype, "binary_accuracy", [&](auto tag) {
    using T = decltype(tag);
    binary_accuracy_sum_kernel<<<1, 1024, 0, stream_>>>(static_cast<const T*>(x), static_cast<const T*>(targets),
                                                        static_cast<T*>(matches), n,
                                                        static_cast<accumulate_t<T>>(threshold), scale);
  });
  KILN_LAUNCH_CHECK("binary_accuracy_sum_kernel");
}

}  // namespace kiln::backend
