// A recorded op in the autograd graph: its differentiable inputs and its backward rule.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "kiln/tensor.h"

namespace kiln::autograd {

/// Given the gradient of the op's output, returns one gradient per input (undefined where the
/// input needs none). Rules must not capture the op's output handle itself (that would be a
/// cycle); capture output.detach() instead.
using BackwardFn = std::function<std::vector<Tensor>(const Tensor& grad_output)>;

struct Node {
  std::string name;            // the op, for error messages
  std::vector<Tensor> inputs;  // the inputs that require grad (others are undefined)
  BackwardFn backward;

  Node() = default;
  Node(const Node&) = delete;
  Node& operator=(const Node&) = delete;
  /// Frees the chain of nodes that only this one kept alive without recursing: a graph of many
  /// thousand ops would otherwise need a stack frame per op (Windows' 1 MiB stack runs out first).
  ~Node();
};

/// Records `output` as produced by op `name` from `inputs` when any input requires grad and grad
/// mode is on. Returns `output` for chaining.
Tensor record(const std::string& name, Tensor output, const std::vector<Tensor>& inputs, BackwardFn backward);

}  // namespace kiln::autograd
