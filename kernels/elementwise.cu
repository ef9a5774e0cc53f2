// The elementwise family: unary functions and their derivatives, broadcasting binary ops, affine,
// clip; and the convolution's bias + ReLU pass. The per-element math is backend/elementwise_math.h,
// the same code the CPU backend runs. Each op's rule is a functor over the compute type A
// (accumulate_t: float for float16 and bfloat16), run by the map of map.cuh; float16 and bfloat16
// are loaded into float, computed on as float32 is and rounded once when stored.
// Shape letters: n elements; na, nb the repeating lengths of a and b (a[i % na], b[i % nb]).
#include <cstdint>

#include "backend/cuda/check.h"
#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/kernels.h"
#include "backend/dtype_dispatch.h"
#include "backend/elementwise_math.h"
#include "device_math.cuh"
#include "map.cuh"

namespace kiln::backend {

namespace {

using kernels::launch_map;
using kernels::load_value;
using kernels::store_value;

// ---------------------------------------------------------------------------------------------
// the per-element rules (map.cuh: kInputs of the inputs a, b, c are read; bit k of kNullable marks
// an input that may be null)

// `param`: Elu's alpha, LeakyRelu's slope (math::apply_unary).
template <UnaryOp op, typename A>
struct UnaryRule {
  static constexpr int kInputs = 1;
  static constexpr unsigned kNullable = 0;
  A param;
  __device__ A operator()(A x, A, A) const { return math::apply_unary<op>(x, param); }
};

// Inputs x, y, dy; x or y may be null when the rule does not read it (as on the CPU).
template <UnaryOp op, typename A>
struct UnaryBackwardRule {
  static constexpr int kInputs = 3;
  static constexpr unsigned kNullable = 0b011;
  A param;
  __device__ A operator()(A x, A y, A dy) const { return dy * math::derivative<op>(x, y, param); }
};

template <BinaryOp op, typename A>
struct BinaryRule {
  static constexpr int kInputs = 2;
  static constexpr unsigned kNullable = 0;
  __device__ A operator()(A a, A b, A) const { return math::apply_binary<op>(a, b); }
};

template <typename A>
struct AffineRule {
  static constexpr int kInputs = 1;
  static constexpr unsigned kNullable = 0;
  A alpha, beta;
  __device__ A operator()(A x, A, A) const { return alpha * x + beta; }
};

// Written as std::min(std::max(x, lo), hi) expands, so a NaN x stays NaN as on the CPU.
template <typename A>
struct ClipRule {
  static constexpr int kInputs = 1;
  static constexpr unsigned kNullable = 0;
  A lo, hi;
  __device__ A operator()(A x, A, A) const {
    const A m = (x < lo) ? lo : x;
    return (hi < m) ? hi : m;
  }
};

// Inputs x, dy.
template <typename A>
struct ClipBackwardRule {
  static constexpr int kInputs = 2;
  static constexpr unsigned kNullable = 0;
  A lo, hi;
  __device__ A operator()(A x, A dy, A) const { return (x >= lo && x <= hi) ? dy : A(0); }
};

// ---------------------------------------------------------------------------------------------
// kernels

// The broadcasting cases of binary (equal sizes go through launch_map): b a row broadcast avoids
// the two divisions of the general case.
template <BinaryOp op, typename T>
__global__ void binary_broadcast_kernel(const T* a, int64_t na, const T* b, int64_t nb, T* out, int64_t n) {
  const BinaryRule<op, accumulate_t<T>> rule{};
  if (na == n) {
    KILN_FOR_EACH(i, n) out[i] = store_value<T>(rule(load_value(a[i]), load_value(b[nb == 1 ? 0 : i % nb]), 0));
  } else {
    KILN_FOR_EACH(i, n) {
      out[i] = store_value<T>(rule(load_value(a[na == 1 ? 0 : i % na]), load_value(b[nb == 1 ? 0 : i % nb]), 0));
    }
  }
}

// y[r, c] = relu?(y[r, c] + bias[c]), in place.
template <typename T>
__global__ void bias_relu_kernel(T* y, const T* bias, bool relu, int64_t n, int64_t cols) {
  KILN_FOR_EACH(i, n) {
    accumulate_t<T> v = load_value(y[i]);
    if (bias) v += load_value(bias[i % cols]);
    y[i] = store_value<T>(relu ? math::apply_unary<UnaryOp::Relu>(v) : v);
  }
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// the backend's entries

void CudaBackend::unary(UnaryFn fn, DType dtype, const void* x, void* y, int64_t n) {
  DeviceGuard guard(device_);
  if (n <= 0) return;
  kernels::with_cuda_compute_type(dtype, "unary", [&](auto tag) {
    using T = decltype(tag);
    using A = accumulate_t<T>;
    math::with_unary_op(fn.op, [&](auto op_c) {
      launch_map<T>(UnaryRule<op_c.value, A>{static_cast<A>(fn.param)}, x, nullptr, nullptr, y, n, stream_);
    });
  });
  KILN_LAUNCH_CHECK("unary_kernel");
}

void CudaBackend::unary_backward(UnaryFn fn, DType dtype, const void* x, const void* y, const void* dy, void* dx,
                                 int64_t n) {
  DeviceGuard guard(device_);
  if (n <= 0) return;
  kernels::with_cuda_compute_type(dtype, "unary_backward", [&](auto tag) {
    using T = decltype(tag);
    using A = accumulate_t<T>;
    math::with_unary_op(fn.op, [&](auto op_c) {
      launch_map<T>(UnaryBackwardRule<op_c.value, A>{static_cast<A>(fn.param)}, x, y, dy, dx, n, stream_);
    });
  });
  KILN_LAUNCH_CHECK("unary_backward_kernel");
}

void CudaBackend::binary(BinaryOp op, DType dtype, const void* a, int64_t na, const void* b, int64_t nb, void* out,
                         int64_t n) {
  DeviceGuard guard(device_);
  if (n <= 0) return;
  kernels::with_cuda_compute_type(dtype, "binary", [&](auto tag) {
    using T = decltype(tag);
    math::with_binary_op(op, [&](auto op_c) {
      if (na == n && nb == n)
        launch_map<T>(BinaryRule<op_c.value, accumulate_t<T>>{}, a, b, nullptr, out, n, stream_);
      else
        binary_broadcast_kernel<op_c.value><<<grid_for(n), kBlock, 0, stream_>>>(
            static_cast<const T*>(a), na, static_cast<const T*>(b), nb, static_cast<T*>(out), n);
    });
  });
  KILN_LAUNCH_CHECK("binary_kernel");
}

void CudaBackend::affine(DType dtype, const void* x, double alpha, double beta, void* y, int64_t n) {
  DeviceGuard guard(device_);
  if (n <= 0) return;
  kernels::with_cuda_compute_type(dtype, "affine", [&](auto tag) {
    using T = decltype(tag);
    using A = accumulate_t<T>;
    launch_map<T>(AffineRule<A>{static_cast<A>(alpha), static_cast<A>(beta)}, x, nullptr, nullptr, y, n, stream_);
  });
  KILN_LAUNCH_CHECK("affine_kernel");
}

void CudaBackend::clip(DType dtype, const void* x, void* y, int64_t n, double lo, double hi) {
  DeviceGuard guard(device_);
  if (n <= 0) return;
  kernels::with_cuda_compute_type(dtype, "clip", [&](auto tag) {
    using T = decltype(tag);
    using A = accumulate_t<T>;
    launch_map<T>(ClipRule<A>{static_cast<A>(lo), static_cast<A>(hi)}, x, nullptr, nullptr, y, n, stream_);
  });
  KILN_LAUNCH_CHECK("clip_kernel");
}

void CudaBackend::clip_backward(DType dtype, const void* x, const void* dy, void* dx, int64_t n, double lo, double hi) {
  DeviceGuard guard(device_);
  if (n <= 0) return;
  kernels::with_cuda_compute_type(dtype, "clip_backward", [&](auto tag) {
    using T = decltype(tag);
    using A = accumulate_t<T>;
    launch_map<T>(ClipBackwardRule<A>{static_cast<A>(lo), static_cast<A>(hi)}, x, dy, nullptr, dx, n, stream_);
  });
  KILN_LAUNCH_CHECK("clip_backward_kernel");
}

// ---------------------------------------------------------------------------------------------
// the convolution's helper

namespace kernels {

void bias_relu(DType dtype, void* y, const void* bias, bool relu, int64_t rows, int64_t cols, cudaStream_t s) {
  const int64_t n = rows * cols;
  if (n <= 0 || (!bias && !relu)) return;
  with_cuda_compute_type(dtype, "bias_relu", [&](auto tag) {
    using T = decltype(tag);
    bias_relu_kernel<<<grid_for(n), kBlock, 0, s>>>(static_cast<T*>(y), static_cast<const T*>(bias), relu, n, cols);
  });
  KILN_LAUNCH_CHECK("bias_relu_kernel");
}

}  // namespace kernels

}  // namespace kiln::backend
