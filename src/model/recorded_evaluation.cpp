// RecordedEvaluation: the key that decides reuse, the device copies of the data, the recording.
#include "model/recorded_evaluation.h"

#include <numeric>

#include "backend/backend.h"

namespace kiln::model {

namespace {

// Two losses of the same class and options compute the same values; the object itself may be
// replaced by compile() without changing what a recording computes.
std::string describe(const Loss& loss) { return loss.class_name() + " " + loss.get_config().dump(); }

bool same_storage(const Tensor& a, const Tensor& b) {
  return a.raw_data() == b.raw_data() && a.shape() == b.shape() && a.dtype() == b.dtype() && a.device() == b.device();
}

// dst = src, src on the host or on any device; shapes and dtypes agree (the key says so).
void copy_into(Tensor& dst, const Tensor& src) {
  auto& be = backend::get(dst.device());
  if (src.device().is_cpu())
    be.copy_from_host(dst.raw_data(), src.raw_data(), dst.nbytes());
  else if (src.device() == dst.device())
    be.copy(dst.raw_data(), src.raw_data(), dst.nbytes());
  else
    dst.copy_(src);
}

}  // namespace

EvaluationKey EvaluationKey::of(Device device, int64_t batch_size, const Tensor& x, const Tensor& y,
                                const std::vector<std::shared_ptr<Layer>>& layers, const std::vector<Tensor>& weights,
                                const Loss& loss, const std::vector<std::string>& metrics) {
  EvaluationKey key{.device = device,
                    .batch_size = batch_size,
                    .x_shape = x.shape(),
                    .y_shape = y.shape(),
                    .x_dtype = x.dtype(),
                    .y_dtype = y.dtype(),
                    .layers = layers,
                    .weights = {},
                    .loss = describe(loss),
                    .metrics = metrics};
  for (const Tensor& w : weights) key.weights.push_back(w.detach());
  return key;
}

bool EvaluationKey::operator==(const EvaluationKey& o) const {
  if (device != o.device || batch_size != o.batch_size || x_shape != o.x_shape || y_shape != o.y_shape ||
      x_dtype != o.x_dtype || y_dtype != o.y_dtype || layers != o.layers || loss != o.loss || metrics != o.metrics ||
      weights.size() != o.weights.size())
    return false;
  for (std::size_t i = 0; i < weights.size(); ++i)
    if (!same_storage(weights[i], o.weights[i])) return false;
  return true;
}

std::unique_ptr<RecordedEvaluation> RecordedEvaluation::make(EvaluationKey key) {
  const int64_t n = key.x_shape.ndim() ? key.x_shape[0] : 0;
  if (!backend::get(key.device).can_capture() || key.batch_size < 1 || n < key.batch_size) return nullptr;
  Tensor x = Tensor::empty(key.x_shape, key.x_dtype, key.device);
  Tensor y = Tensor::empty(key.y_shape, key.y_dtype, key.device);
  return std::unique_ptr<RecordedEvaluation>(new RecordedEvaluation(std::move(key), std::move(x), std::move(y)));
}

RecordedEvaluation::RecordedEvaluation(EvaluationKey key, Tensor x, Tensor y)
    : key_(std::move(key)), x_(std::move(x)), y_(std::move(y)), sums_(key_.metrics, key_.device) {
  batches_ = RecordedBatches::make(x_, y_, key_.batch_size);
  std::vector<int32_t> order(static_cast<std::size_t>(x_.size(0)));
  std::iota(order.begin(), order.end(), 0);  // evaluation runs in order
  batches_->set_order(order);
}

void RecordedEvaluation::load(const Tensor& x, const Tensor& y) {
  copy_into(x_, x);
  copy_into(y_, y);
  sums_.reset();
}

RecordingPlan evaluation_plan(bool cuda_graphs, Device device, const Batches& batches, RecordedEvaluation* recorded,
                              StepWork& work) {
  RecordingPlan plan = plan_recording(cuda_graphs, device, batches);
  if (!plan.never.empty() || !recorded) return plan;
  if (!recorded->failure().empty()) return {.never = "recording the batch failed: " + recorded->failure()};
  plan.warmup_steps = recorded->ready() ? 0 : 1;
  plan.warmed = [recorded] { recorded->mark_warm(); };
  plan.make = [recorded, &work](std::string&) { return std::make_unique<RecordedEvaluationStep>(*recorded, work); };
  return plan;
}

bool RecordedEvaluationStep::run(int64_t step) {
  metrics::Accumulator& sums = recorded_.sums();
  const int64_t counted = sums.samples();
  const auto ran = recorded_.run(step, [&](const Tensor& xb, const Tensor& yb) { work_.body(xb, yb); });
  if (ran == RecordedBatches::Ran::Failed) {
    sums.add_samples(counted - sums.samples());  // the recorded body may have counted the batch
    return false;
  }
  if (ran == RecordedBatches::Ran::Replayed) sums.add_samples(recorded_.key().batch_size);
  return true;
}

}  // namespace kiln::model
