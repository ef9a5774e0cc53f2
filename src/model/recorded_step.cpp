// RecordedTrainingStep: the recorded batch loop, the optimizer's update (on the device, or eagerly
// after each replay) and the check that weights keep their storage.
#include "model/recorded_step.h"

#include "kiln/error.h"
#include "tensor/tensor_impl.h"

namespace kiln::model {

namespace {

// Eager steps before recording: the first chooses cuDNN algorithms, creates the optimizer's slots
// and fills the allocator's cache; the second runs as every later step will.
constexpr int64_t kWarmupSteps = 2;

}  // namespace

RecordingPlan training_plan(const FitOptions& options, Device device, const Batches& batches, TrainingWork& work) {
  RecordingPlan plan = plan_recording(options.cuda_graphs, device, batches);
  if (!plan.never.empty()) return plan;
  if (options.check_numerics)
    return {.never = "check_numerics reads every layer's output back at every step", .never_is_expected = true};
  plan.warmup_steps = kWarmupSteps;
  plan.make = [&batches, &work](std::string& note) -> std::unique_ptr<StepRunner> {
    return RecordedTrainingStep::make(batches, work, note);
  };
  return plan;
}

std::unique_ptr<RecordedTrainingStep> RecordedTrainingStep::make(const Batches& batches, TrainingWork& work,
                                                                 std::string& note) {
  note.clear();
  const auto [first, last] = batches.full_shard();
  auto recorded = RecordedBatches::make(batches.x(), batches.y(), batches.batch_size(), first, last - first);
  if (!recorded) {
    note = "the device " + batches.x().front().device().str() + " cannot record this data's full batches";
    return nullptr;
  }
  const std::vector<Tensor>& params = work.params();
  Optimizer& opt = work.optimizer();
  std::unique_ptr<optimizers::DeviceUpdate> update;
  if (!params.empty()) {
    const std::string unsupported = optimizers::device_update_unsupported(params);
    if (unsupported.empty()) update = opt.make_device_update(params, batches.full_steps());
    if (!update)
      note = "recording forward and backward only: " +
             (unsupported.empty() ? "the optimizer " + opt.class_name() + " has no device-side update" : unsupported) +
             ", so its update runs eagerly after each replay";
  }
  return std::unique_ptr<RecordedTrainingStep>(
      new RecordedTrainingStep(batches, work, std::move(update), std::move(recorded)));
}

RecordedTrainingStep::RecordedTrainingStep(const Batches& batches, TrainingWork& work,
                                           std::unique_ptr<optimizers::DeviceUpdate> update,
                                           std::unique_ptr<RecordedBatches> recorded)
    : batches_(batches), work_(work), update_(std::move(update)), recorded_(std::move(recorded)) {
  storage_ = weight_storage();
}

std::vector<std::pair<std::string, const void*>> RecordedTrainingStep::weight_storage() const {
  std::vector<std::pair<std::string, const void*>> out;
  for (const auto& layer : work_.model().layers())
    for (const auto& [name, w] : layer->named_weights())
      out.emplace_back(layer->name() + "/" + name, w.defined() ? w.raw_data() : nullptr);
  return out;
}

void RecordedTrainingStep::check_storage() const {
  const auto now = weight_storage();
  for (std::size_t i = 0; i < storage_.size() && i < now.size(); ++i)
    if (now[i] != storage_[i])
      throw Error("fit", "the training step replaced the storage of weight " + storage_[i].first +
                             "; a recorded step needs every weight updated in place (copy_ into it, or a "
                             "backend kernel that writes it)");
  if (now.size() != storage_.size())
    throw Error("fit", "the model has " + std::to_string(now.size()) + " weights, " + std::to_string(storage_.size()) +
                           " when the step was recorded; expected the same weights");
}

bool RecordedTrainingStep::start_pass(int64_t first_step) {
  if (weight_storage() != storage_) return false;
  recorded_->set_order(batches_.order());
  // The optimizer counted every step before first_step (eager ones); replays are settled.
  if (update_) update_->prepare(work_.optimizer().iterations() - first_step, batches_.full_steps());
  return true;
}

bool RecordedTrainingStep::run(int64_t step) {
  LogSums& sums = work_.sums();
  const int64_t counted = sums.samples();
  const auto ran = recorded_->run(step, [&](const Tensors& xb, const Tensors& yb) {
    work_.body(xb, yb);
    if (update_) {
      update_->queue(recorded_->counter());
      work_.apply_constraints();  // after the update, as the eager step (without one: eager_update)
    }
    check_storage();  // on the host: nothing reads the device
  });
  if (ran == RecordedBatches::Ran::Failed) {
    sums.add_samples(counted - sums.samples());  // the recorded body may have counted the batch
    return false;
  }
  if (ran == RecordedBatches::Ran::Replayed) {
    const auto [begin, end] = batches_.shard_range(step);
    sums.add_samples(end - begin);
  }
  if (ran == RecordedBatches::Ran::Recorded)
    for (const Tensor& p : work_.params()) grads_.push_back(p.grad());
  if (update_)
    ++unsettled_;
  else if (!work_.params().empty())
    eager_update();
  return true;
}

void RecordedTrainingStep::eager_update() {
  // Eager steps between replays (a partial batch) leave their own gradients in the parameters;
  // the replay wrote its gradients where the recording put them.
  std::vector<Tensor> params = work_.params();
  for (std::size_t i = 0; i < params.size(); ++i) params[i].impl()->grad = grads_[i];
  work_.optimizer().step(params);
  work_.apply_constraints();
}

void RecordedTrainingStep::settle() {
  if (!unsettled_) return;
  // Only replays of the device-side update are unsettled; it knows how many of them count (loss
  // scaling's skipped steps do not).
  update_->settle(work_.optimizer(), unsettled_);
  unsettled_ = 0;
}

}  // namespace kiln::model
