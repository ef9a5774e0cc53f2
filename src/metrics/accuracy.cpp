// The metric registry; "accuracy" (chosen from the shapes, as Keras 3 does) and sparse categorical
// accuracy: the argmax of a prediction row equals the integer label.
#include "backend/backend.h"
#include "kiln/autograd.h"
#include "kiln/error.h"
#include "kiln/metrics.h"
#include "metrics/metric_util.h"

namespace kiln {

Registry<std::shared_ptr<const Metric>>& metric_registry() {
  static Registry<std::shared_ptr<const Metric>> registry("metric");
  return registry;
}

namespace metrics {
namespace {

// A metric under the name compile was given: Keras 3 logs "acc" as "acc", "mae" as "mae".
class Renamed : public Metric {
 public:
  Renamed(std::shared_ptr<const Metric> inner, std::string name) : inner_(std::move(inner)), name_(std::move(name)) {}
  std::string name() const override { return name_; }
  void add_batch_sum(const Tensor& y_true, const Tensor& y_pred, Tensor& sum) const override {
    inner_->add_batch_sum(y_true, y_pred, sum);
  }

 private:
  std::shared_ptr<const Metric> inner_;
  std::string name_;
};

}  // namespace

std::shared_ptr<const Metric> get(const std::string& name) {
  if (!metric_registry().contains(name)) throw Error("compile", metric_registry().unknown(name));
  std::shared_ptr<const Metric> metric = metric_registry().make(name, Config::object());
  if (metric->name() == name) return metric;
  return std::make_shared<Renamed>(std::move(metric), name);
}

void Accuracy::add_batch_sum(const Tensor& y_true, const Tensor& y_pred, Tensor& sum) const {
  const int64_t pred_last = y_pred.ndim() ? y_pred.size(y_pred.ndim() - 1) : 1;
  const int64_t true_last = y_true.ndim() ? y_true.size(y_true.ndim() - 1) : 1;
  if (pred_last == 1) {
    const Tensor targets = is_compute_floating(y_true.dtype()) ? y_true : y_true.astype(DType::Float32);
    BinaryAccuracy().add_batch_sum(targets, y_pred, sum);
  } else if (y_true.ndim() < y_pred.ndim() || true_last == 1) {
    SparseCategoricalAccuracy().add_batch_sum(y_true, y_pred, sum);
  } else {
    CategoricalAccuracy().add_batch_sum(y_true, y_pred, sum);
  }
}

void SparseCategoricalAccuracy::add_batch_sum(const Tensor& y_true, const Tensor& y_pred, Tensor& sum) const {
  NoGradGuard no_grad;
  const int64_t n = y_pred.ndim() ? y_pred.size(0) : 0;
  const Tensor pred = detail::as_float32(y_pred);
  if (y_true.dtype() != DType::Int32 || pred.ndim() != 2 || y_true.numel() != n)
    throw Error("sparse_categorical_accuracy",
                "needs integer class labels [N] and predictions [N, classes]; got labels " + y_true.shape().str() +
                    " " + dtype_name(y_true.dtype()) + " and predictions " + pred.shape().str());
  const Tensor labels = y_true.reshape({n});
  backend::get(pred.device())
      .accuracy_sum(DType::Float32, pred.raw_data(), static_cast<const int32_t*>(labels.raw_data()), sum.raw_data(), n,
                    pred.size(1));
}

namespace {
const RegisterMetric<Accuracy> registered_accuracy("accuracy", {"acc"});
const RegisterMetric<SparseCategoricalAccuracy> registered_sparse("sparse_categorical_accuracy");
}  // namespace

}  // namespace metrics
}  // namespace kiln
