/// Keras-style losses: loss(y_true, y_pred) -> scalar mean over the batch.
#pragma once

#include <concepts>
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

/// A loss given by value or by Keras name, for a list of losses (one per model output):
/// compile(opt, {losses::MeanSquaredError(), "sparse_categorical_crossentropy"}).
class LossRef {
 public:
  /// Holds a copy of `loss`.
  template <typename L>
  requires std::derived_from<L, Loss> LossRef(const L& loss) : ptr_(loss.clone()) {}
  /// The registered loss called `name`, with default options.
  LossRef(const std::string& name);
  /// The registered loss called `name`, with default options.
  LossRef(const char* name) : LossRef(std::string(name)) {}
  /// The loss.
  const Loss& get() const { return *ptr_; }

 private:
  std::shared_ptr<const Loss> ptr_;
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
  /// A kiln extension (Keras has it only on CategoricalCrossentropy): the loss of the one-hot
  /// targets smoothed to onehot * (1 - label_smoothing) + label_smoothing / classes. In [0, 1].
  double label_smoothing = 0.0;
};

/// Cross-entropy for integer class labels; from logits it runs through log_softmax (stable). As in
/// Keras 3, predictions straight from a softmax or sigmoid activation are scored from that
/// activation's input (its logits) whatever from_logits says; with from_logits = true that also
/// prints Keras' warning, once per process. From probabilities p, the logits are log(clip(p, 1e-7,
/// 1 - 1e-7)). With label_smoothing s (a kiln extension) the loss is CategoricalCrossentropy's of
/// the smoothed one-hot targets: (1 - s) * the sparse loss + s * mean over classes of
/// -log_softmax(logits).
class SparseCategoricalCrossentropy : public Loss {
 public:
  /// The loss with `options`; throws for a label_smoothing outside [0, 1].
  explicit SparseCategoricalCrossentropy(SparseCategoricalCrossentropyOptions options = {});
  Tensor operator()(const Tensor& y_true, const Tensor& y_pred) const override;
  std::string name() const override { return "sparse_categorical_crossentropy"; }
  std::string class_name() const override { return "SparseCategoricalCrossentropy"; }
  Config get_config() const override {
    return {{"from_logits", options_.from_logits}, {"label_smoothing", options_.label_smoothing}};
  }
  /// Rebuilds from get_config().
  static SparseCategoricalCrossentropy from_config(const Config& config);
  std::unique_ptr<Loss> clone() const override { return std::make_unique<SparseCategoricalCrossentropy>(*this); }
  Tensor prepare_targets(const Tensor& y, const Shape& output_shape, const std::string& op) const override;
  /// True when predictions are logits.
  bool from_logits() const { return options_.from_logits; }

 private:
  SparseCategoricalCrossentropyOptions options_;
};

/// Options of CategoricalCrossentropy (Keras' defaults).
struct CategoricalCrossentropyOptions {
  bool from_logits = false;      ///< true: predictions are logits; false: probabilities
  double label_smoothing = 0.0;  ///< targets become t * (1 - s) + s / classes; in [0, 1]
  int64_t axis = -1;             ///< the class axis; only the last (-1) is supported
};

/// Cross-entropy for one-hot (or probability) targets of the predictions' shape [N, ..., classes]:
/// the mean over all rows of -sum_c t_c log q_c. From logits, q = softmax (through log_softmax).
/// From probabilities as Keras 3 does it: each row divided by its sum, then clipped to
/// [1e-7, 1 - 1e-7]. Predictions straight from a softmax or sigmoid activation are scored from the
/// activation's input as logits whatever from_logits says (Keras 3; with from_logits = true it
/// warns once).
class CategoricalCrossentropy : public Loss {
 public:
  /// The loss with `options`; throws for a label_smoothing outside [0, 1] or an axis other than -1.
  explicit CategoricalCrossentropy(CategoricalCrossentropyOptions options = {});
  Tensor operator()(const Tensor& y_true, const Tensor& y_pred) const override;
  std::string name() const override { return "categorical_crossentropy"; }
  std::string class_name() const override { return "CategoricalCrossentropy"; }
  Config get_config() const override {
    return {
        {"from_logits", options_.from_logits}, {"label_smoothing", options_.label_smoothing}, {"axis", options_.axis}};
  }
  /// Rebuilds from get_config().
  static CategoricalCrossentropy from_config(const Config& config);
  std::unique_ptr<Loss> clone() const override { return std::make_unique<CategoricalCrossentropy>(*this); }
  Tensor prepare_targets(const Tensor& y, const Shape& output_shape, const std::string& op) const override;

 private:
  CategoricalCrossentropyOptions options_;
};

/// Options of BinaryCrossentropy (Keras' defaults).
struct BinaryCrossentropyOptions {
  bool from_logits = false;      ///< true: predictions are logits; false: probabilities
  double label_smoothing = 0.0;  ///< targets become t * (1 - s) + s / 2; in [0, 1]
};

/// Binary cross-entropy for 0/1 (or probability) targets of the predictions' shape, the mean over
/// all elements. From logits, TensorFlow's max(x, 0) - x z + log1p(exp(-|x|)); from probabilities p
/// clipped to [1e-7, 1 - 1e-7], -(z log p + (1 - z) log(1 - p)). Predictions straight from a
/// sigmoid or softmax activation are scored from the activation's input as logits whatever
/// from_logits says (Keras 3; with from_logits = true it warns once).
class BinaryCrossentropy : public Loss {
 public:
  /// The loss with `options`; throws for a label_smoothing outside [0, 1].
  explicit BinaryCrossentropy(BinaryCrossentropyOptions options = {});
  Tensor operator()(const Tensor& y_true, const Tensor& y_pred) const override;
  std::string name() const override { return "binary_crossentropy"; }
  std::string class_name() const override { return "BinaryCrossentropy"; }
  Config get_config() const override {
    return {{"from_logits", options_.from_logits}, {"label_smoothing", options_.label_smoothing}};
  }
  /// Rebuilds from get_config().
  static BinaryCrossentropy from_config(const Config& config);
  std::unique_ptr<Loss> clone() const override { return std::make_unique<BinaryCrossentropy>(*this); }
  Tensor prepare_targets(const Tensor& y, const Shape& output_shape, const std::string& op) const override;

 private:
  BinaryCrossentropyOptions options_;
};

/// mean(|y_pred - y_true|).
class MeanAbsoluteError : public Loss {
 public:
  Tensor operator()(const Tensor& y_true, const Tensor& y_pred) const override;
  std::string name() const override { return "mean_absolute_error"; }
  std::string class_name() const override { return "MeanAbsoluteError"; }
  /// Rebuilds from get_config().
  static MeanAbsoluteError from_config(const Config& config);
  std::unique_ptr<Loss> clone() const override { return std::make_unique<MeanAbsoluteError>(*this); }
  Tensor prepare_targets(const Tensor& y, const Shape& output_shape, const std::string& op) const override;
};

/// Options of Huber.
struct HuberOptions {
  double delta = 1.0;  ///< where the loss turns from quadratic to linear; positive and finite
};

/// The mean over elements of 0.5 e^2 where |e| <= delta, else delta |e| - 0.5 delta^2, for
/// e = y_pred - y_true (Keras' Huber).
class Huber : public Loss {
 public:
  /// The loss with `options`; throws unless delta is positive and finite.
  explicit Huber(HuberOptions options = {});
  Tensor operator()(const Tensor& y_true, const Tensor& y_pred) const override;
  std::string name() const override { return "huber_loss"; }
  std::string class_name() const override { return "Huber"; }
  Config get_config() const override { return {{"delta", options_.delta}}; }
  /// Rebuilds from get_config().
  static Huber from_config(const Config& config);
  std::unique_ptr<Loss> clone() const override { return std::make_unique<Huber>(*this); }
  Tensor prepare_targets(const Tensor& y, const Shape& output_shape, const std::string& op) const override;

 private:
  HuberOptions options_;
};

/// A loss with default options by Keras name or class name ("mse", "mean_squared_error",
/// "sparse_categorical_crossentropy", "MeanSquaredError").
std::unique_ptr<Loss> get(const std::string& name);

}  // namespace losses
}  // namespace kiln
