// The types of the backend's fused optimizer update (backend_ops.h: grad_sum_squares,
// optimizer_update): one pass per element does Keras' whole per-variable sequence, gradient
// clipping, decoupled weight decay, the rule's update and the moving average (EMA) of the weights.
// Why fused: each of these is a separate pass over every weight in Keras; one pass reads and
// writes each array once, and one launch serves many parameters.
#pragma once

#include <cstdint>

namespace kiln::backend {

/// The update rule of optimizer_update, Keras' formulas in the variable's dtype:
/// Sgd: momentum == 0: w -= g lr; else v = v m - g lr; w += v (nesterov: w += v m - g lr).
/// Adam: m += (g - m)(1 - b1); v += (g^2 - v)(1 - b2); w -= (m alpha) / (sqrt(v) + eps).
/// Rmsprop: v = rho v + (1 - rho) g^2; centered: a = rho a + (1 - rho) g, d = v - a^2 + eps, else
///   d = v + eps; inc = lr g / sqrt(d); momentum > 0: mom = momentum mom + inc; w -= mom; else w -= inc.
/// Adagrad: acc += g^2; w -= lr g / sqrt(acc + eps).
/// Muon: m = the new momentum (g holds it); w -= lr d, d the orthogonalized direction. Both come
///   computed (they need matrix products, optimizers/muon.cpp): the kernel only stores them, so a
///   skipped step (loss scaling) leaves the momentum unchanged too.
enum class UpdateKind : int32_t { Sgd, Adam, Rmsprop, Adagrad, Muon };

/// Gradient clipping before the update (Keras' clipnorm, global_clipnorm, clipvalue).
enum class ClipKind : int32_t { None, Norm, GlobalNorm, Value };

/// An update rule and its constants (each converted to the variable's dtype by the backend).
struct UpdateRule {
  UpdateKind kind = UpdateKind::Sgd;  ///< the rule
  double momentum = 0.0;              ///< Sgd's and Rmsprop's momentum (0: no momentum slot)
  bool nesterov = false;              ///< Sgd's Nesterov form
  double beta_1 = 0.9;                ///< Adam
  double beta_2 = 0.999;              ///< Adam
  double rho = 0.9;                   ///< Rmsprop
  bool centered = false;              ///< Rmsprop
  double epsilon = 1e-7;              ///< Adam, Rmsprop, Adagrad
  bool weight_decay = false;          ///< w = w - w wd lr before the update
  double weight_decay_rate = 0.0;     ///< wd
  ClipKind clip = ClipKind::None;     ///< the clipping of g
  double clip_value = 0.0;            ///< clipnorm, global_clipnorm or clipvalue
};

/// One parameter of optimizer_update: weights w, gradient g (null: no update, only the moving
/// average; Muon: the new momentum), the rule's slots in its order (Sgd: momentum; Adam: momentum,
/// velocity; Rmsprop: velocity, momentum, average_gradient; Adagrad: accumulator; Muon: momentum;
/// null where the rule keeps none), Muon's direction, the EMA `average` (null without EMA), n
/// elements.
struct UpdateTensor {
  void* w = nullptr;                            ///< weights
  const void* g = nullptr;                      ///< gradient, or null
  void* slot[3] = {nullptr, nullptr, nullptr};  ///< the rule's slots
  const void* direction = nullptr;              ///< Muon's orthogonalized step, or null
  void* average = nullptr;                      ///< EMA of w, or null
  int64_t n = 0;                                ///< elements
  /// Multiplies the rule's learning rate (and Adam's step size) for this tensor; the decoupled
  /// weight decay keeps the optimizer's rate (Layer::set_learning_rate_multiplier).
  double lr_scale = 1.0;
};

/// The per-step values optimizer_update reads, one row of kStepValues per step, in this order.
enum StepValue : int { kLearningRate = 0, kAdamAlpha = 1, kEmaMomentum = 2, kEmaOverwrite = 3, kStepValues = 4 };

}  // namespace kiln::backend
