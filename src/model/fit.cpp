// Sequential::fit: Keras' training loop (shuffle each epoch, batch-weighted epoch means,
// validation at each epoch's end, callbacks). On a CUDA device the full batches run as one recorded
// step (model/graph_step.h) after a few eager warm-up steps, and so do the validation pass's
// (evaluate's recording, kept across epochs: model/recorded_evaluation.h).
#include <cmath>
#include <iostream>
#include <numeric>

#include "backend/backend.h"
#include "kiln/error.h"
#include "kiln/model.h"
#include "kiln/random.h"
#include "metrics/metrics.h"
#include "model/data_checks.h"
#include "model/graph_step.h"
#include "model/numerics.h"
#include "model/progress.h"

namespace kiln {

namespace {

std::string describe(double v) { return std::isnan(v) ? "nan" : (v > 0 ? "inf" : "-inf"); }

[[noreturn]] void throw_non_finite(double v, int epoch, int64_t first_step, int64_t last_step) {
  const std::string where = first_step == last_step
                                ? "step " + std::to_string(last_step)
                                : "a step between " + std::to_string(first_step) + " and " + std::to_string(last_step);
  throw NonFiniteError("fit", "the loss became " + describe(v) + " at epoch " + std::to_string(epoch) + ", " + where +
                                  "; expected finite values (lower the learning rate, or check x and y for NaN/Inf)");
}

// Eager steps before recording: the first chooses cuDNN algorithms, creates the optimizer's slots
// and fills the allocator's cache; the second runs as every later step will.
constexpr int64_t kWarmupSteps = 2;

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

}  // namespace

History Sequential::fit(const Tensor& x_in, const Tensor& y_in, const FitOptions& opt) {
  require_compiled("fit");
  model::check_xy("fit", x_in, y_in);
  check_options(opt);
  build_for(x_in, "fit");
  Shape out_shape = input_shape_;
  for (const auto& layer : layers_) out_shape = layer->compute_output_shape(out_shape);
  // Validation data is checked now rather than at the end of the first epoch.
  if (opt.validation_data) {
    const auto& [vx, vy] = *opt.validation_data;
    model::check_xy("fit", vx, vy, "validation_data: ");
    if (vx.shape().drop_front() != input_shape_)
      throw Error("fit", "validation_data: x has per-sample shape " + vx.shape().drop_front().str() +
                             " but the model takes " + input_shape_.str() + "; expected the shape of the training x");
    try {
      loss_->prepare_targets(vy, out_shape, "fit");
    } catch (const Error& e) {
      throw Error("fit", "validation_data: " + message_of(e));
    }
  }

  // Data goes to the model's device once; batches are gathered there.
  const Tensor x = (is_floating(x_in.dtype()) ? x_in : x_in.astype(DType::Float32)).to(device_);
  const Tensor y = loss_->prepare_targets(y_in, out_shape, "fit").to(device_);
  // The validation data too, so that each epoch's evaluation copies it on the device (into its
  // kept recording) instead of uploading it again.
  std::optional<std::pair<Tensor, Tensor>> val;
  if (opt.validation_data) {
    const auto& [vx, vy] = *opt.validation_data;
    val = {(is_floating(vx.dtype()) ? vx : vx.astype(DType::Float32)).to(device_), vy.to(device_)};
  }

  const int64_t n = x.size(0), steps = (n + opt.batch_size - 1) / opt.batch_size;
  const bool terminal = model::stdout_is_terminal();
  // On the CPU reading the loss costs nothing, so a non-finite loss is caught at its own step; on a
  // GPU it is read when the progress bar redraws and at the epoch's end.
  const bool check_each_step = device_.is_cpu();
  std::vector<Tensor> params = trainable_weights();
  metrics::Accumulator sums(metrics_, device_);
  History history;

  // The recorded step (CUDA graphs): the full batches replay one recording; the last partial batch,
  // the warm-up steps and devices that cannot record run eagerly.
  const int64_t full_steps = n / opt.batch_size;
  bool may_record = opt.cuda_graphs && !opt.check_numerics && backend::get(device_).can_capture();
  std::unique_ptr<model::GraphStep> graph;
  int64_t eager_steps = 0;

  // One step without the optimizer update; only device work, so that it can be recorded.
  Tensor last_loss;
  auto body = [&](const Tensor& xb, const Tensor& yb, const std::string* where) {
    for (Tensor& p : params) p.zero_grad();
    const Tensor pred = where ? model::forward_checked(layers_, xb, *where) : (*this)(xb);
    const Tensor loss = (*loss_)(yb, pred);
    loss.backward();
    if (where) model::check_gradients(layers_, *where);
    sums.add(loss, yb, pred);
    last_loss = loss;
  };

  std::vector<int32_t> order(static_cast<std::size_t>(n));
  for (int e = opt.initial_epoch; e < opt.epochs; ++e) {
    if (opt.verbose) std::cout << model::epoch_header(e + 1, opt.epochs) << '\n';
    if (opt.shuffle)
      order = generator_.permutation(n);
    else
      std::iota(order.begin(), order.end(), 0);
    const Tensor order_t = Tensor::from_vector(order, device_);
    const int64_t first_iteration = optimizer_->iterations();
    if (graph) graph->start_epoch(order, first_iteration);
    model::ProgressBar bar(std::cout, steps, opt.verbose, terminal);
    sums.reset();
    int64_t last_checked = 0;
    for (int64_t s = 0; s < steps; ++s) {
      const int64_t b0 = s * opt.batch_size, b1 = std::min(n, b0 + opt.batch_size);
      bool done = false;  // by the recorded step
      if (graph && s < full_steps) {
        const auto ran = graph->run(s, [&](const Tensor& xb, const Tensor& yb) { body(xb, yb, nullptr); });
        if (ran == model::GraphStep::Ran::Replayed) sums.add_samples(b1 - b0);
        if (ran == model::GraphStep::Ran::Failed) {
          if (last_loss.defined()) sums.add_samples(-(b1 - b0));  // the recorded body had counted it
          if (opt.verbose)
            std::cout << "fit: training eagerly; recording the step failed: " << graph->failure() << '\n';
          graph.reset();
          may_record = false;
        }
        done = ran != model::GraphStep::Ran::Failed;
      }
      if (!done) {
        if (graph) graph->settle(*optimizer_);
        const Tensor idx = order_t.slice_rows(b0, b1);
        const Tensor xb = opt.shuffle ? take_rows(x, idx) : x.slice_rows(b0, b1);
        const Tensor yb = opt.shuffle ? take_rows(y, idx) : y.slice_rows(b0, b1);
        const std::string where =
            opt.check_numerics ? "epoch " + std::to_string(e + 1) + ", step " + std::to_string(s + 1) : "";
        body(xb, yb, opt.check_numerics ? &where : nullptr);
        optimizer_->step(params);
        if (check_each_step) {
          const double v = last_loss.item();
          if (!std::isfinite(v)) throw_non_finite(v, e + 1, s + 1, s + 1);
        }
        if (may_record && !graph && ++eager_steps >= kWarmupSteps && s + 1 < full_steps) {
          graph = model::GraphStep::make(*optimizer_, params, x, y, opt.batch_size);
          if (graph)
            graph->start_epoch(order, first_iteration);
          else
            may_record = false;
        }
      }
      last_loss = Tensor();
      if (bar.wants_update(s + 1)) {
        const auto values = sums.results();
        if (!check_each_step && !std::isfinite(values.back().second))
          throw_non_finite(values.back().second, e + 1, last_checked + 1, s + 1);
        last_checked = s + 1;
        bar.update(s + 1, values);
      }
    }
    if (graph) graph->settle(*optimizer_);
    for (Tensor& p : params) p.zero_grad();  // gradients are not needed between epochs
    auto logs = sums.results();
    if (!std::isfinite(logs.back().second)) throw_non_finite(logs.back().second, e + 1, last_checked + 1, steps);
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

}  // namespace kiln
