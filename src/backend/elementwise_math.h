// The per-element math of the unary, derivative and binary kernels, written once for both
// backends: the CPU backend calls it from its loops, the CUDA backend from its kernels (nvcc sees
// the functions as __host__ __device__). One definition keeps the two devices' formulas term for
// term the same, which is what lets GPU results be compared with the CPU's to a few ulps.
// Functions are the precise ones on both sides (never fast-math intrinsics).
#pragma once

#include <cmath>
#include <type_traits>

#include "backend/backend.h"

#if defined(__CUDACC__)
#define KILN_HOST_DEVICE __host__ __device__
#else
#define KILN_HOST_DEVICE
#endif

namespace kiln::backend::math {

// exp, log, tanh and sqrt of float and double: std:: on the host, CUDA's precise overloads on the
// device.
#if defined(__CUDA_ARCH__)
#define KILN_DEVICE_ELSE_HOST(device, host) return device;
#else
#define KILN_DEVICE_ELSE_HOST(device, host) return host;
#endif
#define KILN_MATH_FN(name)                                                                                    \
  KILN_HOST_DEVICE inline float name##_of(float x){                                                           \
      KILN_DEVICE_ELSE_HOST(::name##f(x), std::name(x))} KILN_HOST_DEVICE inline double name##_of(double x) { \
    KILN_DEVICE_ELSE_HOST(::name(x), std::name(x))                                                            \
  }
KILN_MATH_FN(exp)
KILN_MATH_FN(log)
KILN_MATH_FN(tanh)
KILN_MATH_FN(sqrt)
#undef KILN_MATH_FN
#undef KILN_DEVICE_ELSE_HOST

template <UnaryOp op, typename T>
KILN_HOST_DEVICE inline T apply_unary(T x) {
  if constexpr (op == UnaryOp::Neg) return -x;
  // x <= 0 ? 0 : x, not x > 0 ? x : 0: a NaN fails every comparison, and this form lets it through
  // (as PyTorch's relu and NumPy's maximum(x, 0) do), so a layer gone NaN stays visible downstream.
  else if constexpr (op == UnaryOp::Relu)
    return x <= T(0) ? T(0) : x;
  else if constexpr (op == UnaryOp::Sigmoid)  // split by sign so exp never overflows
    return x >= T(0) ? T(1) / (T(1) + exp_of(-x)) : exp_of(x) / (T(1) + exp_of(x));
  else if constexpr (op == UnaryOp::Tanh)
    return tanh_of(x);
  else if constexpr (op == UnaryOp::Exp)
    return exp_of(x);
  else if constexpr (op == UnaryOp::Log)
    return log_of(x);
  else if constexpr (op == UnaryOp::Square)
    return x * x;
  else
    return sqrt_of(x);  // UnaryOp::Sqrt
}

// d op(x) / dx, from x or from y = op(x), whichever is cheaper and exact.
template <UnaryOp op, typename T>
KILN_HOST_DEVICE inline T derivative(T x, T y) {
  if constexpr (op == UnaryOp::Neg) return T(-1);
  // PyTorch's threshold_backward (y <= 0 ? 0 : dy): the gradient passes at a NaN input.
  else if constexpr (op == UnaryOp::Relu)
    return x <= T(0) ? T(0) : T(1);
  else if constexpr (op == UnaryOp::Sigmoid)
    return y * (T(1) - y);
  else if constexpr (op == UnaryOp::Tanh)
    return T(1) - y * y;
  else if constexpr (op == UnaryOp::Exp)
    return y;
  else if constexpr (op == UnaryOp::Log)
    return T(1) / x;
  else if constexpr (op == UnaryOp::Square)
    return T(2) * x;
  else
    return T(0.5) / y;  // UnaryOp::Sqrt
}

template <BinaryOp op, typename T>
KILN_HOST_DEVICE inline T apply_binary(T a, T b) {
  if constexpr (op == BinaryOp::Add)
    return a + b;
  else if constexpr (op == BinaryOp::Sub)
    return a - b;
  else if constexpr (op == BinaryOp::Mul)
    return a * b;
  else
    return a / b;  // BinaryOp::Div
}

/// The order of max pooling and argmax: a NaN ranks above every number (NumPy's max and argmax,
/// PyTorch's max pooling), so a window or row holding a NaN yields NaN instead of hiding it. A scan
/// that replaces its best only when `greater_or_nan(v, best)` keeps the first NaN, as it keeps the
/// first of equal maxima.
template <typename T>
KILN_HOST_DEVICE inline bool greater_or_nan(T a, T b) {
  return a > b || (a != a && b == b);
}

/// Whether a is the value a max scan kept as b: equal, or both NaN.
template <typename T>
KILN_HOST_DEVICE inline bool same_max(T a, T b) {
  return a == b || (a != a && b != b);
}

/// Calls f(std::integral_constant<UnaryOp, op>) so that `op` is a compile-time constant inside f:
/// the per-element choice folds away (the CPU's loops vectorise; the GPU launches one kernel per op).
template <typename F>
void with_unary_op(UnaryOp op, F&& f) {
  switch (op) {
    case UnaryOp::Neg:
      return f(std::integral_constant<UnaryOp, UnaryOp::Neg>{});
    case UnaryOp::Relu:
      return f(std::integral_constant<UnaryOp, UnaryOp::Relu>{});
    case UnaryOp::Sigmoid:
      return f(std::integral_constant<UnaryOp, UnaryOp::Sigmoid>{});
    case UnaryOp::Tanh:
      return f(std::integral_constant<UnaryOp, UnaryOp::Tanh>{});
    case UnaryOp::Exp:
      return f(std::integral_constant<UnaryOp, UnaryOp::Exp>{});
    case UnaryOp::Log:
      return f(std::integral_constant<UnaryOp, UnaryOp::Log>{});
    case UnaryOp::Square:
      return f(std::integral_constant<UnaryOp, UnaryOp::Square>{});
    case UnaryOp::Sqrt:
      return f(std::integral_constant<UnaryOp, UnaryOp::Sqrt>{});
  }
}

template <typename F>
void with_binary_op(BinaryOp op, F&& f) {
  switch (op) {
    case BinaryOp::Add:
      return f(std::integral_constant<BinaryOp, BinaryOp::Add>{});
    case BinaryOp::Sub:
      return f(std::integral_constant<BinaryOp, BinaryOp::Sub>{});
    case BinaryOp::Mul:
      return f(std::integral_constant<BinaryOp, BinaryOp::Mul>{});
    case BinaryOp::Div:
      return f(std::integral_constant<BinaryOp, BinaryOp::Div>{});
  }
}

}  // namespace kiln::backend::math
