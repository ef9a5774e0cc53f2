/// Keras-style losses: loss(y_true, y_pred) -> scalar mean over the batch.
#pragma once

#include <initializer_list>
#include <memory>
#include <string>

#include "kiln/registry.h"
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
  /// Keras' class name, e.g. "MeanSquaredError"; also the name it is registered under.
  virtual std::string class_name() const = 0;
  /// Constructor arguments (Keras' get_config).
  virtual Config get_config() const { return Config::object(); }
  /// A copy of this loss with the same options.
  virtual std::unique_ptr<Loss> clone() const = 0;
  /// Converts targets of a whole dataset to what operator() expects for predictions of per-sample
  /// shape `output_shape` (e.g. [N] -> [N, 1], float class ids -> int32), checking them; `op` names
  /// the caller in errors.
  virtual Tensor prepare_targets(const Tensor& y, const Shape& output_shape, const std::string& op) const = 0;
};

/// The table of loss classes, by class name and by Keras' function names ("mse").
Registry<std::unique_ptr<Loss>>& loss_registry();

/// Registers loss class L under `class_name` and each of `aliases` while this object is
/// constructed; L needs `static L from_config(const Config&)`.
template <typename L>
struct RegisterLoss {
  /// Registers L under its names.
  RegisterLoss(const std::string& class_name, std::initializer_list<std::string> aliases = {}) {
    auto factory = [](const Config& config) -> std::unique_ptr<Loss> {
      return std::make_unique<L>(L::from_config(config));
    };
    loss_registry().add(class_name, factory);
    for (const auto& alias : aliases) loss_registry().add(alias, factory);
  }
};

namespace losses {

/// mean((y_pred - y_true)^2).
class MeanSquaredError : public Loss {
 public:
  Tensor operator()(const Tensor& y_true, const Tensor& y_pred) const override;
  std::string name() const override { return "mean_squared_error"; }
  std::string class_name() const override { return "MeanSquaredError"; }
  /// Rebuilds from get_config().
  static MeanSquaredError from_config(const Config& config);
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
  std::string class_name() const override { return "SparseCategoricalCrossentropy"; }
  Config get_config() const override { return {{"from_logits", options_.from_logits}}; }
  /// Rebuilds from get_config().
  static SparseCategoricalCrossentropy from_config(const Config& config);
  std::unique_ptr<Loss> clone() const override { return std::make_unique<SparseCategoricalCrossentropy>(*this); }
  Tensor prepare_targets(const Tensor& y, const Shape& output_shape, const std::string& op) const override;
  /// True when predictions are logits.
  bool from_logits() const { return options_.from_logits; }

 private:
  SparseCategoricalCrossentropyOptions options_;
};

/// A loss with default options by Keras name or class name ("mse", "mean_squared_error",
/// "sparse_categorical_crossentropy", "MeanSquaredError").
std::unique_ptr<Loss> get(const std::string& name);

}  // namespace losses
}  // namespace kiln
