// The elementwise family: unary functions and their derivatives, broadcasting binary ops, affine,
// clip; and the convolution's bias + ReLU pass. The per-element math is backend/elementwise_math.h,
// the same code the CPU backend runs.
// Shape letters: n elements; na, nb the repeating lengths of a and b (a[i % na], b[i % nb]).
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

// `param`: Elu's alpha, LeakyRelu's slope (math::apply_unary).
template <UnaryOp op, typename T>
__global__ void unary_kernel(const T* x, T* y, int64_t n, T param) {
  KILN_FOR_EACH(i, n) y[i] = math::apply_unary<op>(x[i], param);
}

// x or y may be null when the rule does not read it (as on the CPU).
template <UnaryOp op, typename T>
__global__ void unary_backward_kernel(const T* x, const T* y, const T* dy, T* dx, int64_t n, T param) {
  KILN_FOR_EACH(i, n) dx[i] = dy[i] * math::derivative<op>(x ? x[i] : T(0), y ? y[i] : T(0), param);
}

// The common cases (equal sizes, b a row broadcast) avoid the two divisions of the general one.
template <BinaryOp op, typename T>
__global__ void binary_kernel(const T* a, int64_t na, const T* b, int64_t nb, T* out, int64_t n) {
  if (na == n && nb == n) {
    KILN_FOR_EACH(i, n) out[i] = math::apply_binary<op>(a[i], b[i]);
  } else if (na == n) {
    KILN_FOR_EACH(i, n) out[i] = math::apply_binary<op>(a[i], b[nb == 1 ? 0 : i % nb]);
  } else {
    KILN_FOR_EACH(i, n) out[i] = math::apply_binary<op>(a[na == 1 ? 0 : i % na], b[nb == 1 ? 0 : i % nb]);
  }
}

template <typename T>
__global__ void affine_kernel(const T* x, T alpha, T beta, T* y, int64_t n) {
  KILN_FOR_EACH(i, n) y[i] = alpha * x[i] + beta;
}

// Written as std::min(std::max(x, lo), hi) expands, so a NaN x stays NaN as on the CPU.
template <typename T>
__global__ void clip_kernel(const T* x, T* y, int64_t n, T lo, T hi) {
  KILN_FOR_EACH(i, n) {
    const T m = (x[i] < lo) ? lo : x[i];
    y[i] = (hi < m) ? hi : m;
  }
}

template <typename T>
__global__ void clip_backward_kernel(const T* x, const T* dy, T* dx, int64_t n, T lo, T hi) {
  KILN_FOR_EACH(i, n) dx[i] = (x[i] >= lo && x[i] <= hi) ? dy[i] : T(0);
}

// y[r, c] = relu?(y[r, c] + bias[c]), in place.
template <typename T>
__global__ void bias_relu_kernel(T* y, const T* bias, bool relu, int64_t n, int64_t cols) {
  KILN_FOR_EACH(i, n) {
    T v = y[i];
    if (bias) v += bias[i % cols];
    y[i] = relu ? math::apply_unary<UnaryOp::Relu>(v) : v;
  }
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// the backend's entries

void CudaBackend::unary(UnaryFn fn, DType dtype, const void* x, void* y, int64_t n) {
  DeviceGuard guard(device_);
  if (n <= 0) return;
  with_float_type(dtype, "unary", [&](auto tag) {
    using T = decltype(tag);
    math::with_unary_op(fn.op, [&](auto op_c) {
      unary_kernel<op_c.value><<<grid_for(n), kBlock, 0, stream_>>>(static_cast<const T*>(x), static_cast<T*>(y), n,
                                                                    static_cast<T>(fn.param));
    });
  });
  KILN_LAUNCH_CHECK("unary_kernel");
}

void CudaBackend::unary_backward(UnaryFn fn, DType dtype, const void* x, const void* y, const void* dy, void* dx,
                                 int64_t n) {
  DeviceGuard guard(device_);
  if (n <= 0) return;
  with_float_type(dtype, "unary_backward", [&](auto tag) {
    using T = decltype(tag);
    math::with_unary_op(fn.op, [&](auto op_c) {
      unary_backward_kernel<op_c.value><<<grid_for(n), kBlock, 0, stream_>>>(
          static_cast<const T*>(x), static_cast<const T*>(y), static_cast<const T*>(dy), static_cast<T*>(dx), n,
          static_cast<T>(fn.param));
    });
  });
  KILN_LAUNCH_CHECK("unary_backward_kernel");
}

void CudaBackend::binary(BinaryOp op, DType dtype, const void* a, int64_t na, const void* b, int64_t nb, void* out,
                         int64_t n) {
  DeviceGuard guard(device_);
  if (n <= 0) return;
  with_float_type(dtype, "binary", [&](auto tag) {
    using T = decltype(tag);
    math::with_binary_op(op, [&](auto op_c) {
      binary_kernel<op_c.value><<<grid_for(n), kBlock, 0, stream_>>>(
          static_cast<const T*>(a), na, static_cast<const T*>(b), nb, static_cast<T*>(out), n);
    });
  });
  KILN_LAUNCH_CHECK("binary_kernel");
}

void CudaBackend::affine(DType dtype, const void* x, double alpha, double beta, void* y, int64_t n) {
  DeviceGuard guard(device_);
  if (n <= 0) return;
  with_float_type(dtype, "affine", [&](auto tag) {
    using T = decltype(tag);
    affine_kernel<<<grid_for(n), kBlock, 0, stream_>>>(static_cast<const T*>(x), static_cast<T>(alpha),
                                                       static_cast<T>(beta), static_cast<T*>(y), n);
  });
  KILN_LAUNCH_CHECK("affine_kernel");
}

void CudaBackend::clip(DType dtype, const void* x, void* y, int64_t n, double lo, double hi) {
  DeviceGuard guard(device_);
  if (n <= 0) return;
  with_float_type(dtype, "clip", [&](auto tag) {
    using T = decltype(tag);
    clip_kernel<<<grid_for(n), kBlock, 0, stream_>>>(static_cast<const T*>(x), static_cast<T*>(y), n,
                                                     static_cast<T>(lo), static_cast<T>(hi));
  });
  KILN_LAUNCH_CHECK("clip_kernel");
}

void CudaBackend::clip_backward(DType dtype, const void* x, const void* dy, void* dx, int64_t n, double lo, double hi) {
  DeviceGuard guard(device_);
  if (n <= 0) return;
  with_float_type(dtype, "clip_backward", [&](auto tag) {
    using T = decltype(tag);
    clip_backward_kernel<<<grid_for(n), kBlock, 0, stream_>>>(static_cast<const T*>(x), static_cast<const T*>(dy),
                                                              static_cast<T*>(dx), n, static_cast<T>(lo),
                                                              static_cast<T>(hi));
  });
  KILN_LAUNCH_CHECK("clip_backward_kernel");
}

// ---------------------------------------------------------------------------------------------
// the convolution's helper

namespace kernels {

void bias_relu(DType dtype, void* y, const void* bias, bool relu, int64_t rows, int64_t cols, cudaStream_t s) {
  const int64_t n = rows * cols;
  if (n <= 0 || (!bias && !relu)) return;
  with_float_type(dtype, "bias_relu", [&](auto tag) {
    using T = decltype(tag);
    bias_relu_kernel<<<grid_for(n), kBlock, 0, s>>>(static_cast<T*>(y), static_cast<const T*>(bias), relu, n, cols);
  });
  KILN_LAUNCH_CHECK("bias_relu_kernel");
}

}  // namespace kernels

}  // namespace kiln::backend
