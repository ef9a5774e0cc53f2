/// Keras-style losses: loss(y_true, y_pred) -> scalar mean over the batch.
#pragma once

#include <memory>
#include <string>

#include "kiln/tensor.h"

namespace kiln {

/// Base of every loss.
class Loss {
 public:
  virtual ~Loss() = default;
  /// The mean loss of a batch.
  virtual Tensor operator()(const Tensor& y_true, const Tensor& y_pred) const = 0;
  /// Keras' name, e.g. "mean_squared_error".
  virtual std::string name() const = 0;
  /// A copy of this loss with the same options.
  virtual std::unique_ptr<Loss> clone() const = 0;
  /// Converts targets of a whole dataset to what operator() expects for predictions of per-sample
  /// shape `output_shape` (e.g. [N] -> [N, 1], float class ids -> int32), checking them; `op` names
  /// the caller in errors.
  virtual Tensor prepare_targets(const Tensor& y, const Shape& output_shape, const std::string& op) const = 0;
};

namespace losses {

/// mean((y_pred - y_true)^2).
class MeanSquaredError : public Loss {
 public:
  Tensor operator()(const Tensor& y_true, const Tensor& y_pred) const override;
  std::string name() const override { return "mean_squared_error"; }
  std::unique_ptr<Loss> clone() const override { return std::make_unique<MeanSquaredError>(*this); }
  Tensor prepare_targets(const Tensor& y, const Shape& output_shape, const std::string& op) const override;
};

/// Options of SparseCategoricalCrossentropy.
struct SparseCategoricalCrossentropyOptions {
  bool from_logits = false;  ///< true: predictions are logits; false: probabilities
};

/// Cross-entropy for integer class labels; from logits it runs through log_softmax (stable). As in
/// Keras 3, predictions straight from a softmax or sigmoid activation are scored from that
/// activation's input (its logits) whatever from_logits says; with from_logits = true that also
/// prints Keras' warning, once per process.
class SparseCategoricalCrossentropy : public Loss {
 public:
  /// The loss with `options`.
  explicit SparseCategoricalCrossentropy(SparseCategoricalCrossentropyOptions options = {}) : options_(options) {}
  Tensor operator()(const Tensor& y_true, const Tensor& y_pred) const override;
  std::string name() const override { return "sparse_categorical_crossentropy"; }
  std::unique_ptr<Loss> clone() const override { return std::make_unique<SparseCategoricalCrossentropy>(*this); }
  Tensor prepare_targets(const Tensor& y, const Shape& output_shape, const std::string& op) const override;
  /// True when predictions are logits.
  bool from_logits() const { return options_.from_logits; }

 private:
  SparseCategoricalCrossentropyOptions options_;
};

/// A loss by Keras name ("mse", "mean_squared_error", "sparse_categorical_crossentropy").
std::unique_ptr<Loss> get(const std::string& name);

}  // namespace losses
}  // namespace kiln
