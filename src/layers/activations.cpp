// Activations by Keras name, and Keras' glorot_uniform initializer.
#include <cmath>

#include "kiln/error.h"
#include "kiln/layers.h"
#include "kiln/random.h"
#include "tensor/tensor_impl.h"

namespace kiln {

namespace {
const char* kKnown = "linear, relu, sigmoid, tanh or softmax";
}

void activations::check(const std::string& name, const std::string& op) {
  if (name == "linear" || name.empty() || name == "relu" || name == "sigmoid" || name == "tanh" || name == "softmax")
    return;
  throw Error(op, "unknown activation '" + name + "'; expected " + kKnown);
}

Tensor activations::apply(const std::string& name, const Tensor& x) {
  if (name == "linear" || name.empty()) return x;
  if (name == "relu") return relu(x);
  if (name == "sigmoid") {
    Tensor y = sigmoid(x);
    y.impl()->keras_logits = x;  // Keras keeps sigmoid's logits too
    return y;
  }
  if (name == "tanh") return tanh(x);
  if (name == "softmax") {
    Tensor y = softmax(x);
    y.impl()->keras_logits = x;
    return y;
  }
  throw Error("activation", "unknown activation '" + name + "'; expected " + kKnown);
}

Tensor initializers::glorot_uniform(const Shape& shape, int64_t fan_in, int64_t fan_out, Generator& gen,
                                    Device device) {
  const double limit = std::sqrt(6.0 / static_cast<double>(fan_in + fan_out));
  return Tensor::uniform(shape, -limit, limit, gen, DType::Float32, device);
}

}  // namespace kiln
