// CategoricalCrossentropy: Keras 3's categorical_crossentropy with label smoothing, on one-hot or
// probability targets of the predictions' shape. From logits (or the logits behind a softmax or
// sigmoid output) through log_softmax; from probabilities as TensorFlow does it: rows divided by
// their sums, clipped to [eps, 1 - eps], then the log.
#include <cmath>

#include "io/json_fields.h"
#include "kiln/error.h"
#include "kiln/losses.h"
#include "kiln/ops.h"
#include "losses/loss_util.h"

namespace kiln::losses {

namespace {
constexpr const char* kName = "categorical_crossentropy";
}

CategoricalCrossentropy::CategoricalCrossentropy(CategoricalCrossentropyOptions options) : options_(options) {
  detail::check_label_smoothing("CategoricalCrossentropy", options_.label_smoothing);
  if (options_.axis != -1)
    throw Error("CategoricalCrossentropy",
                "axis is " + std::to_string(options_.axis) + "; expected -1 (the classes on the last axis)");
}

Tensor CategoricalCrossentropy::operator()(const Tensor& y_true, const Tensor& y_pred) const {
  if (y_pred.ndim() < 1 || y_true.shape() != y_pred.shape())
    throw Error(kName, "targets have shape " + y_true.shape().str() + " and predictions " + y_pred.shape().str() +
                           "; expected equal shapes [batch, ..., classes]");
  const int64_t classes = y_pred.size(y_pred.ndim() - 1);
  const Shape rows_shape{y_pred.numel() / classes, classes};
  Tensor target = y_true.reshape(rows_shape);
  const double s = options_.label_smoothing;
  if (s != 0.0) target = add(mul(target, 1.0 - s), s / static_cast<double>(classes));
  // -sum over a row of t log q, averaged over rows: the sum over everything over the row count.
  const double scale = -1.0 / static_cast<double>(rows_shape[0]);
  Tensor logits = detail::activation_logits(y_pred, options_.from_logits, kName, "Softmax");
  if (!logits.defined() && options_.from_logits) logits = y_pred;
  if (logits.defined()) return mul(sum(mul(target, log_softmax(logits.reshape(rows_shape)))), scale);
  const Tensor p = y_pred.reshape(rows_shape);
  const Tensor q = div(p, detail::repeat_columns(sum(p, -1), classes));
  return mul(sum(mul(target, log(clip(q, detail::kEpsilon, 1.0 - detail::kEpsilon)))), scale);
}

Tensor CategoricalCrossentropy::prepare_targets(const Tensor& y, const Shape& output_shape,
                                                const std::string& op) const {
  if (output_shape.ndim() < 1)
    throw Error(op, "categorical_crossentropy needs per-sample outputs [..., classes]; the model outputs " +
                        output_shape.str());
  const Shape per_sample = y.ndim() ? y.shape().drop_front() : Shape{};
  if (y.ndim() == 0 || per_sample != output_shape) {
    const bool looks_sparse = y.ndim() == 1 || (y.ndim() == 2 && y.size(1) == 1 && output_shape.numel() > 1);
    throw Error(op, "y has shape " + y.shape().str() + " for a model that outputs " + output_shape.str() +
                        "; expected one-hot targets of the output's shape [N, " + output_shape.str().substr(1) +
                        (looks_sparse ? " (for integer class indices use sparse_categorical_crossentropy)" : ""));
  }
  Tensor t = is_compute_floating(y.dtype()) ? y : y.astype(DType::Float32);
  detail::check_unit_interval(t, op, kName, "one-hot or probability targets in [0, 1]");
  return t;
}

CategoricalCrossentropy CategoricalCrossentropy::from_config(const Config& config) {
  const io::JsonFields f(config, "the CategoricalCrossentropy config", "from_config");
  return CategoricalCrossentropy({.from_logits = f.has("from_logits") && f.boolean("from_logits"),
                                  .label_smoothing = f.has("label_smoothing") ? f.number("label_smoothing") : 0.0,
                                  .axis = f.has("axis") ? f.integer("axis", INT64_MIN, INT64_MAX) : -1});
}

namespace {
const RegisterLoss<CategoricalCrossentropy> registered("CategoricalCrossentropy", {"categorical_crossentropy"});
}

}  // namespace kiln::losses
