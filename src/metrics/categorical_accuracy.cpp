// Categorical accuracy: the argmax of a prediction row equals the argmax of its one-hot target row.
#include "backend/backend.h"
#include "kiln/autograd.h"
#include "kiln/error.h"
#include "kiln/metrics.h"
#include "kiln/ops.h"
#include "metrics/metric_util.h"

namespace kiln::metrics {

void CategoricalAccuracy::add_batch_sum(const Tensor& y_true, const Tensor& y_pred, Tensor& sum) const {
  NoGradGuard no_grad;
  if (y_pred.ndim() < 2 || y_true.shape() != y_pred.shape())
    throw Error("categorical_accuracy", "needs one-hot targets and predictions of one shape [N, ..., classes]; got " +
                                            y_true.shape().str() + " and " + y_pred.shape().str());
  const int64_t classes = y_pred.size(y_pred.ndim() - 1), rows = y_pred.numel() / classes;
  const Tensor pred = detail::as_float32(y_pred).reshape({rows, classes});
  const Tensor labels = argmax(detail::as_float32(y_true).reshape({rows, classes}));
  auto& be = backend::get(pred.device());
  const int64_t rows_per_sample = rows / y_pred.size(0);
  if (rows_per_sample == 1) {
    be.accuracy_sum(DType::Float32, pred.raw_data(), static_cast<const int32_t*>(labels.raw_data()), sum.raw_data(),
                    rows, classes);
    return;
  }
  // Keras averages each sample's rows first: count, then scale the count once.
  Tensor count = Tensor::zeros({}, DType::Float32, pred.device());
  be.accuracy_sum(DType::Float32, pred.raw_data(), static_cast<const int32_t*>(labels.raw_data()), count.raw_data(),
                  rows, classes);
  detail::add_into(sum, count, 1.0 / static_cast<double>(rows_per_sample));
}

namespace {
const RegisterMetric<CategoricalAccuracy> registered("categorical_accuracy");
}

}  // namespace kiln::metrics
