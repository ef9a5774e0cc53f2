// Model::compile's one use of loss scaling: Keras wraps the optimizer of a mixed_float16 model in
// a LossScaleOptimizer, so that float16 gradients do not underflow.
#pragma once

#include <memory>
#include <vector>

#include "kiln/layer.h"
#include "kiln/optimizers.h"

namespace kiln::optimizers {

/// `optimizer` wrapped in a LossScaleOptimizer with Keras' defaults when one of `layers` has the
/// dtype policy "mixed_float16" and it is not one already; else `optimizer` itself.
std::unique_ptr<Optimizer> with_loss_scaling_for(std::unique_ptr<Optimizer> optimizer,
                                                 const std::vector<std::shared_ptr<Layer>>& layers);

}  // namespace kiln::optimizers
