// fit's recorded training step: on a device that records work (CUDA graphs), one full training
// step (batch gather, forward, loss, backward, loss and metric sums and the optimizer's device-side
// update) is recorded once and replayed for every full batch. The batch loop is
// model/recorded_batches.h (a shuffled order per epoch); the update's per-step values come from a
// device-side table read at the loop's batch counter, so a replay still takes no host argument.
//
// An optimizer without a device-side update (a user's own) still gets the rest recorded: its
// step() runs eagerly after each replay, on the gradients the replay left where the recording put
// them. Layers that update weights in training mode (BatchNormalization's moving statistics) must
// write them in place: the recording checks that no weight's storage was replaced.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "model/recorded_batches.h"
#include "model/step_runner.h"
#include "model/step_schedule.h"
#include "model/step_work.h"
#include "optimizers/device_update.h"

namespace kiln::model {

/// fit's recording plan (model/step_schedule.h): recorded after eager warm-up steps unless
/// `options` or the device rule it out. `batches` and `work` must outlive the plan.
RecordingPlan training_plan(const FitOptions& options, Device device, const Batches& batches, TrainingWork& work);

/// Runs fit's full batches as one recorded training step.
class RecordedTrainingStep final : public StepRunner {
 public:
  /// nullptr when the device of the batches cannot record or they hold no full batch. Make it
  /// after eager warm-up steps: the optimizer's slots, cuDNN's choices and the workspaces exist.
  /// `note` is set to what stays eager besides ("" when nothing): the optimizer's update when it
  /// has no device-side form. `batches` and `work` must outlive the runner.
  static std::unique_ptr<RecordedTrainingStep> make(const Batches& batches, TrainingWork& work, std::string& note);
  RecordedTrainingStep(const RecordedTrainingStep&) = delete;
  RecordedTrainingStep& operator=(const RecordedTrainingStep&) = delete;

  /// Uploads the pass's sample order and the optimizer's per-step values for its full batches
  /// (into the same device addresses every epoch). False when a weight's storage changed since
  /// the runner was made (the model was moved): the recording reads storage that is gone.
  bool start_pass(int64_t first_step) override;
  /// Runs full batch `step`: records it the first time, else replays; then the eager update, if any.
  bool run(int64_t step) override;
  /// Adds the replayed device-side updates to the optimizer's iteration count.
  void settle() override;
  std::string failure() const override { return recorded_->failure(); }

 private:
  RecordedTrainingStep(const Batches& batches, TrainingWork& work, std::unique_ptr<optimizers::DeviceUpdate> update,
                       std::unique_ptr<RecordedBatches> recorded);
  // Every weight's storage, as "layer/weight" and address.
  std::vector<std::pair<std::string, const void*>> weight_storage() const;
  // Throws when a weight's storage differs from the one seen when the runner was made.
  void check_storage() const;
  // The optimizer's own step() on the gradients of the recording.
  void eager_update();

  const Batches& batches_;
  TrainingWork& work_;
  std::vector<std::pair<std::string, const void*>> storage_;
  // Declared before recorded_, destroyed after it: the recording reads the update's tables.
  std::unique_ptr<optimizers::DeviceUpdate> update_;
  std::vector<Tensor> grads_;  // the recording's gradients, for eager_update()
  std::unique_ptr<RecordedBatches> recorded_;
  int64_t unsettled_ = 0;
};

}  // namespace kiln::model
