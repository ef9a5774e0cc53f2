// Binary cross-entropy from logits, elementwise; the formula is math::sigmoid_xent_of, the code
// the CPU runs. Shape letters: n elements.
#include "backend/cuda/check.h"
#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/kernels.h"
#include "backend/dtype_dispatch.h"
#include "backend/elementwise_math.h"
#include "device_math.cuh"

namespace kiln::backend {

namespace {

template <typename T>
__global__ void sigmoid_xent_kernel(const T* x, const T* z, T* loss, int64_t n) {
  KILN_FOR_EACH(i, n) loss[i] = math::sigmoid_xent_of(x[i], z[i]);
}

}  // namespace

void CudaBackend::sigmoid_xent(DType dtype, const void* logits, const void* targets, void* loss, int64_t n) {
  DeviceGuard guard(device_);
  if (n <= 0) return;
  with_float_type(dtype, "sigmoid_cross_entropy", [&](auto tag) {
    using T = decltype(tag);
    sigmoid_xent_kernel<<<grid_for(n), kBlock, 0, stream_>>>(static_cast<const T*>(logits),
                                                             static_cast<const T*>(targets), static_cast<T*>(loss), n);
  });
  KILN_LAUNCH_CHECK("sigmoid_xent_kernel");
}

}  // namespace kiln::backend
