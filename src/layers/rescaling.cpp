// Rescaling: y = x * scale + offset, in training and inference.
#include <cmath>

#include "kiln/error.h"
#include "kiln/ops.h"
#include "layers/config_fields.h"
#include "layers/random_image.h"

namespace kiln::layers {

namespace {
const RegisterLayer<Rescaling> registered("Rescaling");
}  // namespace

Rescaling::Rescaling(double scale, RescalingOptions options) : scale_(scale), options_(std::move(options)) {
  name_ = "rescaling";
  if (!std::isfinite(scale)) throw Error(name_, "scale is " + number_text(scale) + "; expected a finite number");
  if (!std::isfinite(options_.offset))
    throw Error(name_, "offset is " + number_text(options_.offset) + "; expected a finite number");
  declare(options_.input_shape, options_.dtype);
}

Shape Rescaling::compute_output_shape(const Shape& input_shape) const { return input_shape; }

// Two passes, as Keras' x * scale + offset: each rounds once in the input's precision, on every
// device (one fused pass would round once, an ulp away from Keras where an FMA is used).
Tensor Rescaling::call(const Tensor& x, bool) {
  const Tensor scaled = mul(x, scale_);
  return options_.offset == 0.0 ? scaled : add(scaled, options_.offset);
}

Config Rescaling::get_config() const { return {{"scale", scale_}, {"offset", options_.offset}}; }

Rescaling Rescaling::from_config(const Config& config) {
  const auto f = config_fields(config, "Rescaling");
  if (f.has("scale") && !f.at("scale").is_number())
    f.fail("scale is " + f.at("scale").dump() + "; expected a number (per-channel scales are not supported)");
  if (f.has("offset") && !f.at("offset").is_number())
    f.fail("offset is " + f.at("offset").dump() + "; expected a number (per-channel offsets are not supported)");
  return Rescaling(f.number("scale"), {.offset = f.has("offset") ? f.number("offset") : 0.0});
}

}  // namespace kiln::layers
