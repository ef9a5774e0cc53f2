// A helper of the tests that look at every weight of a model.
#pragma once

#include <vector>

#include "kiln/kiln.h"

namespace kiln::testing {

/// Every weight of `model`: the trainable ones, then the rest.
inline std::vector<Tensor> all_weights(const Model& model) {
  std::vector<Tensor> out = model.trainable_weights();
  for (const Tensor& w : model.non_trainable_weights()) out.push_back(w);
  return out;
}

}  // namespace kiln::testing
