/// Dense: the fully connected layer.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "kiln/layer.h"

namespace kiln::layers {

/// Options of Dense, with Keras' defaults.
struct DenseOptions {
  std::string activation = "linear";                                ///< any registered activation (activations.h)
  bool use_bias = true;                                             ///< adds a bias vector
  std::string kernel_initializer = "glorot_uniform";                ///< any registered initializer
  std::string bias_initializer = "zeros";                           ///< any registered initializer
  std::shared_ptr<const Regularizer> kernel_regularizer = nullptr;  ///< e.g. regularizers::l2(1e-4)
  std::shared_ptr<const Regularizer> bias_regularizer = nullptr;    ///< e.g. regularizers::l2(1e-4)
  std::shared_ptr<const Constraint> kernel_constraint = nullptr;    ///< e.g. constraints::unit_norm({0, 1, 2})
  std::shared_ptr<const Constraint> bias_constraint = nullptr;      ///< e.g. constraints::non_neg()
  std::vector<int64_t> input_shape = {};                            ///< per-sample input shape, e.g. {1}
  std::string dtype = "";  ///< dtype policy (Keras' dtype=): "" takes the global one
};

/// Fully connected layer: activation(x W + b), W [in, units], b [units].
class Dense : public Layer {
 public:
  /// A layer of `units` outputs.
  explicit Dense(int64_t units, DenseOptions options = {});
  std::string class_name() const override { return "Dense"; }
  Config get_config() const override;
  /// Rebuilds from get_config().
  static Dense from_config(const Config& config);
  Shape compute_output_shape(const Shape& input_shape) const override;
  Tensor call(const Tensor& x, bool training) override;
  /// Number of outputs.
  int64_t units() const { return units_; }
  /// The options it was made with.
  const DenseOptions& options() const { return options_; }

 protected:
  void create_weights(const Shape& input_shape) override;

 private:
  int64_t units_;
  DenseOptions options_;
};

}  // namespace kiln::layers
