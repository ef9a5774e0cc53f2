// The per-element math of optimizer_update, written once for both backends (the CPU's loops and the
// CUDA kernels), in Keras' order of operations and in the variable's dtype T, so the two devices
// and the eager and recorded steps run the same formulas term for term.
#pragma once

#include <cmath>
#include <cstdint>

#include "backend/elementwise_math.h"
#include "backend/host_device.h"
#include "backend/optimizer_update.h"

namespace kiln::backend::math {

/// An UpdateRule's constants in T, converted the way Keras converts its Python floats: a
/// difference such as 1 - beta_1 is taken in double, then rounded.
template <typename T>
struct RuleConstants {
  UpdateKind kind;
  ClipKind clip;
  bool nesterov, centered, decay, has_momentum;
  T momentum, one_minus_b1, one_minus_b2, eps, rho, one_minus_rho, wd, clip_value, inv_clip_value;
};

/// The constants of `r` in T.
template <typename T>
RuleConstants<T> constants_of(const UpdateRule& r) {
  return {r.kind,
          r.clip,
          r.nesterov,
          r.centered,
          r.weight_decay,
          r.momentum != 0.0,
          static_cast<T>(r.momentum),
          static_cast<T>(1.0 - r.beta_1),
          static_cast<T>(1.0 - r.beta_2),
          static_cast<T>(r.epsilon),
          static_cast<T>(r.rho),
          static_cast<T>(1.0 - r.rho),
          static_cast<T>(r.weight_decay_rate),
          static_cast<T>(r.clip_value),
          static_cast<T>(r.clip_value == 0.0 ? 0.0 : 1.0 / r.clip_value)};
}

/// One step's values (backend/optimizer_update.h's StepValue) in T.
template <typename T>
struct StepConstants {
  T lr, alpha, ema, one_minus_ema;
  bool overwrite;
};

/// The step's values from a row of kStepValues entries of T or double.
template <typename T, typename Row>
KILN_HOST_DEVICE inline StepConstants<T> step_of(const Row* row) {
  const T ema = static_cast<T>(row[kEmaMomentum]);
  return {static_cast<T>(row[kLearningRate]), static_cast<T>(row[kAdamAlpha]), ema, T(1) - ema,
          row[kEmaOverwrite] != Row(0)};
}

/// The clip's per-tensor scalar: Norm: max(||g||, clipnorm) from ||g||^2 = `own` (0 stays 0, NaN
/// stays NaN, as TensorFlow's clip_by_norm); GlobalNorm: clipnorm min(1/N, 1/clipnorm) + (N - N),
/// N^2 = `total` (NaN when N is not finite, as Keras' clip_by_global_norm); else unused.
template <typename T>
KILN_HOST_DEVICE inline T clip_scalar_of(const RuleConstants<T>& r, T own, T total) {
  if (r.clip == ClipKind::Norm) {
    const T l2 = own > T(0) ? sqrt_of(own) : own;
    return (l2 > r.clip_value || l2 != l2) ? l2 : r.clip_value;
  }
  if (r.clip == ClipKind::GlobalNorm) {
    const T norm = sqrt_of(total);
    const T inv = T(1) / norm;
    return r.clip_value * (inv < r.inv_clip_value ? inv : r.inv_clip_value) + (norm - norm);
  }
  return T(1);
}

/// Element i of tensor `t`: clip, weight decay, the rule (at t's multiple of the learning rate),
/// the moving average. `Rule` is RuleConstants<T> or a type derived from it whose static constexpr
/// members (kind, clip, ...) hide the runtime ones, and `Tensor` likewise UpdateTensor or one whose
/// constexpr `average` is null: the CPU's loops fix a common rule's switches at compile time that
/// way (cpu_optimizer.cpp), so that they hold no branch and vectorise, with the formulas unchanged.
template <typename T, typename Rule, typename Tensor>
KILN_HOST_DEVICE inline void update_element(const Rule& r, const StepConstants<T>& s, T clip_scalar, const Tensor& t,
                                            int64_t i) {
  T* ws = static_cast<T*>(t.w);
  T w = ws[i];
  if (t.g != nullptr) {
    T g = static_cast<const T*>(t.g)[i];
    if (r.clip == ClipKind::Norm) g = g * r.clip_value / clip_scalar;
    if (r.clip == ClipKind::GlobalNorm) g = g * clip_scalar;
    if (r.clip == ClipKind::Value) g = g < -r.clip_value ? -r.clip_value : (g > r.clip_value ? r.clip_value : g);
    if (r.decay) w = w - w * r.wd * s.lr;
    const T scale = static_cast<T>(t.lr_scale);  // x * 1 == x: a multiplier of 1 changes no bit
    const T lr = s.lr * scale, alpha = s.alpha * scale;
    T* s0 = static_cast<T*>(t.slot[0]);
    T* s1 = static_cast<T*>(t.slot[1]);
    T* s2 = static_cast<T*>(t.slot[2]);
    switch (r.kind) {
      case UpdateKind::Sgd:
        if (r.has_momentum) {
          const T v = s0[i] * r.momentum - g * lr;
          s0[i] = v;
          w = r.nesterov ? w + (v * r.momentum - g * lr) : w + v;
        } else {
          w = w - g * lr;
        }
        break;
      case UpdateKind::Adam: {
        const T m = s0[i] + (g - s0[i]) * r.one_minus_b1;
        const T v = s1[i] + (g * g - s1[i]) * r.one_minus_b2;
        s0[i] = m;
        s1[i] = v;
        w = w - m * alpha / (sqrt_of(v) + r.eps);
        break;
      }
      case UpdateKind::Rmsprop: {
        const T v = r.rho * s0[i] + r.one_minus_rho * (g * g);
        s0[i] = v;
        T denominator;
        if (r.centered) {
          const T a = r.rho * s2[i] + r.one_minus_rho * g;
          s2[i] = a;
          denominator = v - a * a + r.eps;
        } else {
          denominator = v + r.eps;
        }
        const T increment = lr * g / sqrt_of(denominator);
        if (r.has_momentum) {
          const T mom = r.momentum * s1[i] + increment;
          s1[i] = mom;
          w = w - mom;
        } else {
          w = w - increment;
        }
        break;
      }
      case UpdateKind::Adagrad: {
        const T acc = s0[i] + g * g;
        s0[i] = acc;
        w = w - lr * g / sqrt_of(acc + r.eps);
        break;
      }
      case UpdateKind::Muon:
        s0[i] = g;  // the new momentum, computed with the direction
        w = w - lr * static_cast<const T*>(t.direction)[i];
        break;
    }
  }
  if (t.average != nullptr) {
    T* as = static_cast<T*>(t.average);
    const T a = s.ema * as[i] + s.one_minus_ema * w;
    as[i] = a;
    if (s.overwrite) w = a;
  }
  ws[i] = w;
}

/// Whether x is neither a NaN nor an infinity (loss scaling's check).
template <typename T>
KILN_HOST_DEVICE inline bool is_finite_value(T x) {
#if defined(__CUDA_ARCH__)
  return isfinite(x);
#else
  return std::isfinite(x);
#endif
}

/// Keras' dynamic loss scale after a step (backend_ops.h's update_loss_scale), written once for
/// the CPU and the one-thread CUDA kernel: a finite step counts as applied and grows the scale
/// every growth_steps finite steps; a non-finite one halves it. Both reset the counter.
KILN_HOST_DEVICE inline void update_loss_scale(int32_t nonfinite, float& scale, int64_t& counter, int64_t& applied,
                                               int64_t growth_steps) {
  if (nonfinite != 0) {
    counter = 0;
    scale = scale * 0.5f;
    return;
  }
  ++applied;
  if (counter == growth_steps - 1) {
    counter = 0;
    scale = scale * 2.0f;
  } else {
    ++counter;
  }
}

}  // namespace kiln::backend::math
