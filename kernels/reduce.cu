// The reduction family over x [rows, cols]: column sums (sum_rows), row sums (sum_cols), row argmax
// and the accuracy count. No atomics on values, so every sum is deterministic run to run; the
// accuracy count adds whole numbers, which float atomics add exactly. float16 and bfloat16 are read
// into float and summed there (accumulate_t, partial sums included); each result is rounded once.
// Shape letters: R rows, C cols.
#include <algorithm>
#include <climits>

#include "backend/cuda/check.h"
#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/kernels.h"
#include "backend/dtype_dispatch.h"
#include "backend/elementwise_math.h"
#include "device_math.cuh"

namespace kiln::backend {

namespace {

using kernels::load_value;
using kernels::store_value;

// ---------------------------------------------------------------------------------------------
// kernels

// Block (32, 32) over a 32-column tile (blockIdx.x) and one slice of rows_per_slice rows
// (blockIdx.y): threadIdx.x picks a column, threadIdx.y strides the slice's rows; the 32 partial
// sums of each column are then added in a fixed tree order and written to y[blockIdx.y, c].
// Why slices: a column sum of a tall, narrow matrix (the conv bias gradient: N*OH*OW rows, F = 32
// columns) has one column tile, so without them one SM would read the whole matrix. The launcher
// then adds the slices' sums with a second launch of this kernel over [slices, C] (one slice), in
// slice order: no atomics, so every sum is the same run to run. The slices' sums are kept in the
// compute type A (TOut = A for the first launch), so a 16-bit sum is rounded once, at the end.
template <typename TIn, typename TOut>
__global__ void sum_rows_kernel(const TIn* x, TOut* y, int64_t R, int64_t C, int64_t rows_per_slice, bool accumulate) {
  using A = accumulate_t<TIn>;
  __shared__ A partial[32][33];
  const int64_t c = int64_t(blockIdx.x) * 32 + threadIdx.x;
  const int64_t r0 = int64_t(blockIdx.y) * rows_per_slice;
  const int64_t r1 = min(R, r0 + rows_per_slice);
  A acc = A(0);
  if (c < C) {
#pragma unroll 4
    for (int64_t r = r0 + threadIdx.y; r < r1; r += 32) acc += load_value(x[r * C + c]);
  }
  partial[threadIdx.y][threadIdx.x] = acc;
  __syncthreads();
  for (int stride = 16; stride > 0; stride /= 2) {
    if (threadIdx.y < stride) partial[threadIdx.y][threadIdx.x] += partial[threadIdx.y + stride][threadIdx.x];
    __syncthreads();
  }
  if (threadIdx.y == 0 && c < C) {
    TOut* out = y + int64_t(blockIdx.y) * C + c;
    *out = store_value<TOut>(accumulate ? load_value(*out) + partial[0][threadIdx.x] : partial[0][threadIdx.x]);
  }
}

template <typename T>
__device__ T warp_sum(T v) {
  for (int offset = 16; offset > 0; offset /= 2) v += __shfl_down_sync(0xffffffffu, v, offset);
  return v;
}

// One warp per row: for the short rows of logits and per-sample losses.
template <typename T>
__global__ void sum_cols_warp_kernel(const T* x, T* y, int64_t R, int64_t C) {
  const int64_t r = int64_t(blockIdx.x) * (blockDim.x / 32) + threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  if (r >= R) return;
  accumulate_t<T> acc = 0;
  for (int64_t c = lane; c < C; c += 32) acc += load_value(x[r * C + c]);
  acc = warp_sum(acc);
  if (lane == 0) y[r] = store_value<T>(acc);
}

// One block of 1024 per row: for long rows (a full-tensor sum is one row).
template <typename T>
__global__ void sum_cols_block_kernel(const T* x, T* y, int64_t C) {
  using A = accumulate_t<T>;
  __shared__ A warps[32];
  const int64_t r = blockIdx.x;
  A acc = A(0);
  for (int64_t c = threadIdx.x; c < C; c += blockDim.x) acc += load_value(x[r * C + c]);
  acc = warp_sum(acc);
  if (threadIdx.x % 32 == 0) warps[threadIdx.x / 32] = acc;
  __syncthreads();
  if (threadIdx.x < 32) {
    acc = threadIdx.x < blockDim.x / 32 ? warps[threadIdx.x] : A(0);
    acc = warp_sum(acc);
    if (threadIdx.x == 0) y[r] = store_value<T>(acc);
  }
}

// The first index of the row's maximum, or of its first NaN (NumPy's argmax, the CPU's rule), found
// by one warp: each lane's strict scan keeps its first of equal maxima (and its first NaN); ties
// between lanes go to the smaller index. Values are compared in the compute type (exact).
template <typename T>
__device__ int64_t warp_argmax(const T* row, int64_t C, int lane) {
  using A = accumulate_t<T>;
  A best = A(0);
  int64_t best_i = LLONG_MAX;
  for (int64_t c = lane; c < C; c += 32) {
    const A v = load_value(row[c]);
    if (best_i == LLONG_MAX || math::greater_or_nan(v, best)) {
      best = v;
      best_i = c;
    }
  }
  for (int offset = 16; offset > 0; offset /= 2) {
    const A other = __shfl_down_sync(0xffffffffu, best, offset);
    const int64_t other_i = __shfl_down_sync(0xffffffffu, best_i, offset);
    const bool take = other_i != LLONG_MAX && (best_i == LLONG_MAX || math::greater_or_nan(other, best) ||
                                               (math::same_max(other, best) && other_i < best_i));
    if (take) {
      best = other;
      best_i = other_i;
    }
  }
  return best_i == LLONG_MAX ? 0 : best_i;
}

template <typename T>
__global__ void argmax_rows_kernel(const T* x, int32_t* y, int64_t R, int64_t C) {
  const int64_t r = int64_t(blockIdx.x) * (blockDim.x / 32) + threadIdx.x / 32;
  if (r >= R) return;
  const int64_t best = warp_argmax(x + r * C, C, threadIdx.x % 32);
  if (threadIdx.x % 32 == 0) y[r] = static_cast<int32_t>(best);
}

template <typename T>
__global__ void accuracy_sum_kernel(const T* x, const int32_t* labels, T* correct, int64_t R, int64_t C) {
  __shared__ int hits;
  if (threadIdx.x == 0) hits = 0;
  __syncthreads();
  const int64_t r = int64_t(blockIdx.x) * (blockDim.x / 32) + threadIdx.x / 32;
  if (r < R) {
    const int64_t best = warp_argmax(x + r * C, C, threadIdx.x % 32);
    if (threadIdx.x % 32 == 0 && best == labels[r]) atomicAdd(&hits, 1);
  }
  __syncthreads();
  if (threadIdx.x == 0 && hits > 0) kernels::atomic_add_value(correct, static_cast<accumulate_t<T>>(hits));
}

// Launch shapes of the warp-per-row kernels.
constexpr int kRowsPerBlock = kBlock / 32;
unsigned row_blocks(int64_t rows) { return static_cast<unsigned>((rows + kRowsPerBlock - 1) / kRowsPerBlock); }

// Slices of at least kSliceRows rows (16 per thread); at most kMaxSlices of them and about
// 4 * kMaxSlices blocks in all: 1024 blocks of 1024 threads for the conv bias gradient at N = 2048,
// a few waves on any GPU. The count depends on the shape alone, so the summation order does too.
constexpr int64_t kSliceRows = 512, kMaxSlices = 1024;

// Row slices sum_rows adds separately (a function of the shape alone); above 1 it needs scratch of
// slices * cols elements.
int64_t sum_rows_slices(int64_t rows, int64_t cols) {
  if (rows <= 0 || cols <= 0) return 1;
  const int64_t tiles = (cols + 31) / 32;
  const int64_t cap = std::max<int64_t>(1, std::min<int64_t>(kMaxSlices, kMaxSlices * 4 / tiles));
  return std::max<int64_t>(1, std::min<int64_t>((rows + kSliceRows - 1) / kSliceRows, cap));
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// the backend's entries

void CudaBackend::sum_rows(DType dtype, const void* x, void* y, int64_t rows, int64_t cols, bool accumulate) {
  DeviceGuard guard(device_);
  const int64_t slices = sum_rows_slices(rows, cols);
  const unsigned tiles = static_cast<unsigned>((cols + 31) / 32);
  const int64_t per_slice = (rows + slices - 1) / slices;
  kernels::with_cuda_compute_type(dtype, "sum_rows", [&](auto tag) {
    using T = decltype(tag);
    using A = accumulate_t<T>;
    // Scratch for the row slices' partial sums, in the compute type; from the caching allocator, so
    // a recording's pool serves it and replays see the same address.
    Scratch partial(allocator_, slices > 1 ? static_cast<std::size_t>(slices * cols) * sizeof(A) : 0);
    if (cols <= 0) return;
    if (slices == 1) {
      sum_rows_kernel<<<tiles, dim3(32, 32), 0, stream_>>>(static_cast<const T*>(x), static_cast<T*>(y), rows, cols,
                                                           std::max<int64_t>(rows, 1), accumulate);
      return;
    }
    sum_rows_kernel<<<dim3(tiles, static_cast<unsigned>(slices)), dim3(32, 32), 0, stream_>>>(
        static_cast<const T*>(x), static_cast<A*>(partial.get()), rows, cols, per_slice, false);
    sum_rows_kernel<<<tiles, dim3(32, 32), 0, stream_>>>(static_cast<const A*>(partial.get()), static_cast<T*>(y),
                                                         slices, cols, slices, accumulate);
  });
  KILN_LAUNCH_CHECK("sum_rows_kernel");
}

void CudaBackend::sum_cols(DType dtype, const void* x, void* y, int64_t rows, int64_t cols) {
  DeviceGuard guard(device_);
  if (rows <= 0) return;
  kernels::with_cuda_compute_type(dtype, "sum_cols", [&](auto tag) {
    using T = decltype(tag);
    if (cols > 4096)
      sum_cols_block_kernel<<<static_cast<unsigned>(rows), 1024, 0, stream_>>>(static_cast<const T*>(x),
                                                                               static_cast<T*>(y), cols);
    else
      sum_cols_warp_kernel<<<row_blocks(rows), kBlock, 0, stream_>>>(static_cast<const T*>(x), static_cast<T*>(y), rows,
                                                                     cols);
  });
  KILN_LAUNCH_CHECK("sum_cols_kernel");
}

void CudaBackend::argmax_rows(DType dtype, const void* x, int32_t* y, int64_t rows, int64_t cols) {
  DeviceGuard guard(device_);
  if (rows <= 0) return;
  kernels::with_cuda_compute_type(dtype, "argmax", [&](auto tag) {
    using T = decltype(tag);
    argmax_rows_kernel<<<row_blocks(rows), kBlock, 0, stream_>>>(static_cast<const T*>(x), y, rows, cols);
  });
  KILN_LAUNCH_CHECK("argmax_rows_kernel");
}

void CudaBackend::accuracy_sum(DType dtype, const void* x, const int32_t* labels, void* correct, int64_t rows,
                               int64_t cols) {
  DeviceGuard guard(device_);
  if (rows <= 0) return;
  kernels::with_cuda_compute_type(dtype, "accuracy", [&](auto tag) {
    using T = decltype(tag);
    accuracy_sum_kernel<<<row_blocks(rows), kBlock, 0, stream_>>>(static_cast<const T*>(x), labels,
                                                                  static_cast<T*>(correct), rows, cols);
  });
  KILN_LAUNCH_CHECK("accuracy_sum_kernel");
}

}  // namespace kiln::backend
