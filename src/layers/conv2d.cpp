// Conv2D: activation(conv2d(x, kernel) + bias), channels_last.
#include "kiln/layers/conv2d.h"

#include "kiln/activations.h"
#include "kiln/error.h"
#include "layers/config_fields.h"
#include "ops/conv_geometry.h"

namespace kiln::layers {

using ops::pair_str;

namespace {
const RegisterLayer<Conv2D> registered("Conv2D");
}

Conv2D::Conv2D(int64_t filters, std::array<int64_t, 2> kernel_size, Conv2DOptions options)
    : filters_(filters), kernel_size_(kernel_size), options_(std::move(options)) {
  name_ = "conv2d";
  if (filters <= 0) throw Error("conv2d", "filters is " + std::to_string(filters) + "; expected a positive number");
  if (kernel_size[0] <= 0 || kernel_size[1] <= 0)
    throw Error("conv2d", "kernel_size " + pair_str(kernel_size) + "; expected positive sizes");
  if (options_.strides[0] <= 0 || options_.strides[1] <= 0)
    throw Error("conv2d", "strides " + pair_str(options_.strides) + "; expected positive strides");
  padding_ = parse_padding(options_.padding, "conv2d");
  activations::check(options_.activation, "conv2d");
  initializers::check(options_.kernel_initializer, "conv2d");  // unknown names fail here, not at build
  initializers::check(options_.bias_initializer, "conv2d");
  declare(options_.input_shape, options_.dtype);
}

Shape Conv2D::compute_output_shape(const Shape& in) const {
  if (in.ndim() != 3)
    throw Error(name_, "input of per-sample shape " + in.str() + "; expected (height, width, channels)");
  const auto h = ops::window_axis(name_, "height", in[0], kernel_size_[0], options_.strides[0], padding_);
  const auto w = ops::window_axis(name_, "width", in[1], kernel_size_[1], options_.strides[1], padding_);
  return Shape{h.out, w.out, filters_};
}

void Conv2D::create_weights(const Shape& in) {
  add_weight("kernel", {kernel_size_[0], kernel_size_[1], in[2], filters_},
             *initializers::get(options_.kernel_initializer),
             {.regularizer = options_.kernel_regularizer, .constraint = options_.kernel_constraint});
  if (options_.use_bias)
    add_weight("bias", {filters_}, *initializers::get(options_.bias_initializer),
               {.regularizer = options_.bias_regularizer, .constraint = options_.bias_constraint});
}

Tensor Conv2D::call(const Tensor& x, bool) {
  const Tensor& kernel = weight("kernel");
  if (x.ndim() != 4 || x.size(3) != kernel.size(2))
    throw Error(name_, "input " + x.shape().str() + " does not fit the layer; expected [N, H, W, " +
                           std::to_string(kernel.size(2)) + "] (channels_last)");
  // Bias and ReLU run inside the convolution's kernels; other activations follow as ops.
  const bool relu = options_.activation == "relu";
  const Tensor bias = options_.use_bias ? weight("bias") : Tensor();
  const Tensor y = conv2d(x, kernel, bias, relu ? "relu" : "linear", options_.strides, padding_);
  return relu ? y : activations::apply(options_.activation, y);
}

Config Conv2D::get_config() const {
  Config config = {{"filters", filters_},
                   {"kernel_size", pair_config(kernel_size_)},
                   {"strides", pair_config(options_.strides)},
                   {"padding", options_.padding},
                   {"activation", options_.activation},
                   {"use_bias", options_.use_bias}};
  put_kernel_bias_fields(config, options_);
  return config;
}

Conv2D Conv2D::from_config(const Config& config) {
  const auto f = config_fields(config, "Conv2D");
  return Conv2D(f.integer("filters", 1, io::kMaxExtent), f.pair("kernel_size"),
                with_kernel_bias_fields(f, Conv2DOptions{.strides = f.pair("strides"),
                                                         .padding = f.string("padding"),
                                                         .activation = f.string("activation"),
                                                         .use_bias = f.boolean("use_bias")}));
}

}  // namespace kiln::layers
