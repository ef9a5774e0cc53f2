// Debug checks for NaN and Inf: which layer produced the first non-finite value.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "kiln/layers.h"

namespace kiln::model {

/// Runs `layers` on x, checking each output; throws NonFiniteError naming the first layer whose
/// output holds a NaN or Inf (and the input itself when x does).
Tensor forward_checked(const std::vector<std::shared_ptr<Layer>>& layers, const Tensor& x, const std::string& where);
/// Checks the gradients of each layer's weights, last layer first (the order backward produces
/// them); throws NonFiniteError naming the first layer with a non-finite gradient.
void check_gradients(const std::vector<std::shared_ptr<Layer>>& layers, const std::string& where);

}  // namespace kiln::model
