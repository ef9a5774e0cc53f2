// evaluate's recorded batch: on a device that records work (CUDA graphs), one full evaluation batch
// (batch gather, forward without gradients, loss, loss and metric sums) is recorded once and
// replayed for every full batch, in order (model/recorded_batches.h with the identity order);
// RecordedEvaluationStep runs it as one of evaluate's step runners (model/step_runner.h).
// The model keeps the recording and reuses it while nothing it depends on changes, because fit
// evaluates the same validation set after every epoch: recording again each time would cost one
// eager warm-up batch and a recording per epoch.
//
// Memory: the recording holds device copies of x and of the prepared targets (each call copies
// its data in, so a caller's tensors are never aliased and in-place changes to them are seen), its
// private pool (the intermediate tensors of one batch) and handles of the layers and weights it
// read (trainable or not). For the seed CIFAR-10 model on 10,000 32x32x3 images at batch 1000 that is 118 MiB of data
// and about 155 MiB of pool (H100; CudaGraphBench.DISABLED_SeedModelEvaluate prints the figures). All of it is given
// back when the model dies, when a later evaluate records another, or when evaluate runs on a device that cannot record
// (after the model moved to the CPU).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "kiln/layers.h"
#include "kiln/losses.h"
#include "kiln/tensor.h"
#include "model/log_sums.h"
#include "model/recorded_batches.h"
#include "model/step_runner.h"
#include "model/step_schedule.h"

namespace kiln::model {

/// What a recording of evaluate depends on besides the values of the data and of the weights. A
/// recording is reused only while the model's key equals the one it was recorded with.
struct EvaluationKey {
  Device device;
  int64_t batch_size = 0;
  std::vector<Shape> x_shapes, y_shapes;  // the prepared x and targets
  std::vector<DType> x_dtypes, y_dtypes;
  // Held, not only compared: while held, no new layer or weight storage can take these addresses,
  // so equal addresses mean the same layers and the same storage (optimizers and load_weights
  // write into it in place; to(device) or a rebuild replaces it).
  std::vector<std::shared_ptr<Layer>> layers;
  std::vector<Tensor> weights;  // detached handles of every weight, trainable or not
  std::string loss;             // the losses' classes, options and weights
  std::vector<std::vector<std::string>> metrics;
  std::vector<std::string> output_names;

  /// The key of evaluating (x, y) prepared as evaluate prepares them, on `device`, with `model`'s
  /// layers holding their current weights (trainable ones and the others).
  static EvaluationKey of(Device device, int64_t batch_size, const std::vector<Tensor>& x, const std::vector<Tensor>& y,
                          const Model& model);
  bool operator==(const EvaluationKey& other) const;
};

class RecordedEvaluation {
 public:
  /// nullptr when the key's device cannot record or the data holds no full batch.
  static std::unique_ptr<RecordedEvaluation> make(EvaluationKey key);
  RecordedEvaluation(const RecordedEvaluation&) = delete;
  RecordedEvaluation& operator=(const RecordedEvaluation&) = delete;

  const EvaluationKey& key() const { return key_; }
  /// Starts a call: copies x and y (shaped as the key says, on any device) into the recording's
  /// device buffers and zeroes the sums.
  void load(const std::vector<Tensor>& x, const std::vector<Tensor>& y);
  /// The device copies of this call's data (eager batches slice them).
  const std::vector<Tensor>& x() const { return x_; }
  const std::vector<Tensor>& y() const { return y_; }
  /// The loss and metric sums the recording adds to (at fixed device addresses).
  LogSums& sums() { return sums_; }

  /// Whether full batches run recorded: once an eager full batch of this geometry has run (it
  /// makes cuDNN's choices and fills the caches; mark_warm()) and unless recording failed.
  bool ready() const { return warm_ && failure().empty(); }
  void mark_warm() { warm_ = true; }
  /// Runs full batch `step` (see RecordedBatches::run); after Failed, ready() stays false.
  RecordedBatches::Ran run(int64_t step, const RecordedBatches::Body& body) { return batches_->run(step, body); }
  /// Why recording failed (empty when it did not).
  const std::string& failure() const { return batches_->failure(); }

 private:
  RecordedEvaluation(EvaluationKey key, std::vector<Tensor> x, std::vector<Tensor> y);

  EvaluationKey key_;
  std::vector<Tensor> x_, y_;
  LogSums sums_;
  bool warm_ = false;
  std::unique_ptr<RecordedBatches> batches_;  // declared last, destroyed first: it reads the above
};

/// evaluate's recording plan (model/step_schedule.h): the kept `recorded` (null where evaluation
/// cannot record) replays from the first full batch once warm, else after one eager full batch.
RecordingPlan evaluation_plan(bool cuda_graphs, Device device, const Batches& batches, RecordedEvaluation* recorded,
                              StepWork& work);

/// Runs evaluate's full batches on a kept RecordedEvaluation: records the first, replays the rest.
class RecordedEvaluationStep final : public StepRunner {
 public:
  /// `work`'s body is one batch of the evaluation, adding to recorded.sums(); both must outlive
  /// the runner.
  RecordedEvaluationStep(RecordedEvaluation& recorded, StepWork& work) : recorded_(recorded), work_(work) {}
  bool run(int64_t step) override;
  std::string failure() const override { return recorded_.failure(); }

 private:
  RecordedEvaluation& recorded_;
  StepWork& work_;
};

}  // namespace kiln::model
