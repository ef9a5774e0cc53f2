// Model::evaluate and Model::predict: batch by batch, in order, without gradients, in
// inference mode. evaluate's batches run through model/step_schedule.h: on a device that records
// work its full batches replay one recorded batch, kept in the model for later calls
// (model/recorded_evaluation.h).
#include <iostream>
#include <optional>

#include "backend/backend.h"
#include "kiln/autograd.h"
#include "kiln/error.h"
#include "kiln/model.h"
#include "model/data_checks.h"
#include "model/graph.h"
#include "model/log_sums.h"
#include "model/progress.h"
#include "model/recorded_evaluation.h"
#include "model/step_schedule.h"
#include "model/step_work.h"

namespace kiln {

std::map<std::string, double> Model::evaluate(const Tensor& x, const Tensor& y, const EvaluateOptions& opt) {
  return evaluate_batches({x}, {y}, opt, opt.verbose != 0);
}

std::map<std::string, double> Model::evaluate(const std::vector<Tensor>& x, const std::vector<Tensor>& y,
                                              const EvaluateOptions& opt) {
  return evaluate_batches(x, y, opt, opt.verbose != 0);
}

model::RecordedEvaluation* Model::recorded_evaluation_for(const std::vector<Tensor>& x, const std::vector<Tensor>& y,
                                                          int64_t batch_size) {
  if (!backend::get(device_).can_capture()) {
    recorded_evaluation_.reset();  // the model left the GPU: give its memory back
    return nullptr;
  }
  if (x.front().size(0) < batch_size) return nullptr;  // nothing to replay; keep what is kept
  auto key = model::EvaluationKey::of(device_, batch_size, x, y, *this);
  if (!recorded_evaluation_ || recorded_evaluation_->key() != key) {
    recorded_evaluation_.reset();  // first: its memory may serve the new one
    recorded_evaluation_ = model::RecordedEvaluation::make(std::move(key));
    if (!recorded_evaluation_) return nullptr;
  }
  recorded_evaluation_->load(x, y);
  return recorded_evaluation_.get();
}

std::map<std::string, double> Model::evaluate_batches(const std::vector<Tensor>& x_in, const std::vector<Tensor>& y_in,
                                                      const EvaluateOptions& opt, bool report) {
  require_compiled("evaluate");
  model::check_xy("evaluate", x_in, y_in);
  model::check_batch_size("evaluate", opt.batch_size);
  model::check_verbose("evaluate", opt.verbose);
  build_for(x_in, "evaluate");
  require_compiled("evaluate");  // a Sequential model learns its outputs when built
  NoGradGuard no_grad;
  std::vector<Tensor> x_ready;
  x_ready.reserve(x_in.size());
  for (const Tensor& t : x_in) x_ready.push_back(is_compute_floating(t.dtype()) ? t : t.astype(DType::Float32));
  const std::vector<Tensor> y_ready = prepare_targets(y_in, "evaluate");
  const auto on_device = [this](std::vector<Tensor> all) {
    for (Tensor& t : all) t = t.to(device_);
    return all;
  };
  // On a device that records, the data goes into the kept recording's buffers and its sums.
  model::RecordedEvaluation* rec =
      opt.cuda_graphs ? recorded_evaluation_for(x_ready, y_ready, opt.batch_size) : nullptr;
  const model::Batches batches(rec ? rec->x() : on_device(x_ready), rec ? rec->y() : on_device(y_ready),
                               opt.batch_size);
  std::optional<model::LogSums> own_sums;
  model::LogSums& sums = rec ? rec->sums() : own_sums.emplace(metrics_, output_names(), device_);
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

StepReport Model::last_evaluate_execution() const { return last_evaluate_execution_; }

Tensor Model::predict(const Tensor& x, const PredictOptions& opt) {
  std::vector<Tensor> out = predict(std::vector<Tensor>{x}, opt);
  if (out.size() != 1)
    throw Error("predict", "the model has " + std::to_string(out.size()) +
                               " outputs; expected predict with a list of inputs, which returns one tensor per output");
  return out[0];
}

std::vector<Tensor> Model::predict(const std::vector<Tensor>& x_in, const PredictOptions& opt) {
  for (std::size_t i = 0; i < x_in.size(); ++i)
    if (!x_in[i].defined() || x_in[i].ndim() == 0 || x_in[i].size(0) == 0 || x_in[i].size(0) != x_in[0].size(0))
      throw Error("predict", (x_in.size() == 1 ? std::string("x") : "x[" + std::to_string(i) + "]") +
                                 " is empty, undefined or of another length than x[0]; expected at least one "
                                 "sample [N, ...], N the same for every input");
  if (x_in.empty()) throw Error("predict", "x holds no tensors; expected one per model input");
  model::check_batch_size("predict", opt.batch_size);
  model::check_verbose("predict", opt.verbose);
  build_for(x_in, "predict");
  NoGradGuard no_grad;
  const std::vector<Tensor> x = prepare_inputs(x_in);
  const int64_t n = x[0].size(0), steps = (n + opt.batch_size - 1) / opt.batch_size;
  std::vector<Tensor> out;
  model::ProgressBar bar(std::cout, steps, opt.verbose, model::stdout_is_terminal());
  for (int64_t s = 0; s < steps; ++s) {
    const int64_t b0 = s * opt.batch_size, b1 = std::min(n, b0 + opt.batch_size);
    std::vector<Tensor> xb;
    xb.reserve(x.size());
    for (const Tensor& t : x) xb.push_back(t.slice_rows(b0, b1));
    const std::vector<Tensor> pred = graph_->run(xb, /*training=*/false);
    if (out.empty())
      for (const Tensor& p : pred) out.push_back(Tensor::empty(p.shape().drop_front().prepend(n), p.dtype(), device_));
    for (std::size_t i = 0; i < pred.size(); ++i)
      backend::get(device_).copy(out[i].slice_rows(b0, b1).raw_data(), pred[i].raw_data(), pred[i].nbytes());
    if (bar.wants_update(s + 1)) bar.update(s + 1, {});
  }
  bar.finish({});
  for (Tensor& t : out) t = t.cpu();  // like Keras' NumPy result: on the host
  return out;
}

}  // namespace kiln
