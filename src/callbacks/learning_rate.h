// The optimizer's learning rate as the learning-rate callbacks read and set it.
#pragma once

#include <string>

#include "kiln/model.h"

namespace kiln::callbacks::detail {

/// The compiled optimizer of `model`, checked to have a learning rate that can be set (a number,
/// not a schedule); throws kiln::Error from `op` saying why not.
Optimizer& settable_optimizer(const std::string& op, Model& model);

/// The optimizer's current learning rate rounded to float32, as Keras reads its float32 variable.
double keras_learning_rate(const Optimizer& optimizer);

}  // namespace kiln::callbacks::detail
