// float32 activations whose scalar form calls exp, expm1 or tanh (sigmoid, silu, elu, tanh, exp, the
// tanh form of gelu) computed several elements per instruction (4, 8 or 16 by the build's level) by
// Eigen's packet math, for the CPU's elementwise loops: called one element at a time, libm's tanhf
// and expf take most of a small tanh or sigmoid network's training step. Same formulas as
// backend/elementwise_math.h, with Eigen's exp, expm1 and tanh in place of std::'s: exp and expm1
// within 2 ulp, tanh within 5, 6 in builds without FMA (a rational approximation, the one
// TensorFlow's CPU kernels use; libm's is within 2). Elements where Eigen's packet functions are not
// exact about the edges (exp's subnormal results, where Eigen 3.4 gives exp(-inf) > 0; infinities;
// NaN) are computed by the scalar formula instead, so NaN, infinities, 0 and subnormals come out as
// the scalar kernels give them.
#pragma once

#include <cstdint>

#include "backend/backend.h"

namespace kiln::backend::cpu_vector {

/// Whether apply() computes `op` (the others stay with the scalar loop).
bool applies(UnaryOp op);

/// y[i] = op(x[i]) for i < n; `param` is Elu's alpha. Requires applies(op).
void apply(UnaryOp op, float param, const float* x, float* y, int64_t n);

/// Whether derivative_times() computes `op`'s derivative: silu's and elu's. Sigmoid's and tanh's,
/// from y, need no function call; gelu's tanh form's cancels in 1 - t^2, where the packet tanh's
/// error would grow to 3.6e-6 (libm's: 5.6e-7); both stay with the scalar loop.
bool differentiates(UnaryOp op);

/// dx[i] = dy[i] * op'(x[i]) for i < n, the derivative as math::derivative writes it. Requires
/// differentiates(op).
void derivative_times(UnaryOp op, float param, const float* x, const float* dy, float* dx, int64_t n);

}  // namespace kiln::backend::cpu_vector
