// Sparse categorical accuracy ("accuracy" in compile): the argmax of a prediction row equals the
// integer label; and the metric registry.
#include "backend/backend.h"
#include "kiln/autograd.h"
#include "kiln/error.h"
#include "kiln/metrics.h"

namespace kiln {

Registry<std::shared_ptr<const Metric>>& metric_registry() {
  static Registry<std::shared_ptr<const Metric>> registry("metric");
  return registry;
}

std::shared_ptr<const Metric> metrics::get(const std::string& name) {
  if (!metric_registry().contains(name)) throw Error("compile", metric_registry().unknown(name));
  return metric_registry().make(name, Config::object());
}

namespace metrics {
namespace {

class SparseCategoricalAccuracy : public Metric {
 public:
  std::string name() const override { return "accuracy"; }
  void add_batch_sum(const Tensor& y_true, const Tensor& y_pred, Tensor& sum) const override {
    NoGradGuard no_grad;
    const int64_t n = y_pred.size(0);
    const Tensor pred = y_pred.dtype() == DType::Float32 ? y_pred.detach() : y_pred.detach().astype(DType::Float32);
    const Tensor labels = y_true.reshape({n});
    if (labels.dtype() != DType::Int32 || pred.ndim() != 2)
      throw Error("accuracy", "needs integer class labels [N] and predictions [N, classes]; got labels " +
                                  labels.shape().str() + " " + dtype_name(labels.dtype()) + " and predictions " +
                                  pred.shape().str());
    backend::get(pred.device())
        .accuracy_sum(DType::Float32, pred.raw_data(), static_cast<const int32_t*>(labels.raw_data()), sum.raw_data(),
                      n, pred.size(1));
  }
};

const RegisterMetric<SparseCategoricalAccuracy> registered("accuracy", {"acc", "sparse_categorical_accuracy"});

}  // namespace
}  // namespace metrics
}  // namespace kiln
