// MeanAbsoluteError: mean(|y_pred - y_true|).
#include "io/json_fields.h"
#include "kiln/error.h"
#include "kiln/losses.h"
#include "kiln/ops.h"
#include "losses/loss_util.h"

namespace kiln::losses {

Tensor MeanAbsoluteError::operator()(const Tensor& y_true, const Tensor& y_pred) const {
  if (y_true.numel() != y_pred.numel() || y_pred.numel() == 0)
    throw Error("mean_absolute_error", "targets have shape " + y_true.shape().str() + " and predictions " +
                                           y_pred.shape().str() + "; expected one target per prediction");
  const Tensor target = y_true.shape() == y_pred.shape() ? y_true : y_true.reshape(y_pred.shape());
  return mean(abs(sub(y_pred, target)));
}

Tensor MeanAbsoluteError::prepare_targets(const Tensor& y, const Shape& output_shape, const std::string& op) const {
  return detail::float_targets(y, output_shape, op, "mean_absolute_error");
}

MeanAbsoluteError MeanAbsoluteError::from_config(const Config& config) {
  const io::JsonFields fields(config, "the MeanAbsoluteError config", "from_config");  // must be an object
  (void)fields;
  return {};
}

namespace {
const RegisterLoss<MeanAbsoluteError> registered("MeanAbsoluteError", {"mean_absolute_error", "mae", "MAE"});
}

}  // namespace kiln::losses
