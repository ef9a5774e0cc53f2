// SparseCategoricalCrossentropy: from logits through the fused log-softmax kernel; from
// probabilities the way TensorFlow's Keras does it: from the softmax's own logits when the
// probabilities come straight from a softmax activation, else clip to [eps, 1 - eps], log, then the
// same kernel.
#include <cmath>

#include "kiln/error.h"
#include "kiln/losses.h"
#include "kiln/ops.h"
#include "tensor/tensor_impl.h"

namespace kiln::losses {

namespace {
constexpr double kEpsilon = 1e-7;  // Keras' backend.epsilon()
}

Tensor SparseCategoricalCrossentropy::operator()(const Tensor& y_true, const Tensor& y_pred) const {
  if (y_pred.ndim() != 2)
    throw Error("sparse_categorical_crossentropy",
                "predictions have shape " + y_pred.shape().str() + "; expected [batch, classes]");
  const Tensor labels = y_true.ndim() == 2 && y_true.size(1) == 1 ? y_true.reshape({y_true.size(0)}) : y_true;
  if (options_.from_logits) return sparse_softmax_cross_entropy(y_pred, labels);
  // Probabilities straight from a softmax activation: use its logits, as Keras does.
  if (y_pred.impl()->keras_logits.defined()) return sparse_softmax_cross_entropy(y_pred.impl()->keras_logits, labels);
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
  for (std::size_t i = 0; i < values.size(); ++i) {
    const double v = values[i];
    if (!(v >= 0 && v < static_cast<double>(classes)) || v != std::floor(v))
      throw Error(op, "label " + std::to_string(v) + " at index " + std::to_string(i) + " is outside [0, " +
                          std::to_string(classes) + "); expected integer class indices for a model with " +
                          std::to_string(classes) + " outputs");
  }
  return flat.dtype() == DType::Int32 ? flat : flat.astype(DType::Int32);
}

}  // namespace kiln::losses
