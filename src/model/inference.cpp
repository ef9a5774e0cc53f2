// Sequential::evaluate and Sequential::predict: batch by batch, in order, without gradients, in
// inference mode. evaluate's batches run through model/step_schedule.h: on a device that records
// work its full batches replay one recorded batch, kept in the model for later calls
// (model/recorded_evaluation.h).
#include <iostream>
#include <optional>

#include "backend/backend.h"
#include "kiln/autograd.h"
#include "kiln/error.h"
#include "kiln/model.h"
#include "metrics/metrics.h"
#include "model/data_checks.h"
#include "model/progress.h"
#include "model/recorded_evaluation.h"
#include "model/step_schedule.h"
#include "model/step_work.h"

namespace kiln {

std::map<std::string, double> Sequential::evaluate(const Tensor& x_in, const Tensor& y_in, const EvaluateOptions& opt) {
  return evaluate_batches(x_in, y_in, opt, opt.verbose != 0);
}

model::RecordedEvaluation* Sequential::recorded_evaluation_for(const Tensor& x, const Tensor& y, int64_t batch_size) {
  if (!backend::get(device_).can_capture()) {
    recorded_evaluation_.reset();  // the model left the GPU: give its memory back
    return nullptr;
  }
  if (x.size(0) < batch_size) return nullptr;  // nothing to replay; keep what is kept
  std::vector<Tensor> weights = trainable_weights();
  for (const Tensor& w : non_trainable_weights()) weights.push_back(w);
  auto key = model::EvaluationKey::of(device_, batch_size, x, y, layers_, weights, *loss_, metrics_);
  if (!recorded_evaluation_ || recorded_evaluation_->key() != key) {
    recorded_evaluation_.reset();  // first: its memory may serve the new one
    recorded_evaluation_ = model::RecordedEvaluation::make(std::move(key));
    if (!recorded_evaluation_) return nullptr;
  }
  recorded_evaluation_->load(x, y);
  return recorded_evaluation_.get();
}

std::map<std::string, double> Sequential::evaluate_batches(const Tensor& x_in, const Tensor& y_in,
                                                           const EvaluateOptions& opt, bool report) {
  require_compiled("evaluate");
  model::check_xy("evaluate", x_in, y_in);
  model::check_batch_size("evaluate", opt.batch_size);
  model::check_verbose("evaluate", opt.verbose);
  build_for(x_in, "evaluate");
  Shape out_shape = input_shape_;
  for (const auto& layer : layers_) out_shape = layer->compute_output_shape(out_shape);
  NoGradGuard no_grad;
  const Tensor x_ready = is_floating(x_in.dtype()) ? x_in : x_in.astype(DType::Float32);
  const Tensor y_ready = loss_->prepare_targets(y_in, out_shape, "evaluate");
  // On a device that records, the data goes into the kept recording's buffers and its sums.
  model::RecordedEvaluation* rec =
      opt.cuda_graphs ? recorded_evaluation_for(x_ready, y_ready, opt.batch_size) : nullptr;
  const model::Batches batches(rec ? rec->x() : x_ready.to(device_), rec ? rec->y() : y_ready.to(device_),
                               opt.batch_size);
  std::optional<metrics::Accumulator> own_sums;
  metrics::Accumulator& sums = rec ? rec->sums() : own_sums.emplace(metrics_, device_);
  model::EvaluationWork work(*this, sums);
  // A reason said in an earlier call (fit's validation pass, every epoch) is not said again.
  model::StepSchedule schedule({.op = "evaluate", .eagerly = "evaluating eagerly", .unit = "batch"}, batches, work,
                               model::evaluation_plan(opt.cuda_graphs, device_, batches, rec, work), report,
                               last_evaluate_execution_.reason);

  const int64_t steps = batches.steps();
  model::ProgressBar bar(std::cout, steps, opt.verbose, model::stdout_is_terminal());
  schedule.start_pass();
  for (int64_t s = 0; s < steps; ++s) {
    schedule.run(s);
    if (bar.wants_update(s + 1)) bar.update(s + 1, sums.results());
  }
  schedule.finish_pass();
  last_evaluate_execution_ = schedule.report();
  const auto results = sums.results();
  bar.finish(results);
  return {results.begin(), results.end()};
}

StepReport Sequential::last_evaluate_execution() const { return last_evaluate_execution_; }

Tensor Sequential::predict(const Tensor& x_in, const PredictOptions& opt) {
  if (!x_in.defined() || x_in.ndim() == 0 || x_in.size(0) == 0)
    throw Error("predict", "x is empty or undefined; expected at least one sample [N, ...]");
  model::check_batch_size("predict", opt.batch_size);
  model::check_verbose("predict", opt.verbose);
  build_for(x_in, "predict");
  NoGradGuard no_grad;
  const Tensor x = (is_floating(x_in.dtype()) ? x_in : x_in.astype(DType::Float32)).to(device_);
  const int64_t n = x.size(0), steps = (n + opt.batch_size - 1) / opt.batch_size;
  Tensor out;
  model::ProgressBar bar(std::cout, steps, opt.verbose, model::stdout_is_terminal());
  for (int64_t s = 0; s < steps; ++s) {
    const int64_t b0 = s * opt.batch_size, b1 = std::min(n, b0 + opt.batch_size);
    const Tensor pred = (*this)(x.slice_rows(b0, b1), /*training=*/false);
    if (!out.defined()) out = Tensor::empty(pred.shape().drop_front().prepend(n), pred.dtype(), device_);
    backend::get(device_).copy(out.slice_rows(b0, b1).raw_data(), pred.raw_data(), pred.nbytes());
    if (bar.wants_update(s + 1)) bar.update(s + 1, {});
  }
  bar.finish({});
  return out.cpu();  // like Keras' NumPy result: on the host
}

}  // namespace kiln
