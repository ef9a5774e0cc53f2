// Dense: activation(x W + b).
#include "kiln/error.h"
#include "kiln/layers.h"
#include "kiln/ops.h"

namespace kiln::layers {

Dense::Dense(int64_t units, DenseOptions options) : units_(units), options_(std::move(options)) {
  name_ = "dense";
  if (units <= 0) throw Error("dense", "units is " + std::to_string(units) + "; expected a positive number");
  activations::check(options_.activation, "dense");
  input_shape_ = options_.input_shape;
}

Shape Dense::compute_output_shape(const Shape& input_shape) const {
  if (input_shape.ndim() != 1)
    throw Error(name_, "input of per-sample shape " + input_shape.str() +
                           " has more than one dimension; expected [features] (add a Flatten layer before Dense)");
  return Shape{units_};
}

void Dense::build(const Shape& input_shape, Generator& gen, Device device) {
  compute_output_shape(input_shape);
  const int64_t in = input_shape[0];
  weights_.clear();
  add_weight("kernel", initializers::glorot_uniform({in, units_}, in, units_, gen, device));
  if (options_.use_bias) add_weight("bias", Tensor::zeros({units_}, DType::Float32, device));
  built_ = true;
}

Tensor Dense::call(const Tensor& x) {
  const Tensor& kernel = weights_.at(0).second;
  if (x.ndim() != 2 || x.size(1) != kernel.size(0)) {
    std::string declared = input_shape_.empty() ? "" : " (input_shape=" + Shape(input_shape_).str() + ")";
    throw Error(name_, "input " + x.shape().str() + " has " + (x.ndim() == 2 ? std::to_string(x.size(1)) : "?") +
                           " features, layer expects " + std::to_string(kernel.size(0)) + declared);
  }
  // Linear and ReLU fuse into the products (on a GPU the bias and ReLU ride on the forward GEMM, the
  // bias gradient on the weight-gradient GEMM); other activations apply to the linear result as
  // before, so softmax still records its logits for the loss.
  const std::string& act = options_.activation;
  const bool fused = act.empty() || act == "linear" || act == "relu";
  const Tensor bias = options_.use_bias ? weights_.at(1).second : Tensor();
  Tensor y = dense(x, kernel, bias, fused ? act : "linear");
  return fused ? y : activations::apply(act, y);
}

std::map<std::string, std::string> Dense::config() const {
  return {{"units", std::to_string(units_)},
          {"activation", options_.activation},
          {"use_bias", options_.use_bias ? "true" : "false"}};
}

}  // namespace kiln::layers
