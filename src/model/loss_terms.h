// The terms of a model's training loss, in one place for Model::compute_loss and the step work:
// each output's loss, their weighted sum and the layers' regularization penalties.
#pragma once

#include <vector>

#include "kiln/model.h"

namespace kiln::model {

/// The loss of one batch.
struct LossTerms {
  Tensor total;                 ///< sum of loss_weights[i] * outputs[i], plus every penalty
  std::vector<Tensor> outputs;  ///< each output's loss, unweighted (Keras' "<output>_loss" logs)
};

/// `t` cast to float32 (differentiably) when it is a 16-bit float, else `t` itself: the dtype a
/// model's outputs are scored in, whatever its layers compute in.
Tensor in_float32(const Tensor& t);

/// The compiled losses of `model` (compiled) for one target and one prediction per output.
LossTerms loss_terms(const Model& model, const std::vector<Tensor>& y_true, const std::vector<Tensor>& y_pred);

}  // namespace kiln::model
