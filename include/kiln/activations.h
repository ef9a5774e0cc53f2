/// Keras' activations by name, in one table usable in every layer's `activation` option.
#pragma once

#include <functional>
#include <string>

#include "kiln/registry.h"
#include "kiln/tensor.h"

namespace kiln {

/// An activation function: y = f(x), differentiable.
using ActivationFn = std::function<Tensor(const Tensor&)>;

/// The table of activations by Keras name ("relu", "gelu", ...); the factory's config is unused.
Registry<ActivationFn>& activation_registry();

/// Registers activation `fn` under `name` while this object is constructed (declare one at
/// namespace scope: `const kiln::RegisterActivation registered("my_act", my_act);`).
struct RegisterActivation {
  /// Registers `fn` as `name`.
  RegisterActivation(const std::string& name, const ActivationFn& fn);
};

namespace activations {
/// Applies a registered activation by name ("linear" or "" is the identity). Softmax and sigmoid
/// outputs keep their input as logits for the cross-entropy losses, as Keras does.
Tensor apply(const std::string& name, const Tensor& x);
/// Throws unless `name` is a registered activation; `op` names the layer in the message.
void check(const std::string& name, const std::string& op);
}  // namespace activations

}  // namespace kiln
