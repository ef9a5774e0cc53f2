/// Flatten: [N, ...] -> [N, prod(...)].
#pragma once

#include <vector>

#include "kiln/layer.h"

namespace kiln::layers {

/// Options of Flatten.
struct FlattenOptions {
  std::vector<int64_t> input_shape = {};  ///< per-sample input shape
  std::string dtype = "";                 ///< dtype policy (Keras' dtype=): "" takes the global one
};

/// [N, ...] -> [N, prod(...)].
class Flatten : public Layer {
 public:
  /// A layer that keeps the batch dimension and flattens the rest.
  explicit Flatten(FlattenOptions options = {});
  std::string class_name() const override { return "Flatten"; }
  /// Rebuilds from get_config().
  static Flatten from_config(const Config& config);
  Shape compute_output_shape(const Shape& input_shape) const override;
  Tensor call(const Tensor& x, bool training) override;
};

}  // namespace kiln::layers
