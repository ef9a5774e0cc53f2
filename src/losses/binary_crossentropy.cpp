// BinaryCrossentropy: Keras 3's binary_crossentropy with label smoothing, the mean over all
// elements. From logits (or the logits behind a sigmoid or softmax output) through
// sigmoid_cross_entropy; from probabilities clipped to [eps, 1 - eps] as TensorFlow does it.
#include "io/json_fields.h"
#include "kiln/error.h"
#include "kiln/losses.h"
#include "kiln/ops.h"
#include "losses/loss_util.h"

namespace kiln::losses {

namespace {
constexpr const char* kName = "binary_crossentropy";
}

BinaryCrossentropy::BinaryCrossentropy(BinaryCrossentropyOptions options) : options_(options) {
  detail::check_label_smoothing("BinaryCrossentropy", options_.label_smoothing);
}

Tensor BinaryCrossentropy::operator()(const Tensor& y_true, const Tensor& y_pred) const {
  if (y_true.numel() != y_pred.numel() || y_pred.numel() == 0)
    throw Error(kName, "targets have shape " + y_true.shape().str() + " and predictions " + y_pred.shape().str() +
                           "; expected one target per prediction");
  Tensor target = y_true.shape() == y_pred.shape() ? y_true : y_true.reshape(y_pred.shape());
  const double s = options_.label_smoothing;
  if (s != 0.0) target = add(mul(target, 1.0 - s), 0.5 * s);
  Tensor logits = detail::activation_logits(y_pred, options_.from_logits, kName, "Sigmoid");
  if (!logits.defined() && options_.from_logits) logits = y_pred;
  if (logits.defined()) return mean(sigmoid_cross_entropy(logits, target));
  const Tensor p = clip(y_pred, detail::kEpsilon, 1.0 - detail::kEpsilon);
  // -(z log p + (1 - z) log(1 - p)), averaged: the mean of the bracket, negated.
  const Tensor bce = add(mul(target, log(p)), mul(add(neg(target), 1.0), log(add(neg(p), 1.0))));
  return neg(mean(bce));
}

Tensor BinaryCrossentropy::prepare_targets(const Tensor& y, const Shape& output_shape, const std::string& op) const {
  Tensor t = detail::float_targets(y, output_shape, op, kName);
  detail::check_unit_interval(t, op, kName, "0/1 labels or probabilities in [0, 1]");
  return t;
}

BinaryCrossentropy BinaryCrossentropy::from_config(const Config& config) {
  const io::JsonFields f(config, "the BinaryCrossentropy config", "from_config");
  return BinaryCrossentropy({.from_logits = f.has("from_logits") && f.boolean("from_logits"),
                             .label_smoothing = f.has("label_smoothing") ? f.number("label_smoothing") : 0.0});
}

namespace {
const RegisterLoss<BinaryCrossentropy> registered("BinaryCrossentropy", {"binary_crossentropy", "bce", "BCE"});
}

}  // namespace kiln::losses
