// Dense: activation(x W + b).
#include "kiln/layers/dense.h"

#include "kiln/activations.h"
#include "kiln/error.h"
#include "kiln/ops.h"
#include "layers/config_fields.h"

namespace kiln::layers {

namespace {
const RegisterLayer<Dense> registered("Dense");
}

Dense::Dense(int64_t units, DenseOptions options) : units_(units), options_(std::move(options)) {
  name_ = "dense";
  if (units <= 0) throw Error("dense", "units is " + std::to_string(units) + "; expected a positive number");
  activations::check(options_.activation, "dense");
  initializers::check(options_.kernel_initializer, "dense");  // unknown names fail here, not at build
  initializers::check(options_.bias_initializer, "dense");
  declare(options_.input_shape, options_.dtype);
}

Shape Dense::compute_output_shape(const Shape& input_shape) const {
  if (input_shape.ndim() != 1)
    throw Error(name_, "input of per-sample shape " + input_shape.str() +
                           " has more than one dimension; expected [features] (add a Flatten layer before Dense)");
  return Shape{units_};
}

void Dense::create_weights(const Shape& input_shape) {
  add_weight("kernel", {input_shape[0], units_}, *initializers::get(options_.kernel_initializer),
             {.regularizer = options_.kernel_regularizer, .constraint = options_.kernel_constraint});
  if (options_.use_bias)
    add_weight("bias", {units_}, *initializers::get(options_.bias_initializer),
               {.regularizer = options_.bias_regularizer, .constraint = options_.bias_constraint});
}

Tensor Dense::call(const Tensor& x, bool) {
  const Tensor& kernel = weight("kernel");
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
  const Tensor bias = options_.use_bias ? weight("bias") : Tensor();
  Tensor y = dense(x, kernel, bias, fused ? act : "linear");
  return fused ? y : activations::apply(act, y);
}

Config Dense::get_config() const {
  Config config = {{"units", units_}, {"activation", options_.activation}, {"use_bias", options_.use_bias}};
  put_kernel_bias_fields(config, options_);
  return config;
}

Dense Dense::from_config(const Config& config) {
  const auto f = config_fields(config, "Dense");
  return Dense(f.integer("units", 1, io::kMaxExtent),
               with_kernel_bias_fields(
                   f, DenseOptions{.activation = f.string("activation"), .use_bias = f.boolean("use_bias")}));
}

}  // namespace kiln::layers
