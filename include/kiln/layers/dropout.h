/// Dropout: zeroes a random fraction of the inputs in training, the identity otherwise.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "kiln/layer.h"

namespace kiln::layers {

/// Options of Dropout, with Keras' defaults (Keras' noise_shape is not supported).
struct DropoutOptions {
  /// Fixes the masks: the same seed gives the same mask at the same training step, on every device,
  /// eager or recorded. Without one, the layer's stream starts at a point drawn from the model's
  /// generator when the layer is built (so utils::set_random_seed reproduces it).
  std::optional<int64_t> seed = std::nullopt;
  std::vector<int64_t> input_shape = {};  ///< per-sample input shape
  std::string dtype = "";                 ///< dtype policy (Keras' dtype=): "" takes the global one
};

/// Inverted dropout (Keras' Dropout): in training each element is zeroed with probability `rate`
/// and the kept ones are scaled by 1 / (1 - rate); in inference (and for rate 0) the input passes
/// unchanged.
///
/// The masks come from the counter-based op kiln::dropout, keyed by the seed and a step counter
/// that the layer keeps on the model's device and advances there after every training call: a
/// recorded (CUDA graph) training step draws a fresh mask on each replay, identical to the eager
/// step's. The counter is the layer's one piece of state, the weight "seed_generator_state" (int64,
/// one element): saved and loaded with the model, so a loaded model continues the masks of the saved
/// one; never trained; and, as Keras' seed generator state, not counted among the weights (summary
/// shows 0 params).
class Dropout : public Layer {
 public:
  /// A layer dropping a fraction `rate` in [0, 1) of its inputs in training.
  explicit Dropout(double rate, DropoutOptions options = {});
  std::string class_name() const override { return "Dropout"; }
  Config get_config() const override;
  /// Rebuilds from get_config().
  static Dropout from_config(const Config& config);
  Shape compute_output_shape(const Shape& input_shape) const override;
  Tensor call(const Tensor& x, bool training) override;
  /// The fraction of inputs dropped in training.
  double rate() const { return rate_; }
  /// The options it was made with.
  const DropoutOptions& options() const { return options_; }

 protected:
  void create_weights(const Shape& input_shape) override;

 private:
  double rate_;
  DropoutOptions options_;
};

}  // namespace kiln::layers
