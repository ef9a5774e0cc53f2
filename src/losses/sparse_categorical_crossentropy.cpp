// SparseCategoricalCrossentropy: from logits through the fused log-softmax kernel; from
// probabilities the way Keras 3 (TensorFlow) does it: when the predictions come straight from a
// softmax or sigmoid activation, from that activation's input, which Keras then treats as logits
// whatever from_logits says (warning once when from_logits=true); else clip to [eps, 1 - eps], log,
// then the same kernel. label_smoothing (a kiln extension) adds the smoothed targets' spread term.
#include <cmath>

#include "io/json_fields.h"
#include "kiln/error.h"
#include "kiln/losses.h"
#include "kiln/ops.h"
#include "losses/loss_util.h"

namespace kiln::losses {

SparseCategoricalCrossentropy::SparseCategoricalCrossentropy(SparseCategoricalCrossentropyOptions options)
    : options_(options) {
  detail::check_label_smoothing("SparseCategoricalCrossentropy", options_.label_smoothing);
}

Tensor SparseCategoricalCrossentropy::operator()(const Tensor& y_true, const Tensor& y_pred) const {
  if (y_pred.ndim() != 2)
    throw Error("sparse_categorical_crossentropy",
                "predictions have shape " + y_pred.shape().str() + "; expected [batch, classes]");
  const Tensor labels = y_true.ndim() == 2 && y_true.size(1) == 1 ? y_true.reshape({y_true.size(0)}) : y_true;
  // Straight from a softmax or sigmoid activation: Keras uses the activation's input as the logits,
  // with either from_logits (so a sigmoid output is scored as if it were a softmax's).
  Tensor logits = detail::activation_logits(y_pred, options_.from_logits, "sparse_categorical_crossentropy", "Softmax");
  if (!logits.defined())
    logits = options_.from_logits ? y_pred : log(clip(y_pred, detail::kEpsilon, 1.0 - detail::kEpsilon));
  Tensor sparse = sparse_softmax_cross_entropy(logits, labels);
  const double s = options_.label_smoothing;
  if (s == 0.0) return sparse;
  // Smoothed one-hot targets: (1 - s) on the label's term plus s / classes on every class's, whose
  // mean over rows is s times the mean of -log_softmax over all elements.
  return add(mul(sparse, 1.0 - s), mul(mean(log_softmax(logits)), -s));
}

Tensor SparseCategoricalCrossentropy::prepare_targets(const Tensor& y, const Shape& output_shape,
                                                      const std::string& op) const {
  if (output_shape.ndim() != 1)
    throw Error(op, "sparse_categorical_crossentropy needs per-sample outputs [classes]; the model outputs " +
                        output_shape.str());
  if (y.ndim() == 0 || y.ndim() > 2 || (y.ndim() == 2 && y.size(1) != 1))
    throw Error(op, "y has shape " + y.shape().str() + "; expected class indices [N] or [N, 1]");
  const Tensor flat = y.reshape({y.size(0)});
  const int64_t classes = output_shape[0];
  const std::vector<double> values = flat.to_vector<double>();
  const std::string range = "[0, " + std::to_string(classes) + ")";
  for (std::size_t i = 0; i < values.size(); ++i) {
    const double v = values[i];
    const std::string label = "label " + detail::shortest(v, flat.dtype()) + " at index " + std::to_string(i);
    if (std::isnan(v) || v != std::floor(v))  // inf == floor(inf): the range check takes it
      throw Error(op, label + " is not an integer; expected integer class indices in " + range + " for a model with " +
                          std::to_string(classes) + " outputs");
    if (!(v >= 0 && v < static_cast<double>(classes)))
      throw Error(op, label + " is outside " + range + "; expected integer class indices for a model with " +
                          std::to_string(classes) + " outputs");
  }
  return flat.dtype() == DType::Int32 ? flat : flat.astype(DType::Int32);
}

SparseCategoricalCrossentropy SparseCategoricalCrossentropy::from_config(const Config& config) {
  const io::JsonFields f(config, "the SparseCategoricalCrossentropy config", "from_config");
  return SparseCategoricalCrossentropy(
      {.from_logits = f.has("from_logits") && f.boolean("from_logits"),
       .label_smoothing = f.has("label_smoothing") ? f.number("label_smoothing") : 0.0});
}

namespace {
const RegisterLoss<SparseCategoricalCrossentropy> registered("SparseCategoricalCrossentropy",
                                                             {"sparse_categorical_crossentropy"});
}

}  // namespace kiln::losses
