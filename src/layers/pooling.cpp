// MaxPooling2D and Flatten: layers without weights.
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

MaxPooling2D::MaxPooling2D(std::array<int64_t, 2> pool_size, MaxPooling2DOptions options)
    : pool_size_(pool_size), options_(std::move(options)) {
  name_ = "max_pooling2d";
  if (pool_size[0] <= 0 || pool_size[1] <= 0)
    throw Error("max_pooling2d", "pool_size " + pair_str(pool_size) + "; expected positive sizes");
  strides_ = (options_.strides[0] == 0 && options_.strides[1] == 0) ? pool_size : options_.strides;
  if (strides_[0] <= 0 || strides_[1] <= 0)
    throw Error("max_pooling2d", "strides " + pair_str(strides_) + "; expected positive strides");
  padding_ = parse_padding(options_.padding, "max_pooling2d");
  input_shape_ = options_.input_shape;
}

Shape MaxPooling2D::compute_output_shape(const Shape& in) const {
  if (in.ndim() != 3)
    throw Error(name_, "input of per-sample shape " + in.str() + "; expected (height, width, channels)");
  const auto h = ops::window_axis(name_, "height", in[0], pool_size_[0], strides_[0], padding_);
  const auto w = ops::window_axis(name_, "width", in[1], pool_size_[1], strides_[1], padding_);
  return Shape{h.out, w.out, in[2]};
}

Tensor MaxPooling2D::call(const Tensor& x) { return max_pool2d(x, pool_size_, strides_, padding_); }

std::map<std::string, std::string> MaxPooling2D::config() const {
  return {{"pool_size", pair_str(pool_size_)}, {"strides", pair_str(strides_)}, {"padding", options_.padding}};
}

Flatten::Flatten(FlattenOptions options) {
  name_ = "flatten";
  input_shape_ = std::move(options.input_shape);
}

Shape Flatten::compute_output_shape(const Shape& in) const { return Shape{in.numel()}; }

Tensor Flatten::call(const Tensor& x) { return flatten(x); }

}  // namespace kiln::layers
