/// Activation: applies a registered activation function as a layer of its own.
#pragma once

#include <string>
#include <vector>

#include "kiln/layer.h"

namespace kiln::layers {

/// Options of Activation.
struct ActivationOptions {
  std::vector<int64_t> input_shape = {};  ///< per-sample input shape
  std::string dtype = "";                 ///< dtype policy (Keras' dtype=): "" takes the global one
};

/// y = activation(x), any shape; no weights.
class Activation : public Layer {
 public:
  /// A layer applying `activation`, any name registered in activations.h ("relu", "gelu", "swish",
  /// ...; "linear" or "" is the identity).
  explicit Activation(std::string activation, ActivationOptions options = {});
  std::string class_name() const override { return "Activation"; }
  Config get_config() const override { return {{"activation", activation_}}; }
  /// Rebuilds from get_config().
  static Activation from_config(const Config& config);
  Shape compute_output_shape(const Shape& input_shape) const override { return input_shape; }
  Tensor call(const Tensor& x, bool training) override;
  /// The activation's name: a layer before it that can fuse it (BatchNormalization in training, for
  /// relu, gelu and silu) then applies it itself and this layer's call() does not run (a subclass
  /// that overrides call() should return "").
  std::string pure_activation() const override { return activation_; }
  /// The activation's name, as given.
  const std::string& activation() const { return activation_; }

 private:
  std::string activation_;
};

}  // namespace kiln::layers
