// The optimizer family: updates in Keras' formulas, term for term as the CPU backend writes them:
// SGD: w -= lr g, or v = m v - lr g; w += v (nesterov: w += m v - lr g).
// Adam: m += (g - m)(1 - b1); v += (g^2 - v)(1 - b2); w -= alpha m / (sqrt(v) + eps), with
// alpha the bias-corrected step size, computed on the host in the variable's precision.
// The multi-tensor Adam updates many parameters in one launch and reads alpha from a device table
// at a device index, so a recorded training step needs no host argument.
// The fused update (the built-in optimizers' path, at the end of this file) does Keras' whole
// per-variable sequence, clip, weight decay, rule and moving average, in one pass per element
// with the formulas of backend/optimizer_math.h, shared with the CPU. Loss scaling (Keras'
// LossScaleOptimizer) adds an unscale-and-check pass over the gradients, a skip flag the update
// reads on the device, and a one-thread kernel that updates the scale: no host read per step.
// Shape letters: n parameters.
#include <cmath>

#include "backend/cuda/check.h"
#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/kernels.h"
#include "backend/dtype_dispatch.h"
#include "backend/elementwise_math.h"
#include "backend/optimizer_math.h"
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

// ---------------------------------------------------------------------------------------------
// The fused update (backend/optimizer_update.h): clip, weight decay, rule and moving average in
// one pass per element, up to kMaxTensors parameters per launch; the per-step values come from the
// device table at the device index when there is one. Gradient norms are summed one block per
// tensor in a fixed order (no atomics), so every replay and every eager step sums alike.

namespace kiln::backend {

namespace {

constexpr int kMaxUpdateTensors = 12;  // keeps the argument block well under CUDA's 4 KiB

struct UpdateBatch {
  UpdateTensor t[kMaxUpdateTensors];
  int64_t end[kMaxUpdateTensors];  // running element counts: tensor k covers [end[k-1], end[k])
  int first;                       // index of t[0] in the whole list (its sum of squares)
  int count;
};

template <typename T>
__global__ void grad_sum_squares_kernel(UpdateBatch b, T* out) {
  __shared__ T partial[kBlock];
  const UpdateTensor& t = b.t[blockIdx.x];
  const T* g = static_cast<const T*>(t.g);
  T acc = T(0);
  if (g != nullptr)
    for (int64_t i = threadIdx.x; i < t.n; i += kBlock) acc += g[i] * g[i];
  partial[threadIdx.x] = acc;
  __syncthreads();
  for (int half = kBlock / 2; half > 0; half /= 2) {
    if (threadIdx.x < half) partial[threadIdx.x] += partial[threadIdx.x + half];
    __syncthreads();
  }
  if (threadIdx.x == 0) out[b.first + blockIdx.x] = partial[0];
}

template <typename T>
__global__ void sum_in_order_kernel(T* out, int count) {
  T acc = T(0);
  for (int k = 0; k < count; ++k) acc += out[k];
  out[count] = acc;
}

template <typename T>
__global__ void optimizer_update_kernel(UpdateBatch b, math::RuleConstants<T> r, const T* table, const int64_t* index,
                                        math::StepConstants<T> host_step, const T* sums, int total_index,
                                        const int32_t* skip) {
  if (skip != nullptr && *skip != 0) return;  // loss scaling's skipped step: nothing is written
  const math::StepConstants<T> s = table != nullptr ? math::step_of<T>(table + *index * kStepValues) : host_step;
  const int64_t total = b.end[b.count - 1];
  KILN_FOR_EACH(i, total) {
    int k = 0;
    while (i >= b.end[k]) ++k;
    const int64_t j = i - (k ? b.end[k - 1] : 0);
    const T clip = sums != nullptr ? math::clip_scalar_of(r, sums[b.first + k],
                                                          r.clip == ClipKind::GlobalNorm ? sums[total_index] : T(0))
                                   : T(1);
    math::update_element(r, s, clip, b.t[k], j);
  }
}

// Loss scaling: the flag starts at 0 and any thread that meets a NaN or an infinity sets it to 1
// (every writer writes the same value, so the result does not depend on their order).
__global__ void clear_flag_kernel(int32_t* flag) { *flag = 0; }

template <typename T>
__global__ void unscale_kernel(UpdateBatch b, const float* scale, int32_t* nonfinite) {
  const T s = static_cast<T>(*scale);
  const int64_t total = b.end[b.count - 1];
  KILN_FOR_EACH(i, total) {
    int k = 0;
    while (i >= b.end[k]) ++k;
    const int64_t j = i - (k ? b.end[k - 1] : 0);
    T* g = static_cast<T*>(const_cast<void*>(b.t[k].g));
    if (g == nullptr) continue;
    const T v = g[j];
    if (!math::is_finite_value(v)) *nonfinite = 1;
    g[j] = v / s;
  }
}

__global__ void update_loss_scale_kernel(const int32_t* nonfinite, float* scale, int64_t* counter, int64_t* applied,
                                         int64_t growth_steps) {
  math::update_loss_scale(*nonfinite, *scale, *counter, *applied, growth_steps);
}

// Calls fn(batch, elements) for each run of up to kMaxUpdateTensors non-empty tensors.
template <typename F>
void for_each_batch(const UpdateTensor* tensors, int count, F&& fn) {
  for (int first = 0; first < count;) {
    UpdateBatch b{};
    b.first = first;
    int64_t total = 0;
    int k = first;
    // Empty tensors are kept (their sum of squares is written as 0) but add no elements.
    for (; k < count && b.count < kMaxUpdateTensors; ++k) {
      b.t[b.count] = tensors[k];
      total += tensors[k].n;
      b.end[b.count++] = total;
    }
    fn(b, total);
    first = k;
  }
}

}  // namespace

void CudaBackend::grad_sum_squares(DType dtype, const UpdateTensor* tensors, int count, void* out, bool total) {
  DeviceGuard guard(device_);
  with_float_type(dtype, "grad_sum_squares", [&](auto tag) {
    using T = decltype(tag);
    for_each_batch(tensors, count, [&](const UpdateBatch& b, int64_t) {
      grad_sum_squares_kernel<T><<<b.count, kBlock, 0, stream_>>>(b, static_cast<T*>(out));
      KILN_LAUNCH_CHECK("grad_sum_squares_kernel");
    });
    if (total) {
      sum_in_order_kernel<T><<<1, 1, 0, stream_>>>(static_cast<T*>(out), count);
      KILN_LAUNCH_CHECK("sum_in_order_kernel");
    }
  });
}

void CudaBackend::optimizer_update(DType dtype, const UpdateRule& rule, const UpdateTensor* tensors, int count,
                                   const void* sum_squares, const void* step_table, const int64_t* index,
                                   const double* host_step, const int32_t* skip) {
  DeviceGuard guard(device_);
  with_float_type(dtype, "optimizer_update", [&](auto tag) {
    using T = decltype(tag);
    const auto r = math::constants_of<T>(rule);
    const double no_step[kStepValues] = {0, 0, 0, 0};
    const math::StepConstants<T> host = math::step_of<T>(host_step != nullptr ? host_step : no_step);
    for_each_batch(tensors, count, [&](const UpdateBatch& b, int64_t total) {
      if (total == 0) return;
      optimizer_update_kernel<T><<<grid_for(total), kBlock, 0, stream_>>>(
          b, r, static_cast<const T*>(step_table), index, host, static_cast<const T*>(sum_squares), count, skip);
      KILN_LAUNCH_CHECK("optimizer_update_kernel");
    });
  });
}

void CudaBackend::unscale_gradients(DType dtype, const UpdateTensor* tensors, int count, const float* scale,
                                    int32_t* nonfinite) {
  DeviceGuard guard(device_);
  clear_flag_kernel<<<1, 1, 0, stream_>>>(nonfinite);
  KILN_LAUNCH_CHECK("clear_flag_kernel");
  with_float_type(dtype, "unscale_gradients", [&](auto tag) {
    using T = decltype(tag);
    for_each_batch(tensors, count, [&](const UpdateBatch& b, int64_t total) {
      if (total == 0) return;
      unscale_kernel<T><<<grid_for(total), kBlock, 0, stream_>>>(b, scale, nonfinite);
      KILN_LAUNCH_CHECK("unscale_kernel");
    });
  });
}

void CudaBackend::update_loss_scale(const int32_t* nonfinite, float* scale, int64_t* counter, int64_t* applied,
                                    int64_t growth_steps) {
  DeviceGuard guard(device_);
  update_loss_scale_kernel<<<1, 1, 0, stream_>>>(nonfinite, scale, counter, applied, growth_steps);
  KILN_LAUNCH_CHECK("update_loss_scale_kernel");
}

}  // namespace kiln::backend
