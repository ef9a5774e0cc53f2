// settable_optimizer and keras_learning_rate: shared by ReduceLROnPlateau and
// LearningRateScheduler, so both refuse the same optimizers with the same words.
#include "callbacks/learning_rate.h"

#include "kiln/error.h"
#include "kiln/optimizers.h"

namespace kiln::callbacks::detail {

Optimizer& settable_optimizer(const std::string& op, Model& model) {
  Optimizer* opt = model.optimizer();
  if (!opt) throw Error(op, "the model is not compiled; expected compile() before fit");
  if (const auto* keras = dynamic_cast<const optimizers::KerasOptimizer*>(opt)) {
    if (keras->common().learning_rate.is_schedule())
      throw Error(op, "the optimizer " + opt->class_name() +
                          " takes its learning rate from a schedule, which cannot be set; expected an "
                          "optimizer made with a number as its learning_rate");
    return *opt;
  }
  try {
    (void)opt->learning_rate();
  } catch (const Error& e) {
    throw Error(op, "the optimizer " + opt->class_name() + " has no learning rate to set (" + e.what() +
                        "); expected an optimizer with learning_rate() and set_learning_rate()");
  }
  return *opt;
}

double keras_learning_rate(const Optimizer& optimizer) {
  return static_cast<double>(static_cast<float>(optimizer.learning_rate()));
}

}  // namespace kiln::callbacks::detail
