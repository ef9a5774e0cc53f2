// Pieces the losses share: Keras' epsilon, the logits behind a softmax or sigmoid output (Keras'
// `_keras_logits`) and its warning, and the checks of float targets.
#pragma once

#include <string>

#include "kiln/shape.h"
#include "kiln/tensor.h"

namespace kiln::losses::detail {

/// Keras' backend.epsilon(): probabilities are clipped to [kEpsilon, 1 - kEpsilon] before a log.
inline constexpr double kEpsilon = 1e-7;

/// The input of the softmax or sigmoid activation that produced `y_pred`, or an undefined Tensor.
/// Keras 3 scores such a prediction from these logits whatever from_logits says; when from_logits
/// is true it also warns (once per process and loss) that the output does not represent logits:
/// `fn` is the loss function's name and `op_type` the activation Keras names ("Softmax").
Tensor activation_logits(const Tensor& y_pred, bool from_logits, const std::string& fn, const std::string& op_type);

/// `y` as float targets of per-sample shape `output_shape`: integers become float32, and a shape of
/// as many elements is reshaped (Keras squeezes or expands [N] against [N, 1]); `loss` names the
/// loss in errors.
Tensor float_targets(const Tensor& y, const Shape& output_shape, const std::string& op, const std::string& loss);

/// Throws unless every value of `y` lies in [0, 1] (probabilities, one-hot rows or 0/1 labels),
/// naming the first that does not; `what` says what the targets are ("one-hot targets").
void check_unit_interval(const Tensor& y, const std::string& op, const std::string& loss, const std::string& what);

/// Throws unless `value` is finite and in [0, 1]: a loss' label_smoothing.
void check_label_smoothing(const std::string& loss, double value);

/// The shortest text that reads back as `v` of `dtype` (3.7 for a float32 3.7).
std::string shortest(double v, DType dtype);

/// Each element of `s` [rows] repeated over `cols` columns: [rows, cols] (Keras' keepdims
/// broadcast), differentiable; a rank-1 product, as the sum's own backward broadcasts.
Tensor repeat_columns(const Tensor& s, int64_t cols);

}  // namespace kiln::losses::detail
