// fit's training step and evaluate's batch.
#include "model/step_work.h"

#include <cmath>
#include <optional>
#include <string>

#include "autograd/backward.h"
#include "distribute/replica.h"
#include "kiln/optimizers.h"
#include "model/graph.h"
#include "model/loss_terms.h"
#include "model/numerics.h"

namespace kiln::model {

TrainingWork::TrainingWork(Model& model, LogSums& sums, bool check_numerics, bool check_each_step)
    : model_(model),
      sums_(sums),
      params_(model.trainable_weights()),
      check_numerics_(check_numerics),
      check_each_step_(check_each_step) {}

Tensor TrainingWork::forward_backward(const Tensors& xb, const Tensors& yb, const std::string* where) {
  for (Tensor& p : params_) p.zero_grad();
  const Tensors pred = where ? forward_checked(model_.graph(), xb, /*training=*/true, *where)
                             : model_.graph().run(xb, /*training=*/true);
  const LossTerms loss = loss_terms(model_, yb, pred);
  Optimizer& opt = *model_.optimizer();
  opt.scale_loss(loss.total).backward();  // loss scaling reads its scale on the device: recordable
  // Under loss scaling a non-finite gradient is expected now and then: the optimizer skips that
  // step and lowers the scale, so only the layers' outputs are checked.
  if (where && !opt.skips_non_finite_steps()) check_gradients(model_.layers(), *where);
  sums_.add(loss.total, loss.outputs, yb, pred);
  return loss.total;
}

void TrainingWork::begin_step(int64_t step) {
  if (replica_) replica_->begin_step(step);
}

void TrainingWork::body(const Tensors& xb, const Tensors& yb) {
  forward_backward(xb, yb, nullptr);
  // Recorded steps run on a GPU only, where the replicas' sum is device work too.
  if (replica_) replica_->all_reduce_gradients_on_device(params_);
}

void TrainingWork::eager(int64_t step, const Tensors& xb, const Tensors& yb) {
  const std::string where =
      check_numerics_ ? "epoch " + std::to_string(epoch_) + ", step " + std::to_string(step + 1) : "";
  if (replica_) {
    replicated(step, xb, yb, check_numerics_ ? &where : nullptr);
    return;
  }
  const Tensor loss = forward_backward(xb, yb, check_numerics_ ? &where : nullptr);
  optimizer().step(params_);
  apply_constraints();
  if (check_each_step_) {
    const double v = loss.item();
    if (!std::isfinite(v)) throw_non_finite_loss(v, epoch_, step + 1, step + 1);
  }
}

void TrainingWork::replicated(int64_t step, const Tensors& xb, const Tensors& yb, const std::string* where) {
  // A shard can be empty (a last batch of fewer rows than replicas): it adds no gradient.
  Tensor loss;
  if (xb.front().size(0) > 0) {
    // On the CPU the sums start while backward still runs.
    const autograd::ScopedLeafReady ready(replica_->on_device() ? autograd::LeafReady()
                                                                : replica_->gradient_ready_hook(params_));
    loss = forward_backward(xb, yb, where);
  } else {
    zero_grads();
  }
  // Every rank gets the same summed gradients, so the update is the same everywhere.
  const std::optional<double> v = replica_->all_reduce_gradients(params_, loss, step, epoch_);
  optimizer().step(params_);
  apply_constraints();
  if (check_each_step_ && v && !std::isfinite(*v)) throw_non_finite_loss(*v, epoch_, step + 1, step + 1);
}

void EvaluationWork::body(const Tensors& xb, const Tensors& yb) {
  const Tensors pred = model_.graph().run(xb, /*training=*/false);
  const LossTerms loss = loss_terms(model_, yb, pred);
  sums_.add(loss.total, loss.outputs, yb, pred);
}

}  // namespace kiln::model
