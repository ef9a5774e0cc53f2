// GlobalAveragePooling2D and GlobalMaxPooling2D: the pooling ops with one window covering all of
// (H, W), so they share the pooling kernels' forward and backward on every device.
#include "kiln/error.h"
#include "kiln/layers/pooling.h"
#include "layers/config_fields.h"

namespace kiln::layers {

namespace {

const RegisterLayer<GlobalAveragePooling2D> average_registered("GlobalAveragePooling2D");
const RegisterLayer<GlobalMaxPooling2D> max_registered("GlobalMaxPooling2D");

// Both classes' configs have the same fields; keepdims may be absent (Keras' default, false).
GlobalPooling2DOptions global_options(const Config& config, const std::string& class_name) {
  const auto f = config_fields(config, class_name);
  return {.keepdims = f.has("keepdims") ? f.boolean("keepdims") : false};
}

}  // namespace

GlobalPooling2D::GlobalPooling2D(const std::string& op, GlobalPooling2DOptions options) : options_(std::move(options)) {
  name_ = op;
  declare(options_.input_shape, options_.dtype);
}

Shape GlobalPooling2D::compute_output_shape(const Shape& in) const {
  if (in.ndim() != 3 || in[0] <= 0 || in[1] <= 0)
    throw Error(name_, "input of per-sample shape " + in.str() +
                           "; expected (height, width, channels) with height and width >= 1");
  return options_.keepdims ? Shape{1, 1, in[2]} : Shape{in[2]};
}

void GlobalPooling2D::check_input(const Tensor& x) const {
  if (x.ndim() != 4 || x.size(1) <= 0 || x.size(2) <= 0)
    throw Error(name_, "input " + x.shape().str() +
                           " does not fit the layer; expected [N, H, W, C] (channels_last) with H and W >= 1");
}

Tensor GlobalPooling2D::finish(const Tensor& pooled) const {
  return options_.keepdims ? pooled : reshape(pooled, Shape{pooled.size(0), pooled.size(3)});
}

GlobalAveragePooling2D::GlobalAveragePooling2D(GlobalPooling2DOptions options)
    : GlobalPooling2D("global_average_pooling2d", std::move(options)) {}

Tensor GlobalAveragePooling2D::call(const Tensor& x, bool) {
  check_input(x);
  const std::array<int64_t, 2> window = {x.size(1), x.size(2)};
  return finish(avg_pool2d(x, window, window, Padding::Valid));
}

GlobalAveragePooling2D GlobalAveragePooling2D::from_config(const Config& config) {
  return GlobalAveragePooling2D(global_options(config, "GlobalAveragePooling2D"));
}

GlobalMaxPooling2D::GlobalMaxPooling2D(GlobalPooling2DOptions options)
    : GlobalPooling2D("global_max_pooling2d", std::move(options)) {}

Tensor GlobalMaxPooling2D::call(const Tensor& x, bool) {
  check_input(x);
  const std::array<int64_t, 2> window = {x.size(1), x.size(2)};
  return finish(max_pool2d(x, window, window, Padding::Valid));
}

GlobalMaxPooling2D GlobalMaxPooling2D::from_config(const Config& config) {
  return GlobalMaxPooling2D(global_options(config, "GlobalMaxPooling2D"));
}

}  // namespace kiln::layers
