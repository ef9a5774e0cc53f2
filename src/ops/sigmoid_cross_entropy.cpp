// Binary cross-entropy from logits, elementwise (TensorFlow's sigmoid_cross_entropy_with_logits):
// one kernel forward; the backward is sigmoid(x) - z for the logits and -x for the targets, from
// other ops. Why a kernel of its own: Keras' formula max(x, 0) - x z + log1p(exp(-|x|)) written
// with relu and abs would take relu's and abs's gradients at x = 0 (both 0), giving -z there
// instead of 0.5 - z.
#include "ops/op_util.h"

namespace kiln {

Tensor sigmoid_cross_entropy(const Tensor& logits, const Tensor& targets) {
  const std::string op = "sigmoid_cross_entropy";
  ops::check_floating(op, logits, "logits");
  ops::check_floating(op, targets, "targets");
  ops::check_compatible(op, logits, targets);
  if (logits.shape() != targets.shape())
    throw Error(op, "logits have shape " + logits.shape().str() + " and targets " + targets.shape().str() +
                        "; expected equal shapes");
  Tensor loss = make_tensor(logits.shape(), logits.dtype(), logits.device());
  ops::backend_of(logits).sigmoid_xent(logits.dtype(), logits.raw_data(), targets.raw_data(), loss.raw_data(),
                                       logits.numel());
  return autograd::record(op, loss, {logits, targets}, [logits, targets](const Tensor& g) -> std::vector<Tensor> {
    Tensor dx, dz;
    if (logits.requires_grad()) dx = mul(g, sub(sigmoid(logits.detach()), targets.detach()));
    if (targets.requires_grad()) dz = neg(mul(g, logits.detach()));
    return {dx, dz};
  });
}

}  // namespace kiln
