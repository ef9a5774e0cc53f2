// The backend op behind a registered activation's name, for ops that apply an activation in their
// own passes (fused_batch_norm): the name a user gives an Activation layer, the op its kernels run.
#pragma once

#include <optional>
#include <string>

#include "backend/backend.h"

namespace kiln::activations {

/// The elementwise op that the built-in activation `name` applies ("relu" -> Relu, "swish" ->
/// Silu, "leaky_relu" -> LeakyRelu with Keras' slope); none for "linear", "softmax" (not
/// elementwise), and names registered by users.
std::optional<backend::UnaryFn> elementwise_op(const std::string& name);

}  // namespace kiln::activations
