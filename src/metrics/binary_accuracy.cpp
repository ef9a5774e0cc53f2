// Binary accuracy: (y_pred > threshold) equals the 0/1 target, elementwise.
#include "backend/backend.h"
#include "kiln/autograd.h"
#include "kiln/metrics.h"
#include "metrics/metric_util.h"

namespace kiln::metrics {

void BinaryAccuracy::add_batch_sum(const Tensor& y_true, const Tensor& y_pred, Tensor& sum) const {
  NoGradGuard no_grad;
  detail::check_same_size("binary_accuracy", y_true, y_pred);
  const Tensor pred = detail::as_float32(y_pred), targets = detail::as_float32(y_true);
  backend::get(pred.device())
      .binary_accuracy_sum(DType::Float32, pred.raw_data(), targets.raw_data(), sum.raw_data(), pred.numel(),
                           threshold_, 1.0 / static_cast<double>(detail::per_sample(pred)));
}

namespace {
const RegisterMetric<BinaryAccuracy> registered("binary_accuracy");
}

}  // namespace kiln::metrics
