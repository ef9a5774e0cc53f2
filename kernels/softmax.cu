// The softmax family: softmax, log-softmax, their backward, and sparse softmax cross-entropy (loss
// and gradient in one pass), one warp per row: rows are short (classes), and a warp needs no shared
// memory or block barrier. Every row is max-shifted, lse = max + log(sum(exp(x - max))), as on the
// CPU. float16 and bfloat16 are read into float (accumulate_t), computed on there exactly as float32
// is, and each output is rounded once.
// Shape letters: R rows, C cols (classes).
#include <cmath>

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

template <typename T>
__device__ T warp_all_sum(T v) {
  for (int offset = 16; offset > 0; offset /= 2) v += __shfl_xor_sync(0xffffffffu, v, offset);
  return v;
}

template <typename T>
__device__ T warp_all_max(T v) {
  for (int offset = 16; offset > 0; offset /= 2) {
    const T other = __shfl_xor_sync(0xffffffffu, v, offset);
    v = v < other ? other : v;
  }
  return v;
}

// log(sum(exp(row))) computed by the whole warp in the compute type; every lane gets it.
template <typename T>
__device__ accumulate_t<T> warp_log_sum_exp(const T* row, int64_t C, int lane) {
  using A = accumulate_t<T>;
  A mx = -INFINITY;
  for (int64_t c = lane; c < C; c += 32) {
    const A v = load_value(row[c]);
    mx = mx < v ? v : mx;
  }
  mx = warp_all_max(mx);
  A s = A(0);
  for (int64_t c = lane; c < C; c += 32) s += math::exp_of(load_value(row[c]) - mx);
  return mx + math::log_of(warp_all_sum(s));
}

template <typename T>
__global__ void softmax_kernel(const T* x, T* y, int64_t R, int64_t C, bool log) {
  const int64_t r = int64_t(blockIdx.x) * (blockDim.x / 32) + threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  if (r >= R) return;
  const T* xr = x + r * C;
  T* yr = y + r * C;
  const accumulate_t<T> lse = warp_log_sum_exp(xr, C, lane);
  for (int64_t c = lane; c < C; c += 32) {
    const accumulate_t<T> v = load_value(xr[c]);
    yr[c] = store_value<T>(log ? v - lse : math::exp_of(v - lse));
  }
}

template <typename T>
__global__ void softmax_backward_kernel(const T* y, const T* dy, T* dx, int64_t R, int64_t C, bool log) {
  const int64_t r = int64_t(blockIdx.x) * (blockDim.x / 32) + threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  if (r >= R) return;
  const T* yr = y + r * C;
  const T* dyr = dy + r * C;
  T* dxr = dx + r * C;
  using A = accumulate_t<T>;
  A s = A(0);
  for (int64_t c = lane; c < C; c += 32) s += log ? load_value(dyr[c]) : load_value(dyr[c]) * load_value(yr[c]);
  s = warp_all_sum(s);
  for (int64_t c = lane; c < C; c += 32) {
    const A yv = load_value(yr[c]), dyv = load_value(dyr[c]);
    dxr[c] = store_value<T>(log ? dyv - math::exp_of(yv) * s : yv * (dyv - s));
  }
}

// loss[r] = lse - x[label]; dlogits = (softmax - onehot) * scale. A bad label gives NaN loss.
template <typename T>
__global__ void sparse_xent_kernel(const T* x, const int32_t* labels, T* loss, T* dlogits, accumulate_t<T> scale,
                                   int64_t R, int64_t C) {
  using A = accumulate_t<T>;
  const int64_t r = int64_t(blockIdx.x) * (blockDim.x / 32) + threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  if (r >= R) return;
  const T* xr = x + r * C;
  const int32_t label = labels[r];
  const bool valid = label >= 0 && label < C;
  const A lse = warp_log_sum_exp(xr, C, lane);
  if (lane == 0) loss[r] = store_value<T>(valid ? lse - load_value(xr[label]) : A(NAN));
  if (dlogits) {
    T* dr = dlogits + r * C;
    for (int64_t c = lane; c < C; c += 32)
      dr[c] = store_value<T>((math::exp_of(load_value(xr[c]) - lse) - (c == label ? A(1) : A(0))) * scale);
  }
}

// Launch shape of the warp-per-row kernels.
constexpr int kRowsPerBlock = kBlock / 32;
unsigned row_blocks(int64_t rows) { return static_cast<unsigned>((rows + kRowsPerBlock - 1) / kRowsPerBlock); }

}  // namespace

// ---------------------------------------------------------------------------------------------
// the backend's entries

void CudaBackend::softmax(DType dtype, const void* x, void* y, int64_t rows, int64_t cols, bool log) {
  DeviceGuard guard(device_);
  if (rows <= 0 || cols <= 0) return;
  kernels::with_cuda_compute_type(dtype, "softmax", [&](auto tag) {
    using T = decltype(tag);
    softmax_kernel<<<row_blocks(rows), kBlock, 0, stream_>>>(static_cast<const T*>(x), static_cast<T*>(y), rows, cols,
                                                             log);
  });
  KILN_LAUNCH_CHECK("softmax_kernel");
}

void CudaBackend::softmax_backward(DType dtype, const void* y, const void* dy, void* dx, int64_t rows, int64_t cols,
                                   bool log) {
  DeviceGuard guard(device_);
  if (rows <= 0 || cols <= 0) return;
  kernels::with_cuda_compute_type(dtype, "softmax_backward", [&](auto tag) {
    using T = decltype(tag);
    softmax_backward_kernel<<<row_blocks(rows), kBlock, 0, stream_>>>(
        static_cast<const T*>(y), static_cast<const T*>(dy), static_cast<T*>(dx), rows, cols, log);
  });
  KILN_LAUNCH_CHECK("softmax_backward_kernel");
}

void CudaBackend::sparse_softmax_xent(DType dtype, const void* logits, const int32_t* labels, void* loss, void* dlogits,
                                      double grad_scale, int64_t rows, int64_t cols) {
  DeviceGuard guard(device_);
  if (rows <= 0) return;
  kernels::with_cuda_compute_type(dtype, "sparse_softmax_cross_entropy", [&](auto tag) {
    using T = decltype(tag);
    sparse_xent_kernel<<<row_blocks(rows), kBlock, 0, stream_>>>(static_cast<const T*>(logits), labels,
                                                                 static_cast<T*>(loss), static_cast<T*>(dlogits),
                                                                 static_cast<accumulate_t<T>>(grad_scale), rows, cols);
  });
  KILN_LAUNCH_CHECK("sparse_xent_kernel");
}

}  // namespace kiln::backend
