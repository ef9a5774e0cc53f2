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
/// A metric by name or alias; throws naming the known ones.
std::shared_ptr<const Metric> get(const std::string& name);
}  // namespace metrics

}  // namespace kiln
