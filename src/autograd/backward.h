// Reverse-mode differentiation over the recorded graph.
#pragma once

#include <functional>

#include "kiln/tensor.h"

namespace kiln::autograd {

/// Told of each leaf whose gradient is complete (no later rule of the pass adds to it), in the
/// order backward completes them: a data-parallel fit starts summing gradients with the other
/// replicas while backward still runs.
using LeafReady = std::function<void(const Tensor& leaf)>;

/// Makes `hook` this thread's LeafReady for the backward passes of its scope.
class ScopedLeafReady {
 public:
  explicit ScopedLeafReady(LeafReady hook);
  ~ScopedLeafReady();
  ScopedLeafReady(const ScopedLeafReady&) = delete;
  ScopedLeafReady& operator=(const ScopedLeafReady&) = delete;

 private:
  LeafReady previous_;
};

/// Back-propagates from the scalar `root` into the grad() of every leaf that requires it.
void run_backward(const Tensor& root);

}  // namespace kiln::autograd
