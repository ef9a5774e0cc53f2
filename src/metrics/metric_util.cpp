// Pieces the metrics share (see metric_util.h).
#include "metrics/metric_util.h"

#include "backend/backend.h"
#include "kiln/error.h"

namespace kiln::metrics::detail {

Tensor as_float32(const Tensor& t) {
  return t.dtype() == DType::Float32 ? t.detach() : t.detach().astype(DType::Float32);
}

void add_into(Tensor& sum, const Tensor& value, double scale) {
  auto& be = backend::get(sum.device());
  if (scale == 1.0) {
    be.binary(backend::BinaryOp::Add, DType::Float32, sum.raw_data(), 1, value.raw_data(), 1, sum.raw_data(), 1);
    return;
  }
  Tensor scaled = Tensor::zeros({}, DType::Float32, sum.device());
  be.affine(DType::Float32, value.raw_data(), scale, 0.0, scaled.raw_data(), 1);
  be.binary(backend::BinaryOp::Add, DType::Float32, sum.raw_data(), 1, scaled.raw_data(), 1, sum.raw_data(), 1);
}

void check_same_size(const std::string& metric, const Tensor& y_true, const Tensor& y_pred) {
  if (y_pred.ndim() == 0 || y_true.numel() != y_pred.numel() || !is_floating(y_true.dtype()))
    throw Error(metric, "targets " + y_true.shape().str() + " " + dtype_name(y_true.dtype()) + " and predictions " +
                            y_pred.shape().str() + "; expected float targets of the predictions' shape");
}

int64_t per_sample(const Tensor& y_pred) {
  const int64_t n = y_pred.ndim() ? y_pred.size(0) : 1;
  return n ? std::max<int64_t>(1, y_pred.numel() / n) : 1;
}

}  // namespace kiln::metrics::detail
