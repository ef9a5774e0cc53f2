// Checks for NaN and Inf: fit's loss at its steps, and (for debugging) which layer produced the
// first non-finite value.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "kiln/layers.h"
#include "model/graph.h"

namespace kiln::model {

/// Runs `graph` on x in `training` mode, checking each layer's output; throws NonFiniteError naming
/// the first layer whose output holds a NaN or Inf (and the input itself when x does).
std::vector<Tensor> forward_checked(const Graph& graph, const std::vector<Tensor>& x, bool training,
                                    const std::string& where);
/// Checks the gradients of each layer's weights, last layer first (the order backward produces
/// them); throws NonFiniteError naming the first layer with a non-finite gradient.
void check_gradients(const std::vector<std::shared_ptr<Layer>>& layers, const std::string& where);
/// Throws fit's NonFiniteError for loss value `v` at 1-based `epoch`, seen somewhere in steps
/// first_step ... last_step (1-based; equal when the loss is read at every step).
[[noreturn]] void throw_non_finite_loss(double v, int epoch, int64_t first_step, int64_t last_step);

}  // namespace kiln::model
