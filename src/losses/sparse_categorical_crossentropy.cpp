// SparseCategoricalCrossentropy: from logits through the fused log-softmax kernel; from
// probabilities the way Keras 3 (TensorFlow) does it: when the predictions come straight from a
// softmax or sigmoid activation, from that activation's input, which Keras then treats as logits
// whatever from_logits says (warning once when from_logits=true); else clip to [eps, 1 - eps], log,
// then the same kernel.
#include <charconv>
#include <cmath>
#include <iostream>
#include <mutex>

#include "io/json_fields.h"
#include "kiln/error.h"
#include "kiln/losses.h"
#include "kiln/ops.h"
#include "tensor/tensor_impl.h"

namespace kiln::losses {

namespace {
constexpr double kEpsilon = 1e-7;  // Keras' backend.epsilon()

// The shortest text that reads back as the label's own value (3.7 for a float32 3.7, not
// 3.700000047683716), so a message shows the number as the user wrote it.
std::string shortest(double v, DType dtype) {
  char buf[64];
  const auto res = dtype == DType::Float32 ? std::to_chars(buf, buf + sizeof buf, static_cast<float>(v))
                                           : std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, res.ptr);
}

// Keras' warning (keras/src/backend/tensorflow/nn.py, _get_logits), shown once per process as
// Python shows a warning once per place.
void warn_logits_of_activation() {
  static std::once_flag once;
  std::call_once(once, [] {
    const std::string line =
        "kiln: warning: [sparse_categorical_crossentropy] `sparse_categorical_crossentropy` received "
        "`from_logits=True`, but the `output` argument was produced by a Softmax activation and thus does not "
        "represent logits. Was this intended?\n";
    std::cerr << line << std::flush;
  });
}
}  // namespace

Tensor SparseCategoricalCrossentropy::operator()(const Tensor& y_true, const Tensor& y_pred) const {
  if (y_pred.ndim() != 2)
    throw Error("sparse_categorical_crossentropy",
                "predictions have shape " + y_pred.shape().str() + "; expected [batch, classes]");
  const Tensor labels = y_true.ndim() == 2 && y_true.size(1) == 1 ? y_true.reshape({y_true.size(0)}) : y_true;
  // Straight from a softmax or sigmoid activation: Keras uses the activation's input as the logits,
  // with either from_logits (so a sigmoid output is scored as if it were a softmax's).
  if (const Tensor& logits = y_pred.impl()->keras_logits; logits.defined()) {
    if (options_.from_logits) warn_logits_of_activation();
    return sparse_softmax_cross_entropy(logits, labels);
  }
  if (options_.from_logits) return sparse_softmax_cross_entropy(y_pred, labels);
  return sparse_softmax_cross_entropy(log(clip(y_pred, kEpsilon, 1.0 - kEpsilon)), labels);
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
    const std::string label = "label " + shortest(v, flat.dtype()) + " at index " + std::to_string(i);
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
  return SparseCategoricalCrossentropy({.from_logits = f.has("from_logits") && f.boolean("from_logits")});
}

namespace {
const RegisterLoss<SparseCategoricalCrossentropy> registered("SparseCategoricalCrossentropy",
                                                             {"sparse_categorical_crossentropy"});
}

}  // namespace kiln::losses
