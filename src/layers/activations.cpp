// The activation table: every activation a layer's `activation` option accepts, by Keras name.
#include "kiln/activations.h"

#include <map>

#include "kiln/error.h"
#include "kiln/ops.h"
#include "layers/activation_op.h"
#include "tensor/tensor_impl.h"

namespace kiln {

Registry<ActivationFn>& activation_registry() {
  static Registry<ActivationFn> registry("activation");
  return registry;
}

RegisterActivation::RegisterActivation(const std::string& name, const ActivationFn& fn) {
  activation_registry().add(name, [fn](const Config&) { return fn; });
}

namespace {

using backend::UnaryFn;
using backend::UnaryOp;

// Keras' defaults: elu's alpha 1, leaky_relu's negative slope 0.2 (Keras 3's activation, not the
// LeakyReLU layer's 0.3).
constexpr double kEluAlpha = 1.0, kLeakyReluSlope = 0.2;

// Keras scores softmax and sigmoid outputs from their inputs (the logits) in its cross-entropies.
Tensor keeping_logits(const Tensor& x, Tensor y) {
  y.impl()->keras_logits = x;
  return y;
}

// The elementwise op behind each built-in activation, by name, filled as they register below.
std::map<std::string, UnaryFn>& elementwise_ops() {
  static std::map<std::string, UnaryFn> ops;
  return ops;
}

// Registers a built-in activation that is one elementwise op: its function and that op (which
// ops applying an activation in their own passes, such as fused_batch_norm, run), in one place.
struct RegisterElementwise {
  RegisterElementwise(const std::string& name, UnaryFn op, const ActivationFn& fn) {
    const RegisterActivation registered(name, fn);
    elementwise_ops().emplace(name, op);
  }
};

const RegisterActivation linear("linear", [](const Tensor& x) { return x; });
const RegisterActivation softmax_act("softmax", [](const Tensor& x) { return keeping_logits(x, softmax(x)); });
const RegisterElementwise relu_act("relu", UnaryOp::Relu, [](const Tensor& x) { return relu(x); });
const RegisterElementwise sigmoid_act("sigmoid", UnaryOp::Sigmoid,
                                      [](const Tensor& x) { return keeping_logits(x, sigmoid(x)); });
const RegisterElementwise tanh_act("tanh", UnaryOp::Tanh, [](const Tensor& x) { return tanh(x); });
// Keras' default gelu is the exact (erf) one; swish is Keras' alias of silu.
const RegisterElementwise gelu_act("gelu", UnaryOp::Gelu, [](const Tensor& x) { return gelu(x, false); });
const RegisterElementwise silu_act("silu", UnaryOp::Silu, [](const Tensor& x) { return silu(x); });
const RegisterElementwise swish_act("swish", UnaryOp::Silu, [](const Tensor& x) { return silu(x); });
const RegisterElementwise elu_act("elu", UnaryFn(UnaryOp::Elu, kEluAlpha),
                                  [](const Tensor& x) { return elu(x, kEluAlpha); });
const RegisterElementwise leaky_relu_act("leaky_relu", UnaryFn(UnaryOp::LeakyRelu, kLeakyReluSlope),
                                         [](const Tensor& x) { return leaky_relu(x, kLeakyReluSlope); });

}  // namespace

void activations::check(const std::string& name, const std::string& op) {
  if (name.empty() || activation_registry().contains(name)) return;
  throw Error(op, activation_registry().unknown(name));
}

std::optional<UnaryFn> activations::elementwise_op(const std::string& name) {
  const auto it = elementwise_ops().find(name);
  if (it == elementwise_ops().end()) return std::nullopt;
  return it->second;
}

Tensor activations::apply(const std::string& name, const Tensor& x) {
  if (name.empty()) return x;
  return activation_registry().make(name, Config())(x);
}

}  // namespace kiln
