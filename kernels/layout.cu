// The layout family: one strided box copy (StridedCopy in backend.h) behind pad, slice,
// concatenate and permute, forward and backward. One thread per element of the box, in the box's
// row-major order, so the destination of a pad, slice or concatenate is written in runs (the op
// merges dimensions contiguous on both sides before it gets here); a permutation reads with
// strides. The index arithmetic is 32-bit when every index of the copy fits: 64-bit division is
// many instructions on a GPU.
// Shape letters: D the box's dimensions (ndim), I the index type.
#include <cstdint>
#include <limits>
#include <string>

#include "backend/cuda/check.h"
#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/kernels.h"
#include "backend/dtype_dispatch.h"
#include "device_math.cuh"
#include "half_types.cuh"

namespace kiln::backend {

namespace {

// ---------------------------------------------------------------------------------------------
// kernels

template <typename T, typename I>
__global__ void copy_strided_kernel(StridedCopy g, const T* src, T* dst, int64_t total) {
  KILN_FOR_EACH(i, total) {
    I rest = I(i), s = I(g.src_offset), t = I(g.dst_offset);
    for (int d = g.ndim - 1; d >= 0; --d) {
      const I e = I(g.extent[d]);
      const I k = rest % e;
      rest /= e;
      s += k * I(g.src_stride[d]);
      t += k * I(g.dst_stride[d]);
    }
    dst[t] = src[s];
  }
}

// The largest element index the copy touches on either side, and its element count.
int64_t largest_index(const StridedCopy& g, int64_t* total) {
  int64_t n = 1, s = g.src_offset, t = g.dst_offset;
  for (int d = 0; d < g.ndim; ++d) {
    n *= g.extent[d];
    s += (g.extent[d] - 1) * g.src_stride[d];
    t += (g.extent[d] - 1) * g.dst_stride[d];
  }
  *total = n;
  return s > t ? (s > n ? s : n) : (t > n ? t : n);
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// the backend's entries

void CudaBackend::copy_strided(DType dtype, const StridedCopy& g, const void* src, void* dst) {
  DeviceGuard guard(device_);
  if (g.ndim < 1 || g.ndim > StridedCopy::kMaxDims)
    throw Error("copy_strided", "box of " + std::to_string(g.ndim) + " dimensions; expected 1 to " +
                                    std::to_string(StridedCopy::kMaxDims));
  int64_t total = 0;
  const int64_t largest = largest_index(g, &total);
  if (total <= 0) return;
  const bool narrow = largest < std::numeric_limits<int32_t>::max();
  // A box copy moves elements without arithmetic, so the 16-bit floats take it too.
  kernels::with_cuda_type(dtype, [&](auto tag) {
    using T = decltype(tag);
    if (narrow)
      copy_strided_kernel<T, int32_t>
          <<<grid_for(total), kBlock, 0, stream_>>>(g, static_cast<const T*>(src), static_cast<T*>(dst), total);
    else
      copy_strided_kernel<T, int64_t>
          <<<grid_for(total), kBlock, 0, stream_>>>(g, static_cast<const T*>(src), static_cast<T*>(dst), total);
  });
  KILN_LAUNCH_CHECK("copy_strided_kernel");
}

}  // namespace kiln::backend
