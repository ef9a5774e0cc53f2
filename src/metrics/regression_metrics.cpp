// Mean absolute and mean squared error as metrics: each sample's mean over its elements, summed on
// the device.
#include "kiln/autograd.h"
#include "kiln/metrics.h"
#include "kiln/ops.h"
#include "metrics/metric_util.h"

namespace kiln::metrics {

namespace {
// sum over the batch of each sample's mean of f(y_pred - y_true).
template <typename F>
void add_error_sum(const char* metric, const Tensor& y_true, const Tensor& y_pred, Tensor& sum, F&& f) {
  NoGradGuard no_grad;
  detail::check_same_size(metric, y_true, y_pred);
  const Tensor pred = detail::as_float32(y_pred);
  const Tensor target = detail::as_float32(y_true).reshape(pred.shape());
  detail::add_into(sum, kiln::sum(f(sub(pred, target))), 1.0 / static_cast<double>(detail::per_sample(pred)));
}
}  // namespace

void MeanAbsoluteError::add_batch_sum(const Tensor& y_true, const Tensor& y_pred, Tensor& sum) const {
  add_error_sum("mean_absolute_error", y_true, y_pred, sum, [](const Tensor& e) { return abs(e); });
}

void MeanSquaredError::add_batch_sum(const Tensor& y_true, const Tensor& y_pred, Tensor& sum) const {
  add_error_sum("mean_squared_error", y_true, y_pred, sum, [](const Tensor& e) { return square(e); });
}

namespace {
const RegisterMetric<MeanAbsoluteError> registered_mae("mean_absolute_error", {"mae", "MAE"});
const RegisterMetric<MeanSquaredError> registered_mse("mean_squared_error", {"mse", "MSE"});
}  // namespace

}  // namespace kiln::metrics
