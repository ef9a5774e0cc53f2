// CPU binary cross-entropy from logits; the formula is math::sigmoid_xent_of, shared with CUDA,
// computed in float for 16-bit elements and rounded once.
#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/cpu_half.h"
#include "backend/dtype_dispatch.h"
#include "backend/elementwise_math.h"

namespace kiln::backend {

void CpuBackend::sigmoid_xent(DType dtype, const void* logits, const void* targets, void* loss, int64_t n) {
  with_cpu_compute_type(dtype, "sigmoid_cross_entropy", [&](auto tag) {
    using T = decltype(tag);
    using A = accumulate_t<T>;
    const T* xs = static_cast<const T*>(logits);
    const T* zs = static_cast<const T*>(targets);
    T* ls = static_cast<T*>(loss);
    parallel_for_work(n, n, [&](int64_t i0, int64_t i1) {
      for (int64_t i = i0; i < i1; ++i)
        ls[i] = convert_element<T>(math::sigmoid_xent_of(convert_element<A>(xs[i]), convert_element<A>(zs[i])));
    });
  });
}

}  // namespace kiln::backend
