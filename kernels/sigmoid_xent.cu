// Binary cross-entropy from logits, elementwise; the formula is math::sigmoid_xent_of, the code
// the CPU runs, applied by the map of map.cuh (float16 and bfloat16 computed in float, rounded
// once). Shape letters: n elements.
#include "backend/cuda/check.h"
#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/kernels.h"
#include "backend/dtype_dispatch.h"
#include "backend/elementwise_math.h"
#include "device_math.cuh"
#include "map.cuh"

namespace kiln::backend {

namespace {

// Inputs logits x and targets z (map.cuh's rule).
template <typename A>
struct SigmoidXentRule {
  static constexpr int kInputs = 2;
  static constexpr unsigned kNullable = 0;
  __device__ A operator()(A x, A z, A) const { return math::sigmoid_xent_of(x, z); }
};

}  // namespace

void CudaBackend::sigmoid_xent(DType dtype, const void* logits, const void* targets, void* loss, int64_t n) {
  DeviceGuard guard(device_);
  if (n <= 0) return;
  kernels::with_cuda_compute_type(dtype, "sigmoid_cross_entropy", [&](auto tag) {
    using T = decltype(tag);
    kernels::launch_map<T>(SigmoidXentRule<accumulate_t<T>>{}, logits, targets, nullptr, loss, n, stream_);
  });
  KILN_LAUNCH_CHECK("sigmoid_xent_kernel");
}

}  // namespace kiln::backend
