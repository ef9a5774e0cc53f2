// fit's recorded training step: on a device that records work (CUDA graphs), one full training
// step (batch gather, forward, loss, backward, optimizer update, loss and metric sums) is recorded
// once and replayed for every full batch. The batch loop is model/recorded_batches.h (a shuffled
// order per epoch); this adds the optimizer's update, whose per-step values come from a
// device-side table read at the loop's batch counter, so a replay still takes no host argument.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "kiln/optimizers.h"
#include "kiln/tensor.h"
#include "model/recorded_batches.h"
#include "optimizers/device_update.h"

namespace kiln::model {

class GraphStep {
 public:
  /// One training step on the batch (xb, yb) without the optimizer update: zero the gradients,
  /// forward, loss, backward, add to the metric sums. Must only queue device work.
  using Body = RecordedBatches::Body;
  /// What run() did (see RecordedBatches::Ran).
  using Ran = RecordedBatches::Ran;

  GraphStep(const GraphStep&) = delete;
  GraphStep& operator=(const GraphStep&) = delete;

  /// nullptr when the device cannot record or `opt` has no device-side update (fit stays eager).
  /// Call after at least one eager step (the optimizer's slots, cuDNN's choices, workspaces exist).
  /// x and y are the whole training set on the device; batches have `batch_size` rows.
  static std::unique_ptr<GraphStep> make(Optimizer& opt, const std::vector<Tensor>& params, const Tensor& x,
                                         const Tensor& y, int64_t batch_size);

  /// Starts an epoch: uploads its sample order and the optimizer's per-step values for its full
  /// batches (into the same device addresses every epoch). `first_iteration` is the optimizer's
  /// iteration count at the epoch's start.
  void start_epoch(const std::vector<int32_t>& order, int64_t first_iteration);
  /// Runs full batch `step` (0-based, within the epoch): records it the first time, else replays.
  Ran run(int64_t step, const Body& body);
  /// Adds the runs since the last call to the optimizer's iteration count (replays bypass it).
  void settle(Optimizer& opt);
  /// Why the last recording failed (empty when none did).
  const std::string& failure() const { return batches_->failure(); }

 private:
  GraphStep(std::unique_ptr<optimizers::DeviceUpdate> update, std::unique_ptr<RecordedBatches> batches,
            int64_t full_batches);

  // Declared first, destroyed last: the recording (in batches_) reads the update's tables.
  std::unique_ptr<optimizers::DeviceUpdate> update_;
  std::unique_ptr<RecordedBatches> batches_;
  int64_t full_batches_;
  int64_t unsettled_ = 0;
};

}  // namespace kiln::model
