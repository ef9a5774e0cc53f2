// MeanSquaredError: mean((y_pred - y_true)^2).
#include "io/json_fields.h"
#include "kiln/error.h"
#include "kiln/losses.h"
#include "kiln/ops.h"

namespace kiln::losses {

Tensor MeanSquaredError::operator()(const Tensor& y_true, const Tensor& y_pred) const {
  const Tensor target =
      y_true.shape() == y_pred.shape() || y_true.numel() != y_pred.numel() ? y_true : y_true.reshape(y_pred.shape());
  return mse(y_pred, target);
}

Tensor MeanSquaredError::prepare_targets(const Tensor& y, const Shape& output_shape, const std::string& op) const {
  if (y.ndim() == 0) throw Error(op, "y is a scalar; expected one target per sample [N, ...]");
  Tensor t = is_compute_floating(y.dtype()) ? y : y.astype(DType::Float32);
  const Shape per_sample = t.shape().drop_front();
  if (per_sample == output_shape) return t;
  if (per_sample.numel() == output_shape.numel()) return t.reshape(output_shape.prepend(t.size(0)));
  throw Error(op, "y has per-sample shape " + per_sample.str() + " but the model outputs " + output_shape.str() +
                      "; expected targets of the output's shape");
}

MeanSquaredError MeanSquaredError::from_config(const Config& config) {
  const io::JsonFields fields(config, "the MeanSquaredError config", "from_config");  // must be an object
  (void)fields;
  return {};
}

namespace {
const RegisterLoss<MeanSquaredError> registered("MeanSquaredError", {"mean_squared_error", "mse"});
}

}  // namespace kiln::losses
