// Reverse-mode differentiation over the recorded graph.
#pragma once

#include "kiln/tensor.h"

namespace kiln::autograd {

/// Back-propagates from the scalar `root` into the grad() of every leaf that requires it.
void run_backward(const Tensor& root);

}  // namespace kiln::autograd
