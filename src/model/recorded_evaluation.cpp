// RecordedEvaluation: the key that decides reuse, the device copies of the data, the recording.
#include "model/recorded_evaluation.h"

#include <numeric>

#include "backend/backend.h"

namespace kiln::model {

namespace {

// Two losses of the same class and options compute the same values; the object itself may be
// replaced by compile() without changing what a recording computes.
std::string describe(const Model& model) {
  std::string out;
  for (std::size_t i = 0; i < model.losses().size(); ++i)
    out += model.losses()[i]->class_name() + " " + model.losses()[i]->get_config().dump() + " * " +
           std::to_string(model.loss_weights()[i]) + "; ";
  return out;
}

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

EvaluationKey EvaluationKey::of(Device device, int64_t batch_size, const std::vector<Tensor>& x,
                                const std::vector<Tensor>& y, const Model& model) {
  EvaluationKey key{.device = device,
                    .batch_size = batch_size,
                    .x_shapes = {},
                    .y_shapes = {},
                    .x_dtypes = {},
                    .y_dtypes = {},
                    .layers = model.layers(),
                    .weights = {},
                    .loss = describe(model),
                    .metrics = model.output_metrics(),
                    .output_names = model.output_names()};
  for (const Tensor& t : x) {
    key.x_shapes.push_back(t.shape());
    key.x_dtypes.push_back(t.dtype());
  }
  for (const Tensor& t : y) {
    key.y_shapes.push_back(t.shape());
    key.y_dtypes.push_back(t.dtype());
  }
  for (const Tensor& w : model.trainable_weights()) key.weights.push_back(w.detach());
  for (const Tensor& w : model.non_trainable_weights()) key.weights.push_back(w.detach());
  return key;
}

bool EvaluationKey::operator==(const EvaluationKey& o) const {
  if (device != o.device || batch_size != o.batch_size || x_shapes != o.x_shapes || y_shapes != o.y_shapes ||
      x_dtypes != o.x_dtypes || y_dtypes != o.y_dtypes || layers != o.layers || loss != o.loss ||
      metrics != o.metrics || output_names != o.output_names || weights.size() != o.weights.size())
    return false;
  for (std::size_t i = 0; i < weights.size(); ++i)
    if (!same_storage(weights[i], o.weights[i])) return false;
  return true;
}

std::unique_ptr<RecordedEvaluation> RecordedEvaluation::make(EvaluationKey key) {
  const int64_t n = key.x_shapes.front().ndim() ? key.x_shapes.front()[0] : 0;
  if (!backend::get(key.device).can_capture() || key.batch_size < 1 || n < key.batch_size) return nullptr;
  std::vector<Tensor> x, y;
  for (std::size_t i = 0; i < key.x_shapes.size(); ++i)
    x.push_back(Tensor::empty(key.x_shapes[i], key.x_dtypes[i], key.device));
  for (std::size_t i = 0; i < key.y_shapes.size(); ++i)
    y.push_back(Tensor::empty(key.y_shapes[i], key.y_dtypes[i], key.device));
  return std::unique_ptr<RecordedEvaluation>(new RecordedEvaluation(std::move(key), std::move(x), std::move(y)));
}

RecordedEvaluation::RecordedEvaluation(EvaluationKey key, std::vector<Tensor> x, std::vector<Tensor> y)
    : key_(std::move(key)), x_(std::move(x)), y_(std::move(y)), sums_(key_.metrics, key_.output_names, key_.device) {
  batches_ = RecordedBatches::make(x_, y_, key_.batch_size);
  std::vector<int32_t> order(static_cast<std::size_t>(x_.front().size(0)));
  std::iota(order.begin(), order.end(), 0);  // evaluation runs in order
  batches_->set_order(order);
}

void RecordedEvaluation::load(const std::vector<Tensor>& x, const std::vector<Tensor>& y) {
  for (std::size_t i = 0; i < x_.size(); ++i) copy_into(x_[i], x[i]);
  for (std::size_t i = 0; i < y_.size(); ++i) copy_into(y_[i], y[i]);
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
  LogSums& sums = recorded_.sums();
  const int64_t counted = sums.samples();
  const auto ran = recorded_.run(step, [&](const Tensors& xb, const Tensors& yb) { work_.body(xb, yb); });
  if (ran == RecordedBatches::Ran::Failed) {
    sums.add_samples(counted - sums.samples());  // the recorded body may have counted the batch
    return false;
  }
  if (ran == RecordedBatches::Ran::Replayed) sums.add_samples(recorded_.key().batch_size);
  return true;
}

}  // namespace kiln::model
