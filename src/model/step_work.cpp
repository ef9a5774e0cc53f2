// fit's training step and evaluate's batch.
#include "model/step_work.h"

#include <cmath>
#include <string>

#include "model/numerics.h"

namespace kiln::model {

TrainingWork::TrainingWork(Sequential& model, metrics::Accumulator& sums, bool check_numerics, bool check_each_step)
    : model_(model),
      sums_(sums),
      params_(model.trainable_weights()),
      check_numerics_(check_numerics),
      check_each_step_(check_each_step) {}

Tensor TrainingWork::forward_backward(const Tensor& xb, const Tensor& yb, const std::string* where) {
  for (Tensor& p : params_) p.zero_grad();
  const Tensor pred =
      where ? forward_checked(model_.layers(), xb, /*training=*/true, *where) : model_(xb, /*training=*/true);
  Tensor loss = model_.compute_loss(yb, pred);
  loss.backward();
  if (where) check_gradients(model_.layers(), *where);
  sums_.add(loss, yb, pred);
  return loss;
}

void TrainingWork::body(const Tensor& xb, const Tensor& yb) { forward_backward(xb, yb, nullptr); }

void TrainingWork::eager(int64_t step, const Tensor& xb, const Tensor& yb) {
  const std::string where =
      check_numerics_ ? "epoch " + std::to_string(epoch_) + ", step " + std::to_string(step + 1) : "";
  const Tensor loss = forward_backward(xb, yb, check_numerics_ ? &where : nullptr);
  optimizer().step(params_);
  if (check_each_step_) {
    const double v = loss.item();
    if (!std::isfinite(v)) throw_non_finite_loss(v, epoch_, step + 1, step + 1);
  }
}

void EvaluationWork::body(const Tensor& xb, const Tensor& yb) {
  const Tensor pred = model_(xb, /*training=*/false);
  sums_.add(model_.compute_loss(yb, pred), yb, pred);
}

}  // namespace kiln::model
