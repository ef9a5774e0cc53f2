/// Reshaping layers (Keras' names), channels_last: ZeroPadding2D, Cropping2D, Reshape and Permute.
/// None has weights; shapes exclude the batch dimension, as everywhere in kiln's layers.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "kiln/layer.h"

namespace kiln::layers {

/// Amounts at the four sides of an image, ((top, bottom), (left, right)), written as Keras writes
/// them: one number for all four sides, {height, width} for symmetric amounts, or
/// {{top, bottom}, {left, right}}.
struct Sides2D {
  /// The same amount on all four sides.
  Sides2D(int64_t all) : Sides2D(all, all) {}  // NOLINT(google-explicit-constructor): Keras' int form
  /// `height` rows at the top and at the bottom, `width` columns at the left and at the right.
  Sides2D(int64_t height, int64_t width) : top(height), bottom(height), left(width), right(width) {}
  /// {top, bottom} rows and {left, right} columns.
  Sides2D(std::array<int64_t, 2> height, std::array<int64_t, 2> width)
      : top(height[0]), bottom(height[1]), left(width[0]), right(width[1]) {}
  int64_t top;     ///< rows before the first
  int64_t bottom;  ///< rows after the last
  int64_t left;    ///< columns before the first
  int64_t right;   ///< columns after the last
};

/// Options of ZeroPadding2D.
struct ZeroPadding2DOptions {
  std::vector<int64_t> input_shape = {};  ///< per-sample (height, width, channels)
  std::string dtype = "";                 ///< dtype policy (Keras' dtype=): "" takes the global one
};

/// Adds rows and columns of zeros around each image of [N, H, W, C] (Keras' ZeroPadding2D).
class ZeroPadding2D : public Layer {
 public:
  /// Pads with `padding` (Keras' default: one row or column on each side); amounts must be >= 0.
  explicit ZeroPadding2D(Sides2D padding = 1, ZeroPadding2DOptions options = {});
  std::string class_name() const override { return "ZeroPadding2D"; }
  Config get_config() const override;
  /// Rebuilds from get_config().
  static ZeroPadding2D from_config(const Config& config);
  Shape compute_output_shape(const Shape& input_shape) const override;
  Tensor call(const Tensor& x, bool training) override;
  /// The amounts at each side.
  const Sides2D& padding() const { return padding_; }

 private:
  Sides2D padding_;
};

/// Options of Cropping2D.
struct Cropping2DOptions {
  std::vector<int64_t> input_shape = {};  ///< per-sample (height, width, channels)
  std::string dtype = "";                 ///< dtype policy (Keras' dtype=): "" takes the global one
};

/// Removes rows and columns at the sides of each image of [N, H, W, C] (Keras' Cropping2D).
class Cropping2D : public Layer {
 public:
  /// Crops `cropping` (Keras' default: nothing); amounts must be >= 0 and leave at least one row
  /// and one column.
  explicit Cropping2D(Sides2D cropping = 0, Cropping2DOptions options = {});
  std::string class_name() const override { return "Cropping2D"; }
  Config get_config() const override;
  /// Rebuilds from get_config().
  static Cropping2D from_config(const Config& config);
  Shape compute_output_shape(const Shape& input_shape) const override;
  Tensor call(const Tensor& x, bool training) override;
  /// The amounts at each side.
  const Sides2D& cropping() const { return cropping_; }

 private:
  Sides2D cropping_;
};

/// Options of Reshape.
struct ReshapeOptions {
  std::vector<int64_t> input_shape = {};  ///< per-sample input shape
  std::string dtype = "";                 ///< dtype policy (Keras' dtype=): "" takes the global one
};

/// Gives each sample the shape `target_shape`, the elements in the same (row-major) order (Keras'
/// Reshape). One entry may be -1: it is inferred from the others.
class Reshape : public Layer {
 public:
  /// Reshapes each sample to `target_shape` (without the batch dimension).
  explicit Reshape(std::vector<int64_t> target_shape, ReshapeOptions options = {});
  std::string class_name() const override { return "Reshape"; }
  Config get_config() const override;
  /// Rebuilds from get_config().
  static Reshape from_config(const Config& config);
  Shape compute_output_shape(const Shape& input_shape) const override;
  Tensor call(const Tensor& x, bool training) override;
  /// The target shape as given (-1 included).
  const std::vector<int64_t>& target_shape() const { return target_shape_; }

 private:
  std::vector<int64_t> target_shape_;
};

/// Options of Permute.
struct PermuteOptions {
  std::vector<int64_t> input_shape = {};  ///< per-sample input shape
  std::string dtype = "";                 ///< dtype policy (Keras' dtype=): "" takes the global one
};

/// Reorders the dimensions of each sample (Keras' Permute): output dimension i is input dimension
/// dims[i], counted from 1 as in Keras (the batch dimension, 0, stays first).
class Permute : public Layer {
 public:
  /// Permutes by `dims`, a permutation of 1..rank of the per-sample input.
  explicit Permute(std::vector<int64_t> dims, PermuteOptions options = {});
  std::string class_name() const override { return "Permute"; }
  Config get_config() const override;
  /// Rebuilds from get_config().
  static Permute from_config(const Config& config);
  Shape compute_output_shape(const Shape& input_shape) const override;
  Tensor call(const Tensor& x, bool training) override;
  /// The permutation as given (1-based).
  const std::vector<int64_t>& dims() const { return dims_; }

 private:
  std::vector<int64_t> dims_;
};

}  // namespace kiln::layers
