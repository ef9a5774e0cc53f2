// Model::fit: Keras' training loop (shuffle each epoch, batch-weighted epoch means,
// validation at each epoch's end, callbacks). The steps run through model/step_schedule.h: on a
// CUDA device the full batches replay one recorded step (model/recorded_step.h) after eager
// warm-up steps, and so do the validation pass's (evaluate's recording, kept across epochs:
// model/recorded_evaluation.h). Under FitOptions::strategy, distribute/replica.h shards the
// batches, sums the gradients and makes the logs global; a MirroredStrategy first spreads the fit
// over threads, one per replica (distribute/mirrored_fit.h).
#include <cmath>
#include <iostream>
#include <optional>

#include "distribute/mirrored_fit.h"
#include "distribute/replica.h"
#include "kiln/error.h"
#include "kiln/model.h"
#include "kiln/optimizers.h"
#include "kiln/random.h"
#include "model/data_checks.h"
#include "model/graph.h"
#include "model/log_sums.h"
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

// Validation data is checked before the first epoch rather than at its end.
void check_validation_data(const ValidationData& data, const Model& model) {
  model::check_xy("fit", data.x, data.y, "validation_data: ");
  const auto inputs = model.input_shapes();
  if (data.x.size() != inputs.size())
    throw Error("fit", "validation_data: got " + std::to_string(data.x.size()) + " input tensors; expected " +
                           std::to_string(inputs.size()) + " (one per model input)");
  for (std::size_t i = 0; i < inputs.size(); ++i)
    if (data.x[i].shape().drop_front() != inputs[i])
      throw Error("fit", "validation_data: x" + (inputs.size() == 1 ? "" : "[" + std::to_string(i) + "]") +
                             " has per-sample shape " + data.x[i].shape().drop_front().str() + " but the model takes " +
                             inputs[i].str() + "; expected the shape of the training x");
  const auto outputs = model.output_shapes();
  if (data.y.size() != outputs.size())
    throw Error("fit", "validation_data: got " + std::to_string(data.y.size()) + " target tensors; expected " +
                           std::to_string(outputs.size()) + " (one per model output)");
  try {
    for (std::size_t i = 0; i < outputs.size(); ++i) model.losses()[i]->prepare_targets(data.y[i], outputs[i], "fit");
  } catch (const Error& e) {
    throw Error("fit", "validation_data: " + e.message());
  }
}

}  // namespace

History Model::fit(const Tensor& x, const Tensor& y, const FitOptions& options) {
  return fit(std::vector<Tensor>{x}, std::vector<Tensor>{y}, options);
}

History Model::fit(const std::vector<Tensor>& x_in, const std::vector<Tensor>& y_in, const FitOptions& opt) {
  require_compiled("fit");
  model::check_xy("fit", x_in, y_in);
  check_options(opt);
  build_for(x_in, "fit");
  require_compiled("fit");  // a Sequential model learns its outputs when built
  if (opt.validation_data) check_validation_data(*opt.validation_data, *this);
  if (opt.strategy) distribute::Replica::check(*opt.strategy, opt.batch_size);
  // Replicas in this process: each runs this fit on its own thread, under a strategy of its own.
  if (auto* mirrored = dynamic_cast<distribute::MirroredStrategy*>(opt.strategy.get()))
    return distribute::fit_mirrored(*mirrored, *this, x_in, y_in, opt);

  // Data goes to the model's device once; batches are gathered there.
  std::vector<Tensor> y_ready = prepare_targets(y_in, "fit");
  for (Tensor& t : y_ready) t = t.to(device_);
  model::Batches batches(prepare_inputs(x_in), std::move(y_ready), opt.batch_size);
  // The validation data too, so that each epoch's evaluation copies it on the device (into its
  // kept recording) instead of uploading it again.
  std::optional<ValidationData> val;
  if (opt.validation_data) {
    val = ValidationData(prepare_inputs(opt.validation_data->x), opt.validation_data->y);
    for (Tensor& t : val->y) t = t.to(device_);
  }

  std::unique_ptr<distribute::Replica> replica;
  if (opt.strategy) replica = std::make_unique<distribute::Replica>(*opt.strategy, *this, batches, opt);
  // Under a strategy only replica 0 prints.
  const int verbose = replica && !replica->chief() ? 0 : opt.verbose;
  const int64_t n = batches.samples(), steps = batches.steps();
  const bool terminal = model::stdout_is_terminal();
  // On the CPU reading the loss costs nothing, so a non-finite loss is caught at its own step; on a
  // GPU it is read when the progress bar redraws and at the epoch's end.
  const bool check_each_step = device_.is_cpu();
  model::LogSums sums(metrics_, output_names(), device_);
  model::TrainingWork work(*this, sums, opt.check_numerics, check_each_step);
  work.set_replica(replica.get());
  model::StepSchedule schedule({.op = "fit", .eagerly = "training eagerly", .unit = "step"}, batches, work,
                               model::training_plan(opt, device_, batches, work), verbose != 0);
  // The report is kept however fit ends: a non-finite loss or a callback may throw.
  struct KeepReport {
    StepReport& to;
    const model::StepSchedule& from;
    ~KeepReport() { to = from.report(); }
  } keep_report{last_fit_execution_, schedule};
  History history;
  // Other replicas than the chief run the callbacks without those that write files.
  const std::vector<std::shared_ptr<Callback>> rank_callbacks =
      replica ? replica->callbacks(opt.callbacks) : std::vector<std::shared_ptr<Callback>>{};
  const auto& callbacks = replica ? rank_callbacks : opt.callbacks;
  for (const auto& cb : callbacks) cb->on_train_begin(*this);
  int first_epoch = opt.initial_epoch;
  for (const auto& cb : callbacks)
    if (const int e = cb->resume_epoch(*this); e >= 0) first_epoch = e;
  if (replica) {
    first_epoch = replica->agree_on_first_epoch(first_epoch);
    replica->broadcast_state();
  }
  std::vector<Tensor> val_targets;  // under a strategy: the validation targets, prepared once
  if (replica && val) val_targets = prepare_targets(val->y, "fit");

  for (int e = first_epoch; e < opt.epochs; ++e) {
    for (const auto& cb : callbacks) cb->on_epoch_begin(*this, e);
    if (replica) replica->begin_epoch(e);
    if (verbose) std::cout << model::epoch_header(e + 1, opt.epochs) << '\n';
    if (opt.shuffle) batches.set_order(generator_.permutation(n));
    work.set_epoch(e + 1);
    schedule.start_pass();
    model::ProgressBar bar(std::cout, steps, verbose, terminal);
    sums.reset();
    int64_t last_checked = 0;
    for (int64_t s = 0; s < steps; ++s) {
      work.begin_step(s);
      schedule.run(s);
      if (bar.wants_update(s + 1)) {
        if (replica) replica->synchronize("step " + std::to_string(s + 1) + " of epoch " + std::to_string(e + 1));
        const auto values = sums.results();
        if (!check_each_step && !std::isfinite(values.back().second))
          model::throw_non_finite_loss(values.back().second, e + 1, last_checked + 1, s + 1);
        last_checked = s + 1;
        bar.update(s + 1, values);
      }
    }
    if (replica) replica->synchronize("the last step of epoch " + std::to_string(e + 1));
    schedule.finish_pass();
    // Loss scaling counts skipped steps on the device; one read per epoch makes iterations() exact
    // for the callbacks (a checkpoint, a schedule's learning rate).
    optimizer_->synchronize();
    work.zero_grads();  // gradients are not needed between epochs
    auto logs = sums.results();
    if (replica) replica->reduce_logs(logs, sums.samples(), "the log reduction of epoch " + std::to_string(e + 1));
    if (!std::isfinite(logs.back().second))
      model::throw_non_finite_loss(logs.back().second, e + 1, last_checked + 1, steps);
    if (val) {
      const int64_t val_batch = opt.validation_batch_size > 0 ? opt.validation_batch_size : opt.batch_size;
      std::map<std::string, double> val_logs;
      if (replica && replica->size() > 1) {
        for (const auto& [k, v] : replica->evaluate(val->x, val_targets, val_batch, e + 1)) val_logs[k] = v;
      } else {
        val_logs = evaluate_batches(
            val->x, val->y,
            {.batch_size = val_batch, .verbose = 0, .cuda_graphs = opt.cuda_graphs && !opt.check_numerics},
            verbose != 0);
      }
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
    for (const auto& cb : callbacks) keep_going = cb->on_epoch_end(*this, e, log_map) && keep_going;
    if (replica) {
      replica->check_replicas(e + 1);
      keep_going = replica->all_keep_going(keep_going, e + 1);
    }
    if (!keep_going) break;
  }
  // Keras: after the epochs, the optimizer finishes the weights (use_ema copies its averages in).
  if (opt.epochs > first_epoch) optimizer_->finalize_variable_values(trainable_weights());
  for (const auto& cb : callbacks) cb->on_train_end(*this);
  if (replica) replica->barrier("the end of fit");  // the chief's checkpoints are written
  return history;
}

StepReport Model::last_fit_execution() const { return last_fit_execution_; }

}  // namespace kiln
