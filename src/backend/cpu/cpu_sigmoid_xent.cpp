// CPU binary cross-entropy from logits; the formula is math::sigmoid_xent_of, shared with CUDA.
#include "backend/cpu/cpu_backend.h"
#include "backend/dtype_dispatch.h"
#include "backend/elementwise_math.h"

namespace kiln::backend {

void CpuBackend::sigmoid_xent(DType dtype, const void* logits, const void* targets, void* loss, int64_t n) {
  with_float_type(dtype, "sigmoid_cross_entropy", [&](auto tag) {
    using T = decltype(tag);
    const T* xs = static_cast<const T*>(logits);
    const T* zs = static_cast<const T*>(targets);
    T* ls = static_cast<T*>(loss);
    parallel_for_work(n, n, [&](int64_t i0, int64_t i1) {
      for (int64_t i = i0; i < i1; ++i) ls[i] = math::sigmoid_xent_of(xs[i], zs[i]);
    });
  });
}

}  // namespace kiln::backend
