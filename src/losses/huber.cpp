// Huber: 0.5 e^2 where |e| <= delta, else delta |e| - 0.5 delta^2, averaged over elements. Written
// without a select: with q = min(|e|, delta), the loss is 0.5 q^2 + delta (|e| - q), equal on both
// branches, and its gradient is e inside and delta sign(e) outside, as Keras' where() gives.
#include <cmath>

#include "io/json_fields.h"
#include "kiln/error.h"
#include "kiln/losses.h"
#include "kiln/ops.h"
#include "losses/loss_util.h"

namespace kiln::losses {

Huber::Huber(HuberOptions options) : options_(options) {
  if (!(std::isfinite(options_.delta) && options_.delta > 0.0))
    throw Error("Huber",
                "delta is " + detail::shortest(options_.delta, DType::Float64) + "; expected a positive finite number");
}

Tensor Huber::operator()(const Tensor& y_true, const Tensor& y_pred) const {
  if (y_true.numel() != y_pred.numel() || y_pred.numel() == 0)
    throw Error("huber_loss", "targets have shape " + y_true.shape().str() + " and predictions " +
                                  y_pred.shape().str() + "; expected one target per prediction");
  const Tensor target = y_true.shape() == y_pred.shape() ? y_true : y_true.reshape(y_pred.shape());
  const double d = options_.delta;
  const Tensor abs_error = abs(sub(y_pred, target));
  const Tensor q = clip(abs_error, 0.0, d);
  return mean(add(mul(square(q), 0.5), mul(sub(abs_error, q), d)));
}

Tensor Huber::prepare_targets(const Tensor& y, const Shape& output_shape, const std::string& op) const {
  return detail::float_targets(y, output_shape, op, "huber_loss");
}

Huber Huber::from_config(const Config& config) {
  const io::JsonFields f(config, "the Huber config", "from_config");
  return Huber({.delta = f.has("delta") ? f.number("delta") : 1.0});
}

namespace {
const RegisterLoss<Huber> registered("Huber", {"huber"});
}

}  // namespace kiln::losses
