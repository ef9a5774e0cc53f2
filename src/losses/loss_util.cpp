// Pieces the losses share (see loss_util.h).
#include "losses/loss_util.h"

#include <charconv>
#include <cmath>
#include <iostream>
#include <mutex>
#include <set>

#include "kiln/error.h"
#include "kiln/ops.h"
#include "tensor/tensor_impl.h"

namespace kiln::losses::detail {

Tensor activation_logits(const Tensor& y_pred, bool from_logits, const std::string& fn, const std::string& op_type) {
  const Tensor& logits = y_pred.impl()->keras_logits;
  if (!logits.defined() || !from_logits) return logits;
  // Keras' warning (keras/src/backend/tensorflow/nn.py, _get_logits), shown once per loss per
  // process as Python shows a warning once per place.
  static std::mutex mutex;
  static std::set<std::string> warned;
  const std::lock_guard<std::mutex> lock(mutex);
  if (warned.insert(fn).second)
    std::cerr << "kiln: warning: [" + fn + "] `" + fn + "` received `from_logits=True`, but the `output` argument " +
                     "was produced by a " + op_type +
                     " activation and thus does not represent logits. Was this intended?\n"
              << std::flush;
  return logits;
}

Tensor float_targets(const Tensor& y, const Shape& output_shape, const std::string& op, const std::string& loss) {
  if (y.ndim() == 0) throw Error(op, "y is a scalar; expected one target per sample [N, ...] for " + loss);
  Tensor t = is_compute_floating(y.dtype()) ? y : y.astype(DType::Float32);
  const Shape per_sample = t.shape().drop_front();
  if (per_sample == output_shape) return t;
  if (per_sample.numel() == output_shape.numel()) return t.reshape(output_shape.prepend(t.size(0)));
  throw Error(op, "y has per-sample shape " + per_sample.str() + " but the model outputs " + output_shape.str() +
                      "; expected targets of the output's shape for " + loss);
}

void check_unit_interval(const Tensor& y, const std::string& op, const std::string& loss, const std::string& what) {
  const std::vector<double> values = y.to_vector<double>();
  for (std::size_t i = 0; i < values.size(); ++i)
    if (!(values[i] >= 0.0 && values[i] <= 1.0))  // NaN fails both
      throw Error(op, "target " + shortest(values[i], y.dtype()) + " at flat index " + std::to_string(i) + " of y " +
                          y.shape().str() + " is outside [0, 1]; expected " + what + " for " + loss);
}

void check_label_smoothing(const std::string& loss, double value) {
  if (!(value >= 0.0 && value <= 1.0))
    throw Error(loss, "label_smoothing is " + shortest(value, DType::Float64) + "; expected a number in [0, 1]");
}

std::string shortest(double v, DType dtype) {
  char buf[64];
  const auto res = dtype == DType::Float32 ? std::to_chars(buf, buf + sizeof buf, static_cast<float>(v))
                                           : std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, res.ptr);
}

Tensor repeat_columns(const Tensor& s, int64_t cols) {
  const Tensor ones = Tensor::full({1, cols}, 1.0, s.dtype(), s.device());
  return matmul(s.reshape({s.numel(), 1}), ones);
}

}  // namespace kiln::losses::detail
