// Optimizer updates in Keras' formulas, term for term as the CPU backend writes them:
// SGD: w -= lr g, or v = m v - lr g; w += v (nesterov: w += m v - lr g).
// Adam: m += (g - m)(1 - b1); v += (g^2 - v)(1 - b2); w -= alpha m / (sqrt(v) + eps), with
// alpha the bias-corrected step size the caller computes in the variable's precision.
// Shape letters: n parameters.
#include "backend/cuda/check.h"
#include "backend/cuda/kernels.h"
#include "device_math.cuh"

namespace kiln::backend::kernels {

// ---------------------------------------------------------------------------------------------
// kernels

template <typename T>
__global__ void sgd_kernel(T* w, const T* g, T* v, int64_t n, T lr, T momentum, bool nesterov) {
  KILN_FOR_EACH(i, n) {
    if (v == nullptr) {
      w[i] -= lr * g[i];
    } else {
      v[i] = momentum * v[i] - lr * g[i];
      w[i] += nesterov ? momentum * v[i] - lr * g[i] : v[i];
    }
  }
}

template <typename T>
__global__ void adam_kernel(T* w, const T* g, T* m, T* v, int64_t n, T alpha, T one_minus_b1, T one_minus_b2, T eps) {
  KILN_FOR_EACH(i, n) {
    const T gi = g[i];
    const T mi = m[i] + (gi - m[i]) * one_minus_b1;
    const T vi = v[i] + (gi * gi - v[i]) * one_minus_b2;
    m[i] = mi;
    v[i] = vi;
    w[i] -= alpha * mi / (d_sqrt(vi) + eps);
  }
}

// ---------------------------------------------------------------------------------------------
// launchers

void sgd_step(DType dtype, void* w, const void* g, void* v, int64_t n, double lr, double momentum, bool nesterov,
              cudaStream_t s) {
  if (n <= 0) return;
  with_float(dtype, "sgd", [&](auto tag) {
    using T = decltype(tag);
    sgd_kernel<<<grid_for(n), kBlock, 0, s>>>(static_cast<T*>(w), static_cast<const T*>(g),
                                              momentum == 0.0 ? nullptr : static_cast<T*>(v), n, static_cast<T>(lr),
                                              static_cast<T>(momentum), nesterov);
  });
  KILN_LAUNCH_CHECK("sgd_kernel");
}

void adam_step(DType dtype, void* w, const void* g, void* m, void* v, int64_t n, double alpha, double beta1,
               double beta2, double eps, cudaStream_t s) {
  if (n <= 0) return;
  with_float(dtype, "adam", [&](auto tag) {
    using T = decltype(tag);
    adam_kernel<<<grid_for(n), kBlock, 0, s>>>(static_cast<T*>(w), static_cast<const T*>(g), static_cast<T*>(m),
                                               static_cast<T*>(v), n, static_cast<T>(alpha),
                                               T(1) - static_cast<T>(beta1), T(1) - static_cast<T>(beta2),
                                               static_cast<T>(eps));
  });
  KILN_LAUNCH_CHECK("adam_kernel");
}

}  // namespace kiln::backend::kernels
