/// Pooling layers, channels_last: windowed (MaxPooling2D, AveragePooling2D) and global
/// (GlobalAveragePooling2D, GlobalMaxPooling2D).
#pragma once

#include <array>
#include <string>
#include <vector>

#include "kiln/layer.h"
#include "kiln/ops.h"

namespace kiln::layers {

/// Options of the windowed pooling layers; strides default to pool_size as in Keras.
struct Pooling2DOptions {
  std::array<int64_t, 2> strides = {0, 0};  ///< {0, 0}: same as pool_size
  std::string padding = "valid";            ///< "valid" or "same"
  std::vector<int64_t> input_shape = {};    ///< per-sample (H, W, C)
  std::string dtype = "";                   ///< dtype policy (Keras' dtype=): "" takes the global one
};
/// Options of MaxPooling2D.
using MaxPooling2DOptions = Pooling2DOptions;
/// Options of AveragePooling2D.
using AveragePooling2DOptions = Pooling2DOptions;

/// What MaxPooling2D and AveragePooling2D share: the window, its steps and its padding.
class Pooling2D : public Layer {
 public:
  Config get_config() const override;
  Shape compute_output_shape(const Shape& input_shape) const override;
  /// (height, width) of the window.
  std::array<int64_t, 2> pool_size() const { return pool_size_; }
  /// (height, width) step of the window (pool_size unless given).
  std::array<int64_t, 2> strides() const { return strides_; }
  /// The options it was made with.
  const Pooling2DOptions& options() const { return options_; }

 protected:
  /// Checks the window; `op` ("max_pooling2d") names the layer in errors and is its default name.
  Pooling2D(const std::string& op, std::array<int64_t, 2> pool_size, Pooling2DOptions options);
  /// Throws unless x is [N, H, W, C].
  void check_input(const Tensor& x) const;

  std::array<int64_t, 2> pool_size_;  ///< (height, width) of the window
  std::array<int64_t, 2> strides_;    ///< (height, width) step of the window
  Pooling2DOptions options_;          ///< as given
  Padding padding_;                   ///< options_.padding, parsed
};

/// 2-D max pooling, channels_last.
class MaxPooling2D : public Pooling2D {
 public:
  /// Takes the maximum over (height, width) `pool_size` windows.
  explicit MaxPooling2D(std::array<int64_t, 2> pool_size = {2, 2}, MaxPooling2DOptions options = {});
  std::string class_name() const override { return "MaxPooling2D"; }
  /// Rebuilds from get_config().
  static MaxPooling2D from_config(const Config& config);
  Tensor call(const Tensor& x, bool training) override;
};

/// 2-D average pooling, channels_last. With "same" padding a window averages only its cells inside
/// the input (Keras' rule).
class AveragePooling2D : public Pooling2D {
 public:
  /// Takes the mean over (height, width) `pool_size` windows.
  explicit AveragePooling2D(std::array<int64_t, 2> pool_size = {2, 2}, AveragePooling2DOptions options = {});
  std::string class_name() const override { return "AveragePooling2D"; }
  /// Rebuilds from get_config().
  static AveragePooling2D from_config(const Config& config);
  Tensor call(const Tensor& x, bool training) override;
};

/// Options of the global pooling layers, with Keras' defaults.
struct GlobalPooling2DOptions {
  bool keepdims = false;                  ///< output (1, 1, C) instead of (C)
  std::vector<int64_t> input_shape = {};  ///< per-sample (H, W, C)
  std::string dtype = "";                 ///< dtype policy (Keras' dtype=): "" takes the global one
};

/// What GlobalAveragePooling2D and GlobalMaxPooling2D share: one window over all of (H, W).
class GlobalPooling2D : public Layer {
 public:
  Config get_config() const override { return {{"keepdims", options_.keepdims}}; }
  Shape compute_output_shape(const Shape& input_shape) const override;
  /// Whether the output keeps the spatial axes as ones.
  bool keepdims() const { return options_.keepdims; }
  /// The options it was made with.
  const GlobalPooling2DOptions& options() const { return options_; }

 protected:
  /// `op` ("global_average_pooling2d") names the layer in errors and is its default name.
  GlobalPooling2D(const std::string& op, GlobalPooling2DOptions options);
  /// The layer's output from `pooled` [N, 1, 1, C]: itself with keepdims, else reshaped to [N, C].
  Tensor finish(const Tensor& pooled) const;
  /// Throws unless x is [N, H, W, C].
  void check_input(const Tensor& x) const;

  GlobalPooling2DOptions options_;  ///< as given
};

/// The mean over height and width of each channel: [N, H, W, C] -> [N, C] (or [N, 1, 1, C]).
class GlobalAveragePooling2D : public GlobalPooling2D {
 public:
  /// A global average pooling layer.
  explicit GlobalAveragePooling2D(GlobalPooling2DOptions options = {});
  std::string class_name() const override { return "GlobalAveragePooling2D"; }
  /// Rebuilds from get_config().
  static GlobalAveragePooling2D from_config(const Config& config);
  Tensor call(const Tensor& x, bool training) override;
};

/// The maximum over height and width of each channel: [N, H, W, C] -> [N, C] (or [N, 1, 1, C]).
class GlobalMaxPooling2D : public GlobalPooling2D {
 public:
  /// A global max pooling layer.
  explicit GlobalMaxPooling2D(GlobalPooling2DOptions options = {});
  std::string class_name() const override { return "GlobalMaxPooling2D"; }
  /// Rebuilds from get_config().
  static GlobalMaxPooling2D from_config(const Config& config);
  Tensor call(const Tensor& x, bool training) override;
};

}  // namespace kiln::layers
