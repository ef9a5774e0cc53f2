/// Conv2D: 2-D convolution, channels_last.
#pragma once

#include <array>
#include <memory>
#include <string>
#include <vector>

#include "kiln/layer.h"
#include "kiln/ops.h"

namespace kiln::layers {

/// Options of Conv2D, with Keras' defaults.
struct Conv2DOptions {
  std::array<int64_t, 2> strides = {1, 1};                          ///< (height, width) step of the window
  std::string padding = "valid";                                    ///< "valid" or "same"
  std::string activation = "linear";                                ///< any registered activation (activations.h)
  bool use_bias = true;                                             ///< adds a bias per filter
  std::string kernel_initializer = "glorot_uniform";                ///< any registered initializer
  std::string bias_initializer = "zeros";                           ///< any registered initializer
  std::shared_ptr<const Regularizer> kernel_regularizer = nullptr;  ///< e.g. regularizers::l2(1e-4)
  std::shared_ptr<const Regularizer> bias_regularizer = nullptr;    ///< e.g. regularizers::l2(1e-4)
  std::shared_ptr<const Constraint> kernel_constraint = nullptr;    ///< e.g. constraints::unit_norm({0, 1, 2})
  std::shared_ptr<const Constraint> bias_constraint = nullptr;      ///< e.g. constraints::non_neg()
  std::vector<int64_t> input_shape = {};                            ///< per-sample (H, W, C), e.g. {32, 32, 3}
  std::string dtype = "";  ///< dtype policy (Keras' dtype=): "" takes the global one
};

/// 2-D convolution, channels_last: kernel [KH, KW, C, filters], bias [filters].
class Conv2D : public Layer {
 public:
  /// A layer of `filters` output channels and a (height, width) `kernel_size` window.
  Conv2D(int64_t filters, std::array<int64_t, 2> kernel_size, Conv2DOptions options = {});
  std::string class_name() const override { return "Conv2D"; }
  Config get_config() const override;
  /// Rebuilds from get_config().
  static Conv2D from_config(const Config& config);
  Shape compute_output_shape(const Shape& input_shape) const override;
  Tensor call(const Tensor& x, bool training) override;
  /// Number of output channels.
  int64_t filters() const { return filters_; }
  /// (height, width) of the window.
  std::array<int64_t, 2> kernel_size() const { return kernel_size_; }
  /// The options it was made with.
  const Conv2DOptions& options() const { return options_; }

 protected:
  void create_weights(const Shape& input_shape) override;

 private:
  int64_t filters_;
  std::array<int64_t, 2> kernel_size_;
  Conv2DOptions options_;
  Padding padding_;
};

}  // namespace kiln::layers
