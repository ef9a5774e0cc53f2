// Reusable gradient check: analytic gradients from backward() against central finite differences,
// in float64 on the CPU.
#pragma once

#include <gtest/gtest.h>

#include <functional>
#include <vector>

#include "kiln/kiln.h"

namespace kiln::testing {

/// A function of tensors to check; its output may have any shape.
using TensorFn = std::function<Tensor(const std::vector<Tensor>&)>;

/// Checks d(sum(fn(inputs) * R))/d(input) for every input that requires grad, with R a fixed random
/// projection (so every output element matters). Inputs must be float64 CPU tensors.
::testing::AssertionResult gradcheck(const TensorFn& fn, const std::vector<Tensor>& inputs, double eps = 1e-6,
                                     double atol = 1e-6, double rtol = 1e-5);

/// A float64 CPU tensor of uniform values in [lo, hi) that requires grad.
Tensor random_input(const Shape& shape, uint64_t seed, double lo = -1.0, double hi = 1.0);

}  // namespace kiln::testing
