// EarlyStopping: Keras 3's rules for the wait, the baseline, the warm-up and restoring the best
// epoch's weights.
#include <cmath>
#include <iostream>

#include "callbacks/python_repr.h"
#include "kiln/callbacks.h"
#include "kiln/error.h"

namespace kiln::callbacks {

namespace {

EarlyStoppingOptions checked(EarlyStoppingOptions o) {
  if (o.patience < 0)
    throw Error("EarlyStopping", "patience is " + std::to_string(o.patience) +
                                     "; expected >= 0 (epochs without improvement before stopping)");
  if (o.start_from_epoch < 0)
    throw Error("EarlyStopping", "start_from_epoch is " + std::to_string(o.start_from_epoch) +
                                     "; expected >= 0 (the first 0-based epoch watched)");
  if (o.verbose < 0) throw Error("EarlyStopping", "verbose is " + std::to_string(o.verbose) + "; expected 0 or 1");
  if (o.baseline && !std::isfinite(*o.baseline))
    throw Error("EarlyStopping", "baseline is " + detail::python_repr(*o.baseline) + "; expected a finite number");
  return o;
}

// A copy of every weight, trainable or not, layer by layer (Keras' get_weights).
std::vector<std::vector<Tensor>> copy_weights(const Model& model) {
  std::vector<std::vector<Tensor>> out;
  for (const auto& layer : model.layers()) {
    out.emplace_back();
    for (const auto& [name, w] : layer->named_weights()) out.back().push_back(w.clone());
  }
  return out;
}

}  // namespace

EarlyStopping::EarlyStopping(EarlyStoppingOptions options)
    : options_(checked(std::move(options))),
      monitor_("EarlyStopping", options_.monitor, options_.mode, options_.min_delta) {}

void EarlyStopping::on_train_begin(Model& /*model*/) {
  wait_ = 0;
  stopped_epoch_ = 0;
  best_.reset();
  best_weights_.clear();
  best_epoch_ = 0;
}

bool EarlyStopping::on_epoch_end(Model& model, int epoch, const Logs& logs) {
  const double current = monitor_.value(logs);
  if (epoch < options_.start_from_epoch) return true;
  // Keras: until an epoch improves, the first watched epoch's weights are the best ones.
  if (options_.restore_best_weights && best_weights_.empty()) {
    best_weights_ = copy_weights(model);
    best_epoch_ = epoch;
  }
  ++wait_;
  if (monitor_.is_improvement(current, best_)) {
    best_ = current;
    best_epoch_ = epoch;
    if (options_.restore_best_weights) best_weights_ = copy_weights(model);
    // The wait restarts only when the value also beats the baseline.
    if (!options_.baseline || monitor_.is_improvement(current, options_.baseline)) wait_ = 0;
    return true;
  }
  if (wait_ >= options_.patience && epoch > 0) {
    stopped_epoch_ = epoch;
    return false;
  }
  return true;
}

void EarlyStopping::on_train_end(Model& model) {
  if (stopped_epoch_ > 0 && options_.verbose > 0)
    std::cout << "Epoch " << stopped_epoch_ + 1 << ": early stopping" << std::endl;
  if (!options_.restore_best_weights || best_weights_.empty()) return;
  if (options_.verbose > 0)
    std::cout << "Restoring model weights from the end of the best epoch: " << best_epoch_ + 1 << "." << std::endl;
  const auto& layers = model.layers();
  if (layers.size() != best_weights_.size())
    throw Error("EarlyStopping", "the model has " + std::to_string(layers.size()) + " layers, " +
                                     std::to_string(best_weights_.size()) +
                                     " when the best weights were kept; expected the same model");
  for (std::size_t i = 0; i < layers.size(); ++i) {
    const auto named = layers[i]->named_weights();
    if (named.size() != best_weights_[i].size())
      throw Error("EarlyStopping", "layer " + layers[i]->name() + " has " + std::to_string(named.size()) +
                                       " weights, " + std::to_string(best_weights_[i].size()) +
                                       " when the best weights were kept; expected the same model");
    // In place, so a kept recording of the step or of evaluate still sees the weights.
    for (std::size_t j = 0; j < named.size(); ++j) layers[i]->set_weight(named[j].first, best_weights_[i][j]);
  }
}

}  // namespace kiln::callbacks
