// MaxPooling2D and AveragePooling2D: the maximum or the mean over sliding windows, channels_last.
#include "kiln/layers/pooling.h"

#include "kiln/error.h"
#include "layers/config_fields.h"
#include "ops/conv_geometry.h"

namespace kiln::layers {

using ops::pair_str;

namespace {

const RegisterLayer<MaxPooling2D> max_registered("MaxPooling2D");
const RegisterLayer<AveragePooling2D> average_registered("AveragePooling2D");

// Both classes' configs have the same fields.
template <typename L>
L pooling_from_config(const Config& config, const std::string& class_name) {
  const auto f = config_fields(config, class_name);
  return L(f.pair("pool_size"), {.strides = f.pair("strides"), .padding = f.string("padding")});
}

}  // namespace

Pooling2D::Pooling2D(const std::string& op, std::array<int64_t, 2> pool_size, Pooling2DOptions options)
    : pool_size_(pool_size), options_(std::move(options)) {
  name_ = op;
  if (pool_size[0] <= 0 || pool_size[1] <= 0)
    throw Error(op, "pool_size " + pair_str(pool_size) + "; expected positive sizes");
  strides_ = (options_.strides[0] == 0 && options_.strides[1] == 0) ? pool_size : options_.strides;
  if (strides_[0] <= 0 || strides_[1] <= 0)
    throw Error(op, "strides " + pair_str(strides_) + "; expected positive strides");
  padding_ = parse_padding(options_.padding, op);
  declare(options_.input_shape, options_.dtype);
}

Shape Pooling2D::compute_output_shape(const Shape& in) const {
  if (in.ndim() != 3)
    throw Error(name_, "input of per-sample shape " + in.str() + "; expected (height, width, channels)");
  const auto h = ops::window_axis(name_, "height", in[0], pool_size_[0], strides_[0], padding_);
  const auto w = ops::window_axis(name_, "width", in[1], pool_size_[1], strides_[1], padding_);
  return Shape{h.out, w.out, in[2]};
}

void Pooling2D::check_input(const Tensor& x) const {
  if (x.ndim() != 4)
    throw Error(name_, "input " + x.shape().str() + " does not fit the layer; expected [N, H, W, C] (channels_last)");
}

Config Pooling2D::get_config() const {
  return {{"pool_size", pair_config(pool_size_)}, {"strides", pair_config(strides_)}, {"padding", options_.padding}};
}

MaxPooling2D::MaxPooling2D(std::array<int64_t, 2> pool_size, MaxPooling2DOptions options)
    : Pooling2D("max_pooling2d", pool_size, std::move(options)) {}

Tensor MaxPooling2D::call(const Tensor& x, bool) {
  check_input(x);
  return max_pool2d(x, pool_size_, strides_, padding_);
}

MaxPooling2D MaxPooling2D::from_config(const Config& config) {
  return pooling_from_config<MaxPooling2D>(config, "MaxPooling2D");
}

AveragePooling2D::AveragePooling2D(std::array<int64_t, 2> pool_size, AveragePooling2DOptions options)
    : Pooling2D("average_pooling2d", pool_size, std::move(options)) {}

Tensor AveragePooling2D::call(const Tensor& x, bool) {
  check_input(x);
  return avg_pool2d(x, pool_size_, strides_, padding_);
}

AveragePooling2D AveragePooling2D::from_config(const Config& config) {
  return pooling_from_config<AveragePooling2D>(config, "AveragePooling2D");
}

}  // namespace kiln::layers
