// Flatten: [N, ...] -> [N, prod(...)].
#include "kiln/layers/flatten.h"

#include "kiln/ops.h"
#include "layers/config_fields.h"

namespace kiln::layers {

namespace {
const RegisterLayer<Flatten> registered("Flatten");
}

Flatten::Flatten(FlattenOptions options) {
  name_ = "flatten";
  declare(std::move(options.input_shape), options.dtype);
}

Flatten Flatten::from_config(const Config& config) {
  config_fields(config, "Flatten");  // must be an object
  return Flatten();
}

Shape Flatten::compute_output_shape(const Shape& in) const { return Shape{in.numel()}; }

Tensor Flatten::call(const Tensor& x, bool) { return flatten(x); }

}  // namespace kiln::layers
