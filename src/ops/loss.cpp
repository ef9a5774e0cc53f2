// Loss ops: mean squared error (composed from other ops) and sparse softmax cross-entropy
// (one fused kernel that also writes the gradient).
#include "ops/op_util.h"

namespace kiln {

Tensor mse(const Tensor& pred, const Tensor& target) {
  ops::check_floating("mse", pred, "prediction");
  ops::check_floating("mse", target, "target");
  if (pred.shape() != target.shape())
    throw Error("mse", "prediction has shape " + pred.shape().str() + " and target " + target.shape().str() +
                           "; expected equal shapes");
  if (pred.numel() == 0)
    throw Error("mse", "empty prediction " + pred.shape().str() + "; expected at least one element");
  return mean(square(sub(pred, target)));
}

Tensor sparse_softmax_cross_entropy(const Tensor& logits, const Tensor& labels) {
  const std::string op = "sparse_softmax_cross_entropy";
  ops::check_floating(op, logits, "logits");
  ops::check_ndim(op, logits, 2, "logits");
  if (!labels.defined() || labels.dtype() != DType::Int32)
    throw Error(op, "labels must be an int32 tensor of class indices");
  if (labels.ndim() != 1 || labels.size(0) != logits.size(0))
    throw Error(op, "labels have shape " + labels.shape().str() + " for logits " + logits.shape().str() +
                        "; expected [" + std::to_string(logits.size(0)) + "]");
  if (labels.device() != logits.device())
    throw Error(op, "labels are on " + labels.device().str() + " and logits on " + logits.device().str() +
                        "; expected one device");
  const int64_t rows = logits.size(0), cols = logits.size(1);
  if (rows == 0) throw Error(op, "empty batch; expected at least one row");
  if (labels.device().is_cpu()) {  // on a GPU the caller validated the labels once, up front
    const int32_t* l = labels.data<int32_t>();
    for (int64_t r = 0; r < rows; ++r)
      if (l[r] < 0 || l[r] >= cols)
        throw Error(op, "label " + std::to_string(l[r]) + " at row " + std::to_string(r) + " is outside [0, " +
                            std::to_string(cols) + "); expected a class index below the number of logits");
  }
  auto& be = ops::backend_of(logits);
  Tensor per_row = make_tensor({rows}, logits.dtype(), logits.device());
  Tensor dlogits;
  const bool need_grad = grad_enabled() && logits.requires_grad();
  if (need_grad) dlogits = make_tensor(logits.shape(), logits.dtype(), logits.device());
  be.sparse_softmax_xent(logits.dtype(), logits.raw_data(), static_cast<const int32_t*>(labels.raw_data()),
                         per_row.raw_data(), need_grad ? dlogits.raw_data() : nullptr, 1.0 / static_cast<double>(rows),
                         rows, cols);
  Tensor loss;
  {
    NoGradGuard no_grad;
    loss = mean(per_row);
  }
  return autograd::record(op, loss, {logits}, [dlogits](const Tensor& g) -> std::vector<Tensor> {
    return {mul(dlogits, g)};  // g is a one-element tensor: a device-side scale, no host read
  });
}

}  // namespace kiln
