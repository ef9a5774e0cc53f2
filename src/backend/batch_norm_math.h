// What batch normalization's kernels share between the devices: the per-channel coefficients of
// the normalization, and the activations its passes can apply to their output. The backward of a
// fused activation recomputes the activation's input from x and these coefficients, so the forward
// and the backward must compute them alike: here, once, for the CPU and the GPU.
#pragma once

#include <optional>
#include <type_traits>

#include "backend/backend.h"
#include "backend/elementwise_math.h"
#include "backend/host_device.h"
#include "kiln/error.h"

namespace kiln::backend {

/// y = x * scale + shift for one channel: scale = gamma / sqrt(variance + epsilon), shift = beta -
/// mean * scale (tf.nn.batch_normalization's form).
template <typename A>
struct NormalizeCoefficients {
  A scale, shift;
};

template <typename A>
KILN_HOST_DEVICE inline NormalizeCoefficients<A> normalize_coefficients(A mean, A variance, A gamma, A beta,
                                                                        A epsilon) {
  const A scale = gamma / math::sqrt_of(variance + epsilon);
  return {scale, beta - mean * scale};
}

template <typename A>
KILN_HOST_DEVICE inline A normalized(A x, NormalizeCoefficients<A> k) {
  return x * k.scale + k.shift;
}

/// The normalization alone: no activation after it.
struct NoActivation {};

/// Whether the gradient through `Act` (NoActivation or an integral_constant of an op) costs at most a
/// comparison: none, or ReLU's. The backward passes take such a derivative inline (the CPU inside its
/// reducing and elementwise passes, the GPU's sums kernel unrolled four rows deep); a costlier one
/// gets a pass of its own on the CPU and no unrolling on the GPU.
template <typename Act>
KILN_HOST_DEVICE constexpr bool gradient_is_cheap() {
  if constexpr (std::is_same_v<Act, NoActivation>)
    return true;
  else
    return Act::value == UnaryOp::Relu;
}

/// Calls f(std::integral_constant<UnaryOp, op>{}) for an op that batch_norm_forward and
/// batch_norm_backward apply in their own passes (the op a compile-time constant: one kernel per op,
/// as the elementwise ops have) and returns true; returns false for any other op. The one list of
/// those ops.
template <typename F>
bool visit_batch_norm_activation(UnaryOp op, F&& f) {
  switch (op) {
    case UnaryOp::Relu:
      return f(std::integral_constant<UnaryOp, UnaryOp::Relu>{}), true;
    case UnaryOp::Gelu:
      return f(std::integral_constant<UnaryOp, UnaryOp::Gelu>{}), true;
    case UnaryOp::Silu:
      return f(std::integral_constant<UnaryOp, UnaryOp::Silu>{}), true;
    default:
      return false;
  }
}

/// Whether batch_norm_forward and batch_norm_backward apply `op` in their own passes.
inline bool batch_norm_fuses(UnaryOp op) {
  return visit_batch_norm_activation(op, [](auto) {});
}

/// Calls f(NoActivation{}) when there is no activation, else as visit_batch_norm_activation does.
/// Throws for an op batch_norm_fuses() refuses.
template <typename F>
void with_batch_norm_activation(const std::optional<UnaryFn>& activation, F&& f) {
  if (!activation) return f(NoActivation{});
  if (!visit_batch_norm_activation(activation->op, f))
    throw Error("batch_norm",
                "this activation is not applied by the normalization's passes; expected one that "
                "batch_norm_fuses() accepts");
}

}  // namespace kiln::backend
