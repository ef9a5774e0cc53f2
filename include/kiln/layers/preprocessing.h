/// Preprocessing and augmentation layers (Keras' names and defaults, channels_last): Rescaling and
/// Normalization, which run in training and inference alike, and RandomFlip, RandomTranslation and
/// RandomCrop, which draw a random per-sample transform on the model's device in training.
#pragma once

#include <array>
#include <cmath>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "kiln/layer.h"
#include "kiln/ops.h"

namespace kiln::layers {

// ---- deterministic preprocessing ----

/// Options of Rescaling, with Keras' defaults.
struct RescalingOptions {
  double offset = 0.0;                    ///< added after scaling
  std::vector<int64_t> input_shape = {};  ///< per-sample input shape
  std::string dtype = "";                 ///< dtype policy (Keras' dtype=): "" takes the global one
};

/// Keras' Rescaling: y = x * scale + offset (scale and offset rounded to the input's precision first,
/// as Keras casts them), in training and inference. Scalars only (Keras also takes per-channel
/// arrays). No weights.
class Rescaling : public Layer {
 public:
  /// A layer computing x * scale + options.offset.
  explicit Rescaling(double scale, RescalingOptions options = {});
  std::string class_name() const override { return "Rescaling"; }
  Config get_config() const override;
  /// Rebuilds from get_config().
  static Rescaling from_config(const Config& config);
  Shape compute_output_shape(const Shape& input_shape) const override;
  Tensor call(const Tensor& x, bool training) override;
  /// The factor.
  double scale() const { return scale_; }
  /// The options it was made with.
  const RescalingOptions& options() const { return options_; }

 private:
  double scale_;
  RescalingOptions options_;
};

/// Options of Normalization, with Keras' defaults.
struct NormalizationOptions {
  /// The axes of the batched input [N, ...] that keep their own mean and variance (negative counts
  /// from the end); empty normalizes every element by one mean and variance (Keras' axis=None). The
  /// kept axes must be the trailing ones (-1; -2 and -1; ...), and never the batch axis 0.
  std::vector<int64_t> axis = {-1};
  /// The mean per kept index, row-major over the kept axes' shape, or one value for all. Given
  /// together with `variance`, or neither (then adapt() computes them).
  std::optional<std::vector<double>> mean = std::nullopt;
  std::optional<std::vector<double>> variance = std::nullopt;  ///< as `mean`
  bool invert = false;                    ///< apply the inverse: mean + x * max(sqrt(variance), 1e-7)
  std::vector<int64_t> input_shape = {};  ///< per-sample input shape
  std::string dtype = "";                 ///< dtype policy (Keras' dtype=): "" takes the global one
};

/// Keras' Normalization: y = (x - mean) / max(sqrt(variance), 1e-7), Keras 3's formula and float32
/// operations, in training and inference; the gradient flows to x.
///
/// With mean and variance given, the layer has no weights (as in Keras: they are constants of its
/// config, copied to the input's device on its first call there). Without them it holds Keras'
/// non-trainable weights "mean" and "variance" (the kept axes' shape, zeros and ones until adapt)
/// and "count" (int64, one element), saved with the model and counted by summary as Keras does.
class Normalization : public Layer {
 public:
  /// A layer normalizing over options.axis.
  explicit Normalization(NormalizationOptions options = {});
  std::string class_name() const override { return "Normalization"; }
  Config get_config() const override;
  /// Rebuilds from get_config().
  static Normalization from_config(const Config& config);
  Shape compute_output_shape(const Shape& input_shape) const override;
  Tensor call(const Tensor& x, bool training) override;
  /// Sets the weights "mean" and "variance" to the per-feature mean and (population) variance of
  /// `data` [M, ...] over every axis but the kept ones, computed in float64 on the host (Keras uses
  /// np.mean and np.var), and "count" to the number of values averaged per feature (Keras 3 leaves
  /// it 0). Builds the layer for data's per-sample shape on data's device when it is not built;
  /// else data must match the shape it was built for. Only for a layer made without mean/variance.
  void adapt(const Tensor& data);
  /// The options it was made with.
  const NormalizationOptions& options() const { return options_; }

 protected:
  void create_weights(const Shape& input_shape) override;

 private:
  // The kept axes' shape for per-sample `input_shape` (checks axis); the kept axes are its last dims.
  Shape kept_shape(const Shape& input_shape) const;
  // mean and max(sqrt(variance), eps) of the given values, in `dtype` on `device` (cached).
  std::pair<Tensor, Tensor> given_constants(DType dtype, Device device);

  NormalizationOptions options_;
  Shape built_shape_;
  Shape kept_;
  std::vector<Tensor> constants_;  // mean, denominator, for the last (dtype, device) used
};

// ---- random augmentation ----

/// A range of fractions, as Keras' factor arguments: a number f means [-|f|, |f|]; a pair
/// {lower, upper} is that range (sorted). Implicit from either, so RandomTranslation(0.1, {-0.2,
/// 0.3}) reads as in Keras.
struct Factor {
  /// [-|f|, |f|].
  Factor(double f) : lower(-std::abs(f)), upper(std::abs(f)), value(f) {}
  /// [min(a, b), max(a, b)].
  Factor(double a, double b) : lower(a < b ? a : b), upper(a < b ? b : a), pair(true), first(a), second(b) {}
  double lower;         ///< the range's lower end
  double upper;         ///< the range's upper end
  bool pair = false;    ///< given as a pair (written back as one by get_config)
  double value = 0.0;   ///< the number given, when not a pair
  double first = 0.0;   ///< the pair's first number, as given
  double second = 0.0;  ///< the pair's second number, as given
};

/// The base of the random image layers: per-sample input (height, width, channels), the counter
/// state "seed_generator_state" that Dropout also keeps (saved with the model, advanced on the device
/// after every training call, not counted among the weights), and the draw of each sample's
/// transform on the device. Keras' random streams cannot be reproduced: the same seed gives other
/// numbers than in Keras, but the same ones on every kiln device, eager or recorded.
class RandomImageLayer : public Layer {
 public:
  /// The seed (none: the stream's start is drawn from the model's generator at build).
  const std::optional<int64_t>& seed() const { return seed_; }

 protected:
  /// `draw` tells this class' numbers apart from other layers' of the same seed; `input_shape` and
  /// `dtype` are the options every layer takes (Layer::declare).
  RandomImageLayer(std::optional<int64_t> seed, uint64_t draw, std::vector<int64_t> input_shape,
                   const std::string& dtype);
  void create_weights(const Shape& input_shape) override;
  /// Throws unless per-sample `input_shape` is (height, width, channels).
  void check_image(const Shape& input_shape) const;
  /// The counter of the layer's stream (one int64 on the weights' device).
  Tensor& seed_state();
  /// The Philox key: the seed, or a fixed key for a layer without one.
  uint64_t stream_key() const;
  /// The draw number that tells this class' numbers apart from other layers' of the same seed.
  uint64_t draw() const { return draw_; }

 private:
  std::optional<int64_t> seed_;
  uint64_t draw_;
};

/// Options of RandomFlip, with Keras' defaults.
struct RandomFlipOptions {
  std::optional<int64_t> seed = std::nullopt;  ///< fixes the flips (see RandomImageLayer)
  std::vector<int64_t> input_shape = {};       ///< per-sample input shape
  std::string dtype = "";                      ///< dtype policy (Keras' dtype=): "" takes the global one
};

/// Keras' RandomFlip: in training each image is flipped with probability 1/2 (its number u <= 0.5,
/// Keras' test) left-right ("horizontal"), top-bottom ("vertical") or both ("horizontal_and_vertical",
/// the default: as in Keras, one draw decides both, so an image is kept or turned 180 degrees); in
/// inference the identity. The gradient is the same flip of dy.
class RandomFlip : public RandomImageLayer {
 public:
  /// A layer flipping by `mode`.
  explicit RandomFlip(std::string mode = "horizontal_and_vertical", RandomFlipOptions options = {});
  std::string class_name() const override { return "RandomFlip"; }
  Config get_config() const override;
  /// Rebuilds from get_config().
  static RandomFlip from_config(const Config& config);
  Shape compute_output_shape(const Shape& input_shape) const override;
  Tensor call(const Tensor& x, bool training) override;
  /// "horizontal", "vertical" or "horizontal_and_vertical".
  const std::string& mode() const { return mode_; }

 private:
  std::string mode_;
  RandomFlipOptions options_;
};

/// Options of RandomTranslation, with Keras' defaults.
struct RandomTranslationOptions {
  std::string fill_mode = "reflect";           ///< "constant", "reflect", "wrap" or "nearest"
  std::string interpolation = "bilinear";      ///< "bilinear" or "nearest"
  std::optional<int64_t> seed = std::nullopt;  ///< fixes the shifts (see RandomImageLayer)
  double fill_value = 0.0;                     ///< the value "constant" fills with
  std::vector<int64_t> input_shape = {};       ///< per-sample input shape
  std::string dtype = "";                      ///< dtype policy (Keras' dtype=): "" takes the global one
};

/// Keras' RandomTranslation: in training each image is shifted down by dy = (lo + (hi - lo) u) H
/// rows and right by dx columns likewise (u uniform in [0, 1) per image and axis, (lo, hi) the
/// factor's range), output pixel (i, j) sampling x at (i - dy, j - dx) with `interpolation`, points
/// outside read by `fill_mode` (see kiln::image_transform); in inference the identity. The gradient
/// flows to x through the same map. For whole-pixel shifts, as in pad-and-crop augmentation, use
/// interpolation "nearest" and fill_mode "constant".
class RandomTranslation : public RandomImageLayer {
 public:
  /// A layer shifting by fractions of the height and width in the given ranges (each within [-1, 1]).
  RandomTranslation(Factor height_factor, Factor width_factor, RandomTranslationOptions options = {});
  std::string class_name() const override { return "RandomTranslation"; }
  Config get_config() const override;
  /// Rebuilds from get_config().
  static RandomTranslation from_config(const Config& config);
  Shape compute_output_shape(const Shape& input_shape) const override;
  Tensor call(const Tensor& x, bool training) override;
  /// The vertical range.
  const Factor& height_factor() const { return height_; }
  /// The horizontal range.
  const Factor& width_factor() const { return width_; }
  /// The options it was made with.
  const RandomTranslationOptions& options() const { return options_; }

 private:
  Factor height_, width_;
  RandomTranslationOptions options_;
  FillMode fill_;
  Interpolation interpolation_;
};

/// Options of RandomCrop, with Keras' defaults.
struct RandomCropOptions {
  std::optional<int64_t> seed = std::nullopt;  ///< fixes the crops (see RandomImageLayer)
  std::vector<int64_t> input_shape = {};       ///< per-sample input shape
  std::string dtype = "";                      ///< dtype policy (Keras' dtype=): "" takes the global one
};

/// Keras' RandomCrop to (height, width). In training, on images at least that large, each image
/// gets its own window at a random start (row floor(u (H - height + 1)), likewise the column);
/// Keras draws one start for the whole batch, and takes the centre when a side equals the target.
/// In training on smaller images, Keras 3's rule: from the start of the centred window whose sides
/// are the other side times the target's aspect ratio (clamped to the input), a box of the target's
/// size, clipped to the input, resized bilinearly to (height, width) (TensorFlow's half-pixel rule,
/// edges clamped). In inference, Keras' documented rule: that centred window itself, resized to
/// (height, width); an input of the target's size passes unchanged. (Keras 3.15 returns inference
/// inputs uncropped, contradicting its own output shape; kiln keeps the shape. For pad-and-crop
/// augmentation, whose inference should see the unpadded image, prefer RandomTranslation.) The
/// gradient flows to x through the same map.
class RandomCrop : public RandomImageLayer {
 public:
  /// A layer cropping to height x width.
  RandomCrop(int64_t height, int64_t width, RandomCropOptions options = {});
  std::string class_name() const override { return "RandomCrop"; }
  Config get_config() const override;
  /// Rebuilds from get_config().
  static RandomCrop from_config(const Config& config);
  Shape compute_output_shape(const Shape& input_shape) const override;
  Tensor call(const Tensor& x, bool training) override;
  /// The output height.
  int64_t height() const { return height_; }
  /// The output width.
  int64_t width() const { return width_; }

 private:
  // Keras' deterministic paths: a centred window of the target's aspect ratio, then a resize.
  Tensor center_resize(const Tensor& x, bool training);

  int64_t height_, width_;
  RandomCropOptions options_;
};

}  // namespace kiln::layers
