// One interface for running the batches of a pass over a dataset (fit's epoch, evaluate's call):
// EagerStep here runs each batch's work as it comes; the recorded runners (model/recorded_step.h
// for training, model/recorded_evaluation.h for evaluation) record it once as a CUDA graph and
// replay it; model/step_schedule.h picks one of them for each batch.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "kiln/tensor.h"

namespace kiln::model {

/// One tensor per model input, or one per model output (targets).
using Tensors = std::vector<Tensor>;

/// A dataset on the device that runs the steps, and how a pass cuts it into batches: in order, or
/// in a sample order set for the pass (fit's shuffle).
class Batches {
 public:
  /// x and y: every sample (a tensor per input and per output, all of the same length), on the
  /// device; `batch_size` rows per batch, the last batch partial.
  Batches(Tensors x, Tensors y, int64_t batch_size);
  /// Takes the batches in `order` (one entry per sample) from now on.
  void set_order(std::vector<int32_t> order);
  /// From now on batch() returns only shard `rank` of `replicas` of each batch: rows
  /// [rows * rank / replicas, rows * (rank + 1) / replicas) of it (a data-parallel fit; empty for some
  /// ranks when a last batch has fewer rows than there are replicas).
  void set_shard(int rank, int replicas);

  /// Every sample.
  const Tensors& x() const { return x_; }
  /// Every target.
  const Tensors& y() const { return y_; }
  /// Rows of a full batch.
  int64_t batch_size() const { return batch_size_; }
  /// Samples in the dataset.
  int64_t samples() const { return x_.front().size(0); }
  /// The sample order (the identity until set_order()).
  const std::vector<int32_t>& order() const { return order_; }
  /// Batches per pass.
  int64_t steps() const { return (samples() + batch_size_ - 1) / batch_size_; }
  /// Full batches per pass.
  int64_t full_steps() const { return samples() / batch_size_; }
  /// Samples in batch `step` (all shards).
  int64_t rows(int64_t step) const;
  /// Positions [begin, end) in the pass's order of this shard of batch `step` (all of it unsharded).
  std::pair<int64_t, int64_t> shard_range(int64_t step) const;
  /// Rows [first, last) of any full batch that this shard takes ([0, batch_size) unsharded).
  std::pair<int64_t, int64_t> full_shard() const {
    return {batch_size_ * rank_ / replicas_, batch_size_ * (rank_ + 1) / replicas_};
  }
  /// This shard of batch `step` on the device: views of x and y in order, gathered rows in a set order.
  std::pair<Tensors, Tensors> batch(int64_t step) const;

 private:
  Tensors x_, y_;
  int64_t batch_size_;
  std::vector<int32_t> order_;
  Tensor order_on_device_;  // undefined while the order is the identity
  int64_t rank_ = 0, replicas_ = 1;
};

/// What one step does with its batch.
class StepWork {
 public:
  virtual ~StepWork() = default;
  /// The part of a step that can be recorded: device work only, no host read and no allocation
  /// that depends on host state (forward, loss, backward, metric sums).
  virtual void body(const Tensors& xb, const Tensors& yb) = 0;
  /// The whole step on batch `step`, eagerly: body() and whatever cannot be recorded (fit's
  /// optimizer update where it has no device-side form, its checks that read values back).
  virtual void eager(int64_t step, const Tensors& xb, const Tensors& yb) {
    (void)step;
    body(xb, yb);
  }
};

/// One way of running the batches of a pass.
class StepRunner {
 public:
  virtual ~StepRunner() = default;
  /// Starts a pass at batch `first_step` (0, or later when the runner is made after eager warm-up
  /// batches of the same pass). False when the runner no longer fits the model (its weights were
  /// moved since it was made): make another.
  virtual bool start_pass(int64_t first_step) {
    (void)first_step;
    return true;
  }
  /// Runs batch `step`; false when it did not run (recording it failed; failure() says why): run
  /// it eagerly, and the later ones too.
  virtual bool run(int64_t step) = 0;
  /// Brings host-side state that replays bypass up to date (the optimizer's iteration count);
  /// called before an eager step runs and at the end of every pass.
  virtual void settle() {}
  /// Why run() returned false ("" when it did not).
  virtual std::string failure() const { return ""; }
};

/// Runs every batch eagerly: StepWork::eager on the batch as Batches cuts it.
class EagerStep final : public StepRunner {
 public:
  /// Runs `work` on `batches`; both must outlive this runner.
  EagerStep(const Batches& batches, StepWork& work) : batches_(batches), work_(work) {}
  bool run(int64_t step) override;

 private:
  const Batches& batches_;
  StepWork& work_;
};

}  // namespace kiln::model
