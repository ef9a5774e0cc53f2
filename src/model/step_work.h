// What fit's training step and evaluate's batch do (model/step_runner.h's StepWork): the work
// that a runner runs eagerly or records.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "kiln/model.h"
#include "model/log_sums.h"
#include "model/step_runner.h"

namespace kiln::distribute {
class Replica;
}  // namespace kiln::distribute

namespace kiln::model {

/// fit's training step: forward in training mode, the compiled loss with the layers' penalties,
/// backward, the loss and metric sums, then the optimizer's update.
class TrainingWork final : public StepWork {
 public:
  /// Trains `model`'s trainable weights, adding to `sums`. `check_numerics`: eager steps check
  /// every layer's output and gradient (FitOptions::check_numerics); `check_each_step`: eager
  /// steps read the loss back and stop at a non-finite one (where that costs nothing: the CPU).
  TrainingWork(Model& model, LogSums& sums, bool check_numerics, bool check_each_step);
  /// The 1-based epoch under way, for messages.
  void set_epoch(int epoch) { epoch_ = epoch; }
  /// Under a strategy: eager steps sum the gradients of every replica before the update (and check
  /// the global loss); null for one process.
  void set_replica(distribute::Replica* replica) { replica_ = replica; }

  /// Before batch `step` runs (eagerly or recorded): under a strategy, tells the layers where this
  /// rank's shard lies in the global batch.
  void begin_step(int64_t step);
  /// Zero the gradients, forward, loss, backward, sums (under a strategy on a GPU: the gradient
  /// sum over the replicas); no update.
  void body(const Tensors& xb, const Tensors& yb) override;
  /// body() with the checks asked for, then the optimizer's step().
  void eager(int64_t step, const Tensors& xb, const Tensors& yb) override;

  /// Drops the parameters' gradients.
  void zero_grads() {
    for (Tensor& p : params_) p.zero_grad();
  }
  /// The model trained.
  Model& model() { return model_; }
  /// Its optimizer.
  Optimizer& optimizer() { return *model_.optimizer(); }
  /// Projects the weights with constraints (Layer::apply_constraints), after each update.
  void apply_constraints() { model_.apply_constraints(); }
  /// The weights it updates (the model's trainable weights when the work was made).
  const std::vector<Tensor>& params() const { return params_; }
  /// The sums the steps add to.
  LogSums& sums() { return sums_; }

 private:
  // Zero the gradients, forward, loss, backward, sums; with `where`, every layer's output and
  // gradient is checked. Returns the loss.
  Tensor forward_backward(const Tensors& xb, const Tensors& yb, const std::string* where);
  // eager() under a strategy: this rank's shard, the gradient all-reduce, the update.
  void replicated(int64_t step, const Tensors& xb, const Tensors& yb, const std::string* where);

  Model& model_;
  LogSums& sums_;
  std::vector<Tensor> params_;
  bool check_numerics_, check_each_step_;
  int epoch_ = 1;
  distribute::Replica* replica_ = nullptr;
};

/// evaluate's batch: forward in inference mode, the loss with the layers' penalties (as Keras'
/// test step), the loss and metric sums. Run it without gradients (NoGradGuard).
class EvaluationWork final : public StepWork {
 public:
  /// Evaluates `model`, adding to `sums`.
  EvaluationWork(Model& model, LogSums& sums) : model_(model), sums_(sums) {}
  void body(const Tensors& xb, const Tensors& yb) override;

 private:
  Model& model_;
  LogSums& sums_;
};

}  // namespace kiln::model
