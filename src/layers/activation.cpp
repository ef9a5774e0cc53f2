// Activation: a registered activation function applied as a layer.
#include "kiln/layers/activation.h"

#include "kiln/activations.h"
#include "layers/config_fields.h"

namespace kiln::layers {

namespace {
const RegisterLayer<Activation> registered("Activation");
}

Activation::Activation(std::string activation, ActivationOptions options) : activation_(std::move(activation)) {
  name_ = "activation";
  activations::check(activation_, "activation");
  declare(std::move(options.input_shape), options.dtype);
}

Tensor Activation::call(const Tensor& x, bool) { return activations::apply(activation_, x); }

Activation Activation::from_config(const Config& config) {
  return Activation(config_fields(config, "Activation").string("activation"));
}

}  // namespace kiln::layers
