// fit's recorded training step: on a device that records work (CUDA graphs), one full training
// step (batch gather, forward, loss, backward, optimizer update, loss and metric sums) is recorded
// once and replayed for every full batch. The batch indices come from a device-side permutation
// at a device-side step counter, and the optimizer's per-step values from a device-side table, so
// a replay takes no host argument and costs one launch instead of dozens of launches and their
// host overhead.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "kiln/optimizers.h"
#include "kiln/tensor.h"
#include "optimizers/device_update.h"

namespace kiln::model {

class GraphStep {
 public:
  /// One training step on the batch (xb, yb) without the optimizer update: zero the gradients,
  /// forward, loss, backward, add to the metric sums. Must only queue device work.
  using Body = std::function<void(const Tensor& xb, const Tensor& yb)>;

  ~GraphStep();
  GraphStep(const GraphStep&) = delete;
  GraphStep& operator=(const GraphStep&) = delete;

  /// What run() did.
  enum class Ran {
    Recorded,  ///< recorded the step and ran the recording once (the body ran on the host once)
    Replayed,  ///< replayed the recording (the body did not run on the host)
    Failed,    ///< recording failed: nothing ran on the device; run this step eagerly, stay eager
  };

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
  const std::string& failure() const { return failure_; }

 private:
  GraphStep(backend::Backend& be, std::unique_ptr<optimizers::DeviceUpdate> update, const Tensor& x, const Tensor& y,
            int64_t batch_size);

  backend::Backend& be_;
  std::unique_ptr<optimizers::DeviceUpdate> update_;
  Tensor x_, y_;
  int64_t batch_size_;
  Tensor order_;   // int32 [n]: this epoch's sample order
  int64_t* index_ = nullptr;  // device int64: the full batch the next run works on
  Tensor batch_;   // int32 [batch_size]: the rows of that batch
  int64_t index_on_device_ = -1;  // what index_ holds once the queued work has run
  int64_t unsettled_ = 0;
  std::unique_ptr<backend::CapturedWork> graph_;
  std::string failure_;
};

}  // namespace kiln::model
