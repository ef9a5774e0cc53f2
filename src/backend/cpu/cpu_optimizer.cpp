// CPU optimizer updates, written exactly as Keras writes them so the rounding matches.
#include <cmath>

#include "backend/cpu/cpu_backend.h"

namespace kiln::backend {

void CpuBackend::sgd_step(DType dtype, void* w, const void* g, void* v, int64_t n, double lr, double momentum,
                          bool nesterov) {
  with_float_type(dtype, "sgd", [&](auto tag) {
    using T = decltype(tag);
    T* ws = static_cast<T*>(w);
    const T* gs = static_cast<const T*>(g);
    T* vs = static_cast<T*>(v);
    const T lr_t = static_cast<T>(lr), m = static_cast<T>(momentum);
    if (momentum == 0.0) {
#pragma omp parallel for if (n > kParallelGrain)
      for (int64_t i = 0; i < n; ++i) ws[i] -= lr_t * gs[i];
      return;
    }
#pragma omp parallel for if (n > kParallelGrain)
    for (int64_t i = 0; i < n; ++i) {
      vs[i] = m * vs[i] - lr_t * gs[i];
      ws[i] += nesterov ? m * vs[i] - lr_t * gs[i] : vs[i];
    }
  });
}

void CpuBackend::adam_step(DType dtype, void* w, const void* g, void* m, void* v, int64_t n, double lr, double beta1,
                           double beta2, double eps, int64_t step) {
  with_float_type(dtype, "adam", [&](auto tag) {
    using T = decltype(tag);
    T* ws = static_cast<T*>(w);
    const T* gs = static_cast<const T*>(g);
    T* ms = static_cast<T*>(m);
    T* vs = static_cast<T*>(v);
    // Keras computes the bias correction in the variable's dtype: float32 powers for float32.
    const T b1 = static_cast<T>(beta1), b2 = static_cast<T>(beta2);
    const T t = static_cast<T>(step);
    const T alpha = static_cast<T>(lr) * std::sqrt(T(1) - std::pow(b2, t)) / (T(1) - std::pow(b1, t));
    const T e = static_cast<T>(eps);
#pragma omp parallel for if (n > kParallelGrain)
    for (int64_t i = 0; i < n; ++i) {
      ms[i] += (gs[i] - ms[i]) * (T(1) - b1);
      vs[i] += (gs[i] * gs[i] - vs[i]) * (T(1) - b2);
      ws[i] -= alpha * ms[i] / (std::sqrt(vs[i]) + e);
    }
  });
}

}  // namespace kiln::backend
