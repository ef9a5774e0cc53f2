// ReduceLROnPlateau: Keras' wait and cooldown counting; the rate is changed between epochs through
// Optimizer::set_learning_rate.
#include <algorithm>
#include <cmath>
#include <iostream>

#include "callbacks/learning_rate.h"
#include "callbacks/python_repr.h"
#include "kiln/callbacks.h"
#include "kiln/error.h"

namespace kiln::callbacks {

namespace {

ReduceLROnPlateauOptions checked(ReduceLROnPlateauOptions o) {
  const std::string op = "ReduceLROnPlateau";
  if (!(o.factor >= 0.0 && o.factor < 1.0))  // NaN fails too
    throw Error(op, "factor is " + detail::python_repr(o.factor) +
                        "; expected a number in [0, 1) (the learning rate is multiplied by it; Keras refuses a "
                        "factor >= 1)");
  if (o.patience < 0)
    throw Error(op, "patience is " + std::to_string(o.patience) +
                        "; expected >= 0 (epochs without improvement before reducing)");
  if (o.cooldown < 0)
    throw Error(op, "cooldown is " + std::to_string(o.cooldown) + "; expected >= 0 (epochs to wait after a reduction)");
  if (!(std::isfinite(o.min_lr) && o.min_lr >= 0.0))
    throw Error(op, "min_lr is " + detail::python_repr(o.min_lr) + "; expected a finite number >= 0");
  if (o.verbose < 0) throw Error(op, "verbose is " + std::to_string(o.verbose) + "; expected 0 or 1");
  return o;
}

}  // namespace

ReduceLROnPlateau::ReduceLROnPlateau(ReduceLROnPlateauOptions options)
    : options_(checked(std::move(options))),
      monitor_("ReduceLROnPlateau", options_.monitor, options_.mode, options_.min_delta) {}

void ReduceLROnPlateau::on_train_begin(Model& model) {
  (void)detail::settable_optimizer("ReduceLROnPlateau", model);
  best_.reset();
  cooldown_counter_ = 0;
  wait_ = 0;
}

bool ReduceLROnPlateau::on_epoch_end(Model& model, int epoch, const Logs& logs) {
  const double current = monitor_.value(logs);
  if (cooldown_counter_ > 0) {
    --cooldown_counter_;
    wait_ = 0;
  }
  if (monitor_.is_improvement(current, best_)) {
    best_ = current;
    wait_ = 0;
    return true;
  }
  if (cooldown_counter_ > 0) return true;
  if (++wait_ < options_.patience) return true;
  Optimizer& opt = detail::settable_optimizer("ReduceLROnPlateau", model);
  const double old_lr = detail::keras_learning_rate(opt);
  // Keras compares in float32: a rate already at min_lr is not "reduced" again.
  if (!(old_lr > static_cast<float>(options_.min_lr))) return true;
  const double new_lr = std::max(old_lr * options_.factor, options_.min_lr);
  opt.set_learning_rate(new_lr);
  if (options_.verbose > 0)
    std::cout << "\nEpoch " << epoch + 1 << ": ReduceLROnPlateau reducing learning rate to "
              << detail::python_repr(new_lr) << "." << std::endl;
  cooldown_counter_ = options_.cooldown;
  wait_ = 0;
  return true;
}

}  // namespace kiln::callbacks
