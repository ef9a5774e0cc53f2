// LearningRateScheduler: the rate of each epoch from the user's function, set before its steps.
#include <cmath>
#include <iostream>

#include "callbacks/learning_rate.h"
#include "callbacks/python_repr.h"
#include "kiln/callbacks.h"
#include "kiln/error.h"

namespace kiln::callbacks {

namespace {

std::function<double(int, double)> checked(std::function<double(int, double)> schedule, int verbose) {
  if (!schedule)
    throw Error("LearningRateScheduler", "schedule is empty; expected a function of (epoch, lr) returning the rate");
  if (verbose < 0) throw Error("LearningRateScheduler", "verbose is " + std::to_string(verbose) + "; expected 0 or 1");
  return schedule;
}

std::function<double(int, double)> of_epoch(std::function<double(int)> schedule) {
  if (!schedule) return nullptr;
  return [s = std::move(schedule)](int epoch, double) { return s(epoch); };
}

}  // namespace

LearningRateScheduler::LearningRateScheduler(std::function<double(int epoch, double lr)> schedule, int verbose)
    : schedule_(checked(std::move(schedule), verbose)), verbose_(verbose) {}

LearningRateScheduler::LearningRateScheduler(std::function<double(int epoch)> schedule, int verbose)
    : LearningRateScheduler(of_epoch(std::move(schedule)), verbose) {}

void LearningRateScheduler::on_train_begin(Model& model) {
  (void)detail::settable_optimizer("LearningRateScheduler", model);
}

void LearningRateScheduler::on_epoch_begin(Model& model, int epoch) {
  Optimizer& opt = detail::settable_optimizer("LearningRateScheduler", model);
  const double current = detail::keras_learning_rate(opt);
  const double lr = schedule_(epoch, current);
  if (!(std::isfinite(lr) && lr >= 0.0))
    throw Error("LearningRateScheduler", "schedule(" + std::to_string(epoch) + ", " + detail::python_repr(current) +
                                             ") returned " + detail::python_repr(lr) +
                                             "; expected a finite learning rate >= 0");
  opt.set_learning_rate(lr);
  if (verbose_ > 0)
    std::cout << "\nEpoch " << epoch + 1 << ": LearningRateScheduler setting learning rate to "
              << detail::python_repr(lr) << "." << std::endl;
}

}  // namespace kiln::callbacks
