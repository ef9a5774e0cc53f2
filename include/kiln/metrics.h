/// Keras' metrics by name, as compile() takes them: each adds its batch's per-sample sum into a
/// device-side total, so a training step reads nothing back to the host.
#pragma once

#include <initializer_list>
#include <memory>
#include <string>

#include "kiln/registry.h"
#include "kiln/tensor.h"

namespace kiln {

/// Base of every metric: a mean over samples, accumulated as a sum on the model's device.
class Metric {
 public:
  virtual ~Metric() = default;
  /// The name logs and History use ("accuracy").
  virtual std::string name() const = 0;
  /// Adds the sum over the batch's samples of this metric into `sum` (one float32 element on the
  /// predictions' device), as device work only (it is recorded into training steps).
  virtual void add_batch_sum(const Tensor& y_true, const Tensor& y_pred, Tensor& sum) const = 0;
};

/// The table of metrics, by name and aliases ("accuracy", "acc", "sparse_categorical_accuracy").
Registry<std::shared_ptr<const Metric>>& metric_registry();

/// Registers metric class M under `name` and `aliases` while this object is constructed.
template <typename M>
struct RegisterMetric {
  /// Registers M under its names.
  RegisterMetric(const std::string& name, std::initializer_list<std::string> aliases = {}) {
    auto factory = [](const Config&) -> std::shared_ptr<const Metric> { return std::make_shared<M>(); };
    metric_registry().add(name, factory);
    for (const auto& alias : aliases) metric_registry().add(alias, factory);
  }
};

namespace metrics {
/// A metric by name or alias; throws naming the known ones. Its name() is `name` as given, as
/// Keras 3 logs a metric under the string passed to compile ("acc" stays "acc").
std::shared_ptr<const Metric> get(const std::string& name);

/// Keras' "accuracy" ("acc"): chosen per batch from the shapes, as Keras 3's compile does it:
/// BinaryAccuracy when the predictions' last dimension is 1, else SparseCategoricalAccuracy when
/// the targets have fewer dimensions than the predictions (class indices) or a last dimension of 1,
/// else CategoricalAccuracy.
class Accuracy : public Metric {
 public:
  std::string name() const override { return "accuracy"; }
  void add_batch_sum(const Tensor& y_true, const Tensor& y_pred, Tensor& sum) const override;
};

/// The argmax of a prediction row [N, classes] equals the integer label [N].
class SparseCategoricalAccuracy : public Metric {
 public:
  std::string name() const override { return "sparse_categorical_accuracy"; }
  void add_batch_sum(const Tensor& y_true, const Tensor& y_pred, Tensor& sum) const override;
};

/// The argmax of a prediction row equals the argmax of its one-hot target row (shapes equal,
/// [N, ..., classes]; each sample counts the mean over its rows).
class CategoricalAccuracy : public Metric {
 public:
  std::string name() const override { return "categorical_accuracy"; }
  void add_batch_sum(const Tensor& y_true, const Tensor& y_pred, Tensor& sum) const override;
};

/// (y_pred > threshold) equals the 0/1 target, elementwise (Keras' binary_accuracy; each sample
/// counts the mean over its elements).
class BinaryAccuracy : public Metric {
 public:
  /// With Keras' default threshold 0.5.
  explicit BinaryAccuracy(double threshold = 0.5) : threshold_(threshold) {}
  std::string name() const override { return "binary_accuracy"; }
  void add_batch_sum(const Tensor& y_true, const Tensor& y_pred, Tensor& sum) const override;

 private:
  double threshold_;
};

/// The integer label is among the k largest predictions of its row (TensorFlow's in_top_k: ties
/// at the boundary count as inside; a row with a NaN or an infinity counts as a miss).
class SparseTopKCategoricalAccuracy : public Metric {
 public:
  /// With Keras' default k = 5; throws unless k >= 1.
  explicit SparseTopKCategoricalAccuracy(int64_t k = 5);
  std::string name() const override { return "sparse_top_k_categorical_accuracy"; }
  void add_batch_sum(const Tensor& y_true, const Tensor& y_pred, Tensor& sum) const override;

 private:
  int64_t k_;
};

/// The mean over a sample's elements of |y_pred - y_true|.
class MeanAbsoluteError : public Metric {
 public:
  std::string name() const override { return "mean_absolute_error"; }
  void add_batch_sum(const Tensor& y_true, const Tensor& y_pred, Tensor& sum) const override;
};

/// The mean over a sample's elements of (y_pred - y_true)^2.
class MeanSquaredError : public Metric {
 public:
  std::string name() const override { return "mean_squared_error"; }
  void add_batch_sum(const Tensor& y_true, const Tensor& y_pred, Tensor& sum) const override;
};
}  // namespace metrics

}  // namespace kiln
