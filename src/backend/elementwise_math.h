// The per-element math of the unary, derivative and binary kernels, written once for both
// backends: the CPU backend calls it from its loops, the CUDA backend from its kernels (nvcc sees
// the functions as __host__ __device__). One definition keeps the two devices' formulas term for
// term the same, which is what lets GPU results be compared with the CPU's to a few ulps.
// Functions are the precise ones on both sides (never fast-math intrinsics); the CPU's float32
// loops of exp, sigmoid, silu, elu, tanh and gelu's tanh form take the same formulas with Eigen's
// packet exp, expm1 and tanh (cpu/cpu_vector_math.h: within 5 ulp, 6 without FMA, against libm's 1-2).
#pragma once

#include <cmath>
#include <type_traits>

#include "backend/backend.h"
#include "backend/host_device.h"

namespace kiln::backend::math {

// exp, expm1, log, tanh, sqrt and erfc of float and double: std:: on the host, CUDA's precise
// overloads on the device.
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
KILN_MATH_FN(expm1)
KILN_MATH_FN(log)
KILN_MATH_FN(tanh)
KILN_MATH_FN(sqrt)
KILN_MATH_FN(erfc)
KILN_MATH_FN(log1p)
#undef KILN_MATH_FN
#undef KILN_DEVICE_ELSE_HOST

/// 1 / (1 + exp(-x)), split by sign so exp never overflows.
template <typename T>
KILN_HOST_DEVICE inline T sigmoid_of(T x) {
  return x >= T(0) ? T(1) / (T(1) + exp_of(-x)) : exp_of(x) / (T(1) + exp_of(x));
}

// Constants of the GELU forms: 1/sqrt(2), 1/sqrt(2 pi), sqrt(2/pi) and the cubic coefficient of
// the tanh approximation (Keras' and TensorFlow's).
template <typename T>
struct GeluConstants {
  static constexpr T kInvSqrt2 = T(0.70710678118654752440);
  static constexpr T kInvSqrt2Pi = T(0.39894228040143267794);
  static constexpr T kSqrt2OverPi = T(0.79788456080286535588);
  static constexpr T kCubic = T(0.044715);
};

/// y = op(x); `param` is Elu's alpha and LeakyRelu's negative slope, unused by the other ops.
template <UnaryOp op, typename T>
KILN_HOST_DEVICE inline T apply_unary(T x, T param = T(0)) {
  using C = GeluConstants<T>;
  if constexpr (op == UnaryOp::Neg) return -x;
  // x <= 0 ? 0 : x, not x > 0 ? x : 0: a NaN fails every comparison, and this form lets it through
  // (as PyTorch's relu and NumPy's maximum(x, 0) do), so a layer gone NaN stays visible downstream.
  else if constexpr (op == UnaryOp::Relu)
    return x <= T(0) ? T(0) : x;
  else if constexpr (op == UnaryOp::Sigmoid)
    return sigmoid_of(x);
  // 0.5 x (1 + erf(x / sqrt 2)) written with erfc, which keeps its precision where 1 + erf cancels
  // (x well below 0).
  else if constexpr (op == UnaryOp::Gelu)
    return T(0.5) * x * erfc_of(-x * C::kInvSqrt2);
  else if constexpr (op == UnaryOp::GeluTanh)
    return T(0.5) * x * (T(1) + tanh_of(C::kSqrt2OverPi * (x + C::kCubic * x * x * x)));
  else if constexpr (op == UnaryOp::Silu)
    return x * sigmoid_of(x);
  // The selects below send a NaN to the second branch, which keeps it NaN (NaN * param).
  else if constexpr (op == UnaryOp::Elu)
    return x > T(0) ? x : param * expm1_of(x);
  else if constexpr (op == UnaryOp::LeakyRelu)
    return x > T(0) ? x : param * x;
  else if constexpr (op == UnaryOp::Tanh)
    return tanh_of(x);
  else if constexpr (op == UnaryOp::Exp)
    return exp_of(x);
  else if constexpr (op == UnaryOp::Log)
    return log_of(x);
  else if constexpr (op == UnaryOp::Square)
    return x * x;
  // x < 0 ? -x : x, so a NaN keeps its NaN (and -0 gives -0, as the sign is not asked for).
  else if constexpr (op == UnaryOp::Abs)
    return x < T(0) ? -x : x;
  else
    return sqrt_of(x);  // UnaryOp::Sqrt
}

/// d op(x) / dx, from x or from y = op(x), whichever is cheaper and exact; `param` as apply_unary.
template <UnaryOp op, typename T>
KILN_HOST_DEVICE inline T derivative(T x, T y, T param = T(0)) {
  using C = GeluConstants<T>;
  if constexpr (op == UnaryOp::Neg) return T(-1);
  // PyTorch's threshold_backward (y <= 0 ? 0 : dy): the gradient passes at a NaN input.
  else if constexpr (op == UnaryOp::Relu)
    return x <= T(0) ? T(0) : T(1);
  else if constexpr (op == UnaryOp::Sigmoid)
    return y * (T(1) - y);
  else if constexpr (op == UnaryOp::Gelu)  // Phi(x) + x phi(x)
    return T(0.5) * erfc_of(-x * C::kInvSqrt2) + x * C::kInvSqrt2Pi * exp_of(T(-0.5) * x * x);
  else if constexpr (op == UnaryOp::GeluTanh) {
    const T x2 = x * x;
    const T t = tanh_of(C::kSqrt2OverPi * (x + C::kCubic * x2 * x));
    return T(0.5) * (T(1) + t) + T(0.5) * x * (T(1) - t * t) * C::kSqrt2OverPi * (T(1) + T(3) * C::kCubic * x2);
  } else if constexpr (op == UnaryOp::Silu) {  // s + x s (1 - s), s recomputed: y / x fails at 0
    const T s = sigmoid_of(x);
    return s * (T(1) + x * (T(1) - s));
  }
  // TensorFlow's rules: the slope of the x <= 0 branch at 0 (and at a NaN, the gradient becomes
  // NaN for Elu and is scaled by the slope for LeakyRelu, as in TensorFlow and PyTorch).
  else if constexpr (op == UnaryOp::Elu)
    return x > T(0) ? T(1) : param * exp_of(x);
  else if constexpr (op == UnaryOp::LeakyRelu)
    return x > T(0) ? T(1) : param;
  else if constexpr (op == UnaryOp::Tanh)
    return T(1) - y * y;
  else if constexpr (op == UnaryOp::Exp)
    return y;
  else if constexpr (op == UnaryOp::Log)
    return T(1) / x;
  else if constexpr (op == UnaryOp::Square)
    return T(2) * x;
  // sign(x), 0 at 0 (TensorFlow's and PyTorch's); a NaN input gives NaN.
  else if constexpr (op == UnaryOp::Abs)
    return x > T(0) ? T(1) : (x < T(0) ? T(-1) : (x == T(0) ? T(0) : x));
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
  // a is kept when a >= b or a is NaN; a NaN b fails a >= b and is taken: NaN either way.
  else if constexpr (op == BinaryOp::Maximum)
    return (a >= b || a != a) ? a : b;
  else if constexpr (op == BinaryOp::GreaterEqual)
    return a >= b ? T(1) : T(0);
  else
    return a / b;  // BinaryOp::Div
}

/// Binary cross-entropy of logit x against target z, TensorFlow's sigmoid_cross_entropy_with_logits:
/// max(x, 0) - x z + log1p(exp(-|x|)), which never overflows (exp sees only -|x|).
template <typename T>
KILN_HOST_DEVICE inline T sigmoid_xent_of(T x, T z) {
  const T abs_x = x < T(0) ? -x : x;
  return (x > T(0) ? x : T(0)) - x * z + log1p_of(exp_of(-abs_x));
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
    case UnaryOp::Gelu:
      return f(std::integral_constant<UnaryOp, UnaryOp::Gelu>{});
    case UnaryOp::GeluTanh:
      return f(std::integral_constant<UnaryOp, UnaryOp::GeluTanh>{});
    case UnaryOp::Silu:
      return f(std::integral_constant<UnaryOp, UnaryOp::Silu>{});
    case UnaryOp::Elu:
      return f(std::integral_constant<UnaryOp, UnaryOp::Elu>{});
    case UnaryOp::LeakyRelu:
      return f(std::integral_constant<UnaryOp, UnaryOp::LeakyRelu>{});
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
    case UnaryOp::Abs:
      return f(std::integral_constant<UnaryOp, UnaryOp::Abs>{});
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
    case BinaryOp::Maximum:
      return f(std::integral_constant<BinaryOp, BinaryOp::Maximum>{});
    case BinaryOp::GreaterEqual:
      return f(std::integral_constant<BinaryOp, BinaryOp::GreaterEqual>{});
  }
}

}  // namespace kiln::backend::math
