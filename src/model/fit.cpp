// Sequential::fit: Keras' training loop (shuffle each epoch, batch-weighted epoch means,
// validation at each epoch's end, callbacks). The steps run through model/step_schedule.h: on a
// CUDA device the full batches replay one recorded step (model/recorded_step.h) after eager
// warm-up steps, and so do the validation pass's (evaluate's recording, kept across epochs:
// model/recorded_evaluation.h).
#include <cmath>
#include <iostream>
#include <optional>

#include "kiln/error.h"
#include "kiln/model.h"
#include "kiln/random.h"
#include "metrics/metrics.h"
#include "model/data_checks.h"
#include "model/numerics.h"
#include "model/progress.h"
#include "model/recorded_step.h"
#include "model/step_schedule.h"
#include "model/step_work.h"

namespace kiln {

namespace {

// Every option is checked before the first step, so that a bad one neither costs an epoch of
// training nor reaches a checkpoint that load_model would then refuse (an epoch of -3).
void check_options(const FitOptions& opt) {
  model::check_batch_size("fit", opt.batch_size);
  if (opt.validation_batch_size < 0)
    throw Error("fit", "validation_batch_size is " + std::to_string(opt.validation_batch_size) +
                           "; expected a positive number, or 0 for batch_size");
  if (opt.epochs < 0) throw Error("fit", "epochs is " + std::to_string(opt.epochs) + "; expected >= 0");
  if (opt.initial_epoch < 0)
    throw Error("fit", "initial_epoch is " + std::to_string(opt.initial_epoch) +
                           "; expected >= 0 (the 0-based epoch to start from, e.g. checkpoint_epoch(path) + 1)");
  model::check_verbose("fit", opt.verbose);
  for (std::size_t i = 0; i < opt.callbacks.size(); ++i)
    if (!opt.callbacks[i])
      throw Error("fit", "callbacks[" + std::to_string(i) +
                             "] is null; expected a callback (e.g. std::make_shared<"
                             "kiln::callbacks::ModelCheckpoint>(path))");
}

// The message of `e` without its "[op] " prefix.
std::string message_of(const Error& e) { return std::string(e.what()).substr(e.op().size() + 3); }

// Validation data is checked before the first epoch rather than at its end.
void check_validation_data(const std::pair<Tensor, Tensor>& data, const Shape& input_shape, const Shape& out_shape,
                           const Loss& loss) {
  const auto& [vx, vy] = data;
  model::check_xy("fit", vx, vy, "validation_data: ");
  if (vx.shape().drop_front() != input_shape)
    throw Error("fit", "validation_data: x has per-sample shape " + vx.shape().drop_front().str() +
                           " but the model takes " + input_shape.str() + "; expected the shape of the training x");
  try {
    loss.prepare_targets(vy, out_shape, "fit");
  } catch (const Error& e) {
    throw Error("fit", "validation_data: " + message_of(e));
  }
}

}  // namespace

History Sequential::fit(const Tensor& x_in, const Tensor& y_in, const FitOptions& opt) {
  require_compiled("fit");
  model::check_xy("fit", x_in, y_in);
  check_options(opt);
  build_for(x_in, "fit");
  Shape out_shape = input_shape_;
  for (const auto& layer : layers_) out_shape = layer->compute_output_shape(out_shape);
  if (opt.validation_data) check_validation_data(*opt.validation_data, input_shape_, out_shape, *loss_);

  // Data goes to the model's device once; batches are gathered there.
  model::Batches batches((is_floating(x_in.dtype()) ? x_in : x_in.astype(DType::Float32)).to(device_),
                         loss_->prepare_targets(y_in, out_shape, "fit").to(device_), opt.batch_size);
  // The validation data too, so that each epoch's evaluation copies it on the device (into its
  // kept recording) instead of uploading it again.
  std::optional<std::pair<Tensor, Tensor>> val;
  if (opt.validation_data) {
    const auto& [vx, vy] = *opt.validation_data;
    val = {(is_floating(vx.dtype()) ? vx : vx.astype(DType::Float32)).to(device_), vy.to(device_)};
  }

  const int64_t n = batches.samples(), steps = batches.steps();
  const bool terminal = model::stdout_is_terminal();
  // On the CPU reading the loss costs nothing, so a non-finite loss is caught at its own step; on a
  // GPU it is read when the progress bar redraws and at the epoch's end.
  const bool check_each_step = device_.is_cpu();
  metrics::Accumulator sums(metrics_, device_);
  model::TrainingWork work(*this, sums, opt.check_numerics, check_each_step);
  model::StepSchedule schedule({.op = "fit", .eagerly = "training eagerly", .unit = "step"}, batches, work,
                               model::training_plan(opt, device_, batches, work), opt.verbose != 0);
  // The report is kept however fit ends: a non-finite loss or a callback may throw.
  struct KeepReport {
    StepReport& to;
    const model::StepSchedule& from;
    ~KeepReport() { to = from.report(); }
  } keep_report{last_fit_execution_, schedule};
  History history;

  for (int e = opt.initial_epoch; e < opt.epochs; ++e) {
    if (opt.verbose) std::cout << model::epoch_header(e + 1, opt.epochs) << '\n';
    if (opt.shuffle) batches.set_order(generator_.permutation(n));
    work.set_epoch(e + 1);
    schedule.start_pass();
    model::ProgressBar bar(std::cout, steps, opt.verbose, terminal);
    sums.reset();
    int64_t last_checked = 0;
    for (int64_t s = 0; s < steps; ++s) {
      schedule.run(s);
      if (bar.wants_update(s + 1)) {
        const auto values = sums.results();
        if (!check_each_step && !std::isfinite(values.back().second))
          model::throw_non_finite_loss(values.back().second, e + 1, last_checked + 1, s + 1);
        last_checked = s + 1;
        bar.update(s + 1, values);
      }
    }
    schedule.finish_pass();
    work.zero_grads();  // gradients are not needed between epochs
    auto logs = sums.results();
    if (!std::isfinite(logs.back().second))
      model::throw_non_finite_loss(logs.back().second, e + 1, last_checked + 1, steps);
    if (val) {
      const int64_t val_batch = opt.validation_batch_size > 0 ? opt.validation_batch_size : opt.batch_size;
      const auto val_logs = evaluate_batches(
          val->first, val->second,
          {.batch_size = val_batch, .verbose = 0, .cuda_graphs = opt.cuda_graphs && !opt.check_numerics},
          opt.verbose != 0);
      for (const auto& [k, v] : val_logs) logs.emplace_back("val_" + k, v);
    }
    bar.finish(logs);
    history.epoch.push_back(e);
    std::map<std::string, double> log_map;
    for (const auto& [k, v] : logs) {
      history.history[k].push_back(v);
      log_map[k] = v;
    }
    bool keep_going = true;
    for (const auto& cb : opt.callbacks) keep_going = cb->on_epoch_end(*this, e, log_map) && keep_going;
    if (!keep_going) break;
  }
  return history;
}

StepReport Sequential::last_fit_execution() const { return last_fit_execution_; }

}  // namespace kiln
