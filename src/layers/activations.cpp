// The activation table: every activation a layer's `activation` option accepts, by Keras name.
#include "kiln/activations.h"

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

const RegisterActivation linear("linear", [](const Tensor& x) { return x; });
const RegisterActivation relu_act("relu", [](const Tensor& x) { return relu(x); });
const RegisterActivation sigmoid_act("sigmoid", [](const Tensor& x) { return keeping_logits(x, sigmoid(x)); });
const RegisterActivation softmax_act("softmax", [](const Tensor& x) { return keeping_logits(x, softmax(x)); });
const RegisterActivation tanh_act("tanh", [](const Tensor& x) { return tanh(x); });
// Keras' default gelu is the exact (erf) one; swish is Keras' alias of silu.
const RegisterActivation gelu_act("gelu", [](const Tensor& x) { return gelu(x, false); });
const RegisterActivation silu_act("silu", [](const Tensor& x) { return silu(x); });
const RegisterActivation swish_act("swish", [](const Tensor& x) { return silu(x); });
const RegisterActivation elu_act("elu", [](const Tensor& x) { return elu(x, kEluAlpha); });
const RegisterActivation leaky_relu_act("leaky_relu", [](const Tensor& x) { return leaky_relu(x, kLeakyReluSlope); });

}  // namespace

void activations::check(const std::string& name, const std::string& op) {
  if (name.empty() || activation_registry().contains(name)) return;
  throw Error(op, activation_registry().unknown(name));
}

std::optional<UnaryFn> activations::elementwise_op(const std::string& name) {
  // The ops of the functions registered above, with the same parameters.
  if (name == "relu") return UnaryFn(UnaryOp::Relu);
  if (name == "sigmoid") return UnaryFn(UnaryOp::Sigmoid);
  if (name == "tanh") return UnaryFn(UnaryOp::Tanh);
  if (name == "gelu") return UnaryFn(UnaryOp::Gelu);
  if (name == "silu" || name == "swish") return UnaryFn(UnaryOp::Silu);
  if (name == "elu") return UnaryFn(UnaryOp::Elu, kEluAlpha);
  if (name == "leaky_relu") return UnaryFn(UnaryOp::LeakyRelu, kLeakyReluSlope);
  return std::nullopt;
}

Tensor activations::apply(const std::string& name, const Tensor& x) {
  if (name.empty()) return x;
  return activation_registry().make(name, Config())(x);
}

}  // namespace kiln
