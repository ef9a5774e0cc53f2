// The optimizer family: updates in Keras' formulas, term for term as the CPU backend writes them:
// SGD: w -= lr g, or v = m v - lr g; w += v (nesterov: w += m v - lr g).
// Adam: m += (g - m)(1 - b1); v += (g^2 - v)(1 - b2); w -= alpha m / (sqrt(v) + eps), with
// alpha the bias-corrected step size, computed on the host in the variable's precision.
// The multi-tensor Adam updates many parameters in one launch and reads alpha from a device table
// at a device index, so a recorded training step needs no host argument.
// Shape letters: n parameters.
#include <cmath>

#include "backend/cuda/check.h"
#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/kernels.h"
#include "backend/dtype_dispatch.h"
#include "backend/elementwise_math.h"
#include "device_math.cuh"

namespace kiln::backend {

namespace {

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
    w[i] -= alpha * mi / (math::sqrt_of(vi) + eps);
  }
}

// Up to kMaxTensors parameters per launch, passed by value in the kernel's argument block.
constexpr int kMaxTensors = 16;

template <typename T>
struct AdamBatch {
  T* w[kMaxTensors];
  const T* g[kMaxTensors];
  T* m[kMaxTensors];
  T* v[kMaxTensors];
  int64_t end[kMaxTensors];  // running element counts: tensor k covers [end[k-1], end[k])
  int count;
};

template <typename T>
__global__ void adam_multi_kernel(AdamBatch<T> b, const T* alpha_table, const int64_t* index, T one_minus_b1,
                                  T one_minus_b2, T eps) {
  const T alpha = alpha_table[*index];
  const int64_t total = b.end[b.count - 1];
  KILN_FOR_EACH(i, total) {
    int k = 0;
    while (i >= b.end[k]) ++k;
    const int64_t j = i - (k ? b.end[k - 1] : 0);
    const T gi = b.g[k][j];
    const T mi = b.m[k][j] + (gi - b.m[k][j]) * one_minus_b1;
    const T vi = b.v[k][j] + (gi * gi - b.v[k][j]) * one_minus_b2;
    b.m[k][j] = mi;
    b.v[k][j] = vi;
    b.w[k][j] -= alpha * mi / (math::sqrt_of(vi) + eps);
  }
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// the backend's entries

void CudaBackend::sgd_step(DType dtype, void* w, const void* g, void* v, int64_t n, double lr, double momentum,
                           bool nesterov) {
  DeviceGuard guard(device_);
  if (n <= 0) return;
  with_float_type(dtype, "sgd", [&](auto tag) {
    using T = decltype(tag);
    sgd_kernel<<<grid_for(n), kBlock, 0, stream_>>>(static_cast<T*>(w), static_cast<const T*>(g),
                                                    momentum == 0.0 ? nullptr : static_cast<T*>(v), n,
                                                    static_cast<T>(lr), static_cast<T>(momentum), nesterov);
  });
  KILN_LAUNCH_CHECK("sgd_kernel");
}

void CudaBackend::adam_step(DType dtype, void* w, const void* g, void* m, void* v, int64_t n, double lr, double beta1,
                            double beta2, double eps, int64_t step) {
  DeviceGuard guard(device_);
  with_float_type(dtype, "adam", [&](auto tag) {
    using T = decltype(tag);
    // The bias-corrected step size in the variable's precision, exactly as the CPU backend (Keras).
    const T b1 = static_cast<T>(beta1), b2 = static_cast<T>(beta2), t = static_cast<T>(step);
    const T alpha = static_cast<T>(lr) * std::sqrt(T(1) - std::pow(b2, t)) / (T(1) - std::pow(b1, t));
    if (n <= 0) return;
    adam_kernel<<<grid_for(n), kBlock, 0, stream_>>>(static_cast<T*>(w), static_cast<const T*>(g), static_cast<T*>(m),
                                                     static_cast<T*>(v), n, alpha, T(1) - b1, T(1) - b2,
                                                     static_cast<T>(eps));
    KILN_LAUNCH_CHECK("adam_kernel");
  });
}

void CudaBackend::adam_step_multi(DType dtype, const ParamSlots* params, int count, double beta1, double beta2,
                                  double eps, const void* alpha_table, const int64_t* index) {
  DeviceGuard guard(device_);
  with_float_type(dtype, "adam", [&](auto tag) {
    using T = decltype(tag);
    for (int first = 0; first < count; first += kMaxTensors) {
      AdamBatch<T> b{};
      int64_t total = 0;
      for (int k = first; k < count && b.count < kMaxTensors; ++k) {
        if (params[k].n <= 0) continue;
        b.w[b.count] = static_cast<T*>(params[k].w);
        b.g[b.count] = static_cast<const T*>(params[k].g);
        b.m[b.count] = static_cast<T*>(params[k].m);
        b.v[b.count] = static_cast<T*>(params[k].v);
        total += params[k].n;
        b.end[b.count++] = total;
      }
      if (!b.count) continue;
      adam_multi_kernel<<<grid_for(total), kBlock, 0, stream_>>>(b, static_cast<const T*>(alpha_table), index,
                                                                 T(1) - static_cast<T>(beta1),
                                                                 T(1) - static_cast<T>(beta2), static_cast<T>(eps));
      KILN_LAUNCH_CHECK("adam_multi_kernel");
    }
  });
}

}  // namespace kiln::backend
