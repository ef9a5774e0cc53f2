// Conv2D: activation(conv2d(x, kernel) + bias), channels_last.
#include "kiln/error.h"
#include "kiln/layers.h"
#include "ops/conv_geometry.h"

namespace kiln::layers {

namespace {
// Appended piece by piece: "(" + std::to_string(...) trips GCC 12's false -Wrestrict (GCC bug 105651).
std::string pair_str(std::array<int64_t, 2> p) {
  std::string s = "(";
  s.append(std::to_string(p[0])).append(", ").append(std::to_string(p[1])).append(")");
  return s;
}
}  // namespace

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
  input_shape_ = options_.input_shape;
}

Shape Conv2D::compute_output_shape(const Shape& in) const {
  if (in.ndim() != 3)
    throw Error(name_, "input of per-sample shape " + in.str() + "; expected (height, width, channels)");
  const auto h = ops::window_axis(name_, "height", in[0], kernel_size_[0], options_.strides[0], padding_);
  const auto w = ops::window_axis(name_, "width", in[1], kernel_size_[1], options_.strides[1], padding_);
  return Shape{h.out, w.out, filters_};
}

void Conv2D::build(const Shape& in, Generator& gen, Device device) {
  compute_output_shape(in);
  const int64_t c = in[2], kh = kernel_size_[0], kw = kernel_size_[1];
  weights_.clear();
  add_weight("kernel",
             initializers::glorot_uniform({kh, kw, c, filters_}, kh * kw * c, kh * kw * filters_, gen, device));
  if (options_.use_bias) add_weight("bias", Tensor::zeros({filters_}, DType::Float32, device));
  built_ = true;
}

Tensor Conv2D::call(const Tensor& x) {
  const Tensor& kernel = weights_.at(0).second;
  if (x.ndim() != 4 || x.size(3) != kernel.size(2))
    throw Error(name_, "input " + x.shape().str() + " does not fit the layer; expected [N, H, W, " +
                           std::to_string(kernel.size(2)) + "] (channels_last)");
  // Bias and ReLU run inside the convolution's kernels; other activations follow as ops.
  const bool relu = options_.activation == "relu";
  const Tensor bias = options_.use_bias ? weights_.at(1).second : Tensor();
  const Tensor y = conv2d(x, kernel, bias, relu ? "relu" : "linear", options_.strides, padding_);
  return relu ? y : activations::apply(options_.activation, y);
}

std::map<std::string, std::string> Conv2D::config() const {
  return {{"filters", std::to_string(filters_)},   {"kernel_size", pair_str(kernel_size_)},
          {"strides", pair_str(options_.strides)}, {"padding", options_.padding},
          {"activation", options_.activation},     {"use_bias", options_.use_bias ? "true" : "false"}};
}

}  // namespace kiln::layers
