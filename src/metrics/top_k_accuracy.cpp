// Sparse top-k categorical accuracy: the integer label is among the k largest predictions of its row.
#include "backend/backend.h"
#include "kiln/autograd.h"
#include "kiln/error.h"
#include "kiln/metrics.h"
#include "metrics/metric_util.h"

namespace kiln::metrics {

SparseTopKCategoricalAccuracy::SparseTopKCategoricalAccuracy(int64_t k) : k_(k) {
  if (k < 1) throw Error("sparse_top_k_categorical_accuracy", "k is " + std::to_string(k) + "; expected at least 1");
}

void SparseTopKCategoricalAccuracy::add_batch_sum(const Tensor& y_true, const Tensor& y_pred, Tensor& sum) const {
  NoGradGuard no_grad;
  const int64_t n = y_pred.ndim() ? y_pred.size(0) : 0;
  const Tensor pred = detail::as_float32(y_pred);
  if (y_true.dtype() != DType::Int32 || pred.ndim() != 2 || y_true.numel() != n)
    throw Error("sparse_top_k_categorical_accuracy",
                "needs integer class labels [N] and predictions [N, classes]; got labels " + y_true.shape().str() +
                    " " + dtype_name(y_true.dtype()) + " and predictions " + pred.shape().str());
  backend::get(pred.device())
      .in_top_k_sum(DType::Float32, pred.raw_data(), static_cast<const int32_t*>(y_true.raw_data()), sum.raw_data(), n,
                    pred.size(1), k_);
}

namespace {
const RegisterMetric<SparseTopKCategoricalAccuracy> registered("sparse_top_k_categorical_accuracy");
}

}  // namespace kiln::metrics
