/// BatchNormalization: normalizes each channel with the batch's statistics in training and with
/// moving statistics in inference; plus the ops it is made of (Keras' ops.moments and
/// ops.batch_normalization over the last axis, and fused_batch_norm, which training runs).
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "kiln/layer.h"

namespace kiln {

/// Keras' ops.moments over every axis but the last: the mean and the biased variance (the mean of
/// the squared deviations from the mean, as tf.nn.moments) of each channel of x [..., C], each [C].
/// Differentiable.
std::pair<Tensor, Tensor> moments(const Tensor& x);

/// Keras' ops.batch_normalization over the last axis, in tf.nn.batch_normalization's form:
/// y = x * inv + (offset - mean * inv), inv = scale / sqrt(variance + epsilon), for x [..., C] and
/// mean, variance, offset, scale [C]; an undefined `offset` or `scale` stands for none (0 and 1).
/// Differentiable.
Tensor batch_normalization(const Tensor& x, const Tensor& mean, const Tensor& variance, const Tensor& offset,
                           const Tensor& scale, double epsilon);

/// What fused_batch_norm returns: the normalized batch and the statistics it used.
struct FusedBatchNorm {
  Tensor y;         ///< x normalized, of x's dtype
  Tensor mean;      ///< [C], the batch mean of each channel
  Tensor variance;  ///< [C], the biased batch variance of each channel
};

/// Batch normalization with the batch's own statistics in one op (TensorFlow's fused_batch_norm in
/// training): y = batch_normalization(x, mean, variance, offset, scale, epsilon) with
/// {mean, variance} = moments(x), each statistic computed in one pass over x and y in one more, for
/// x [..., C] of any floating dtype. The statistics, `scale` and `offset` are float64 for float64 x
/// and float32 otherwise (a 16-bit x is normalized in float32, each output rounded once); an
/// undefined `scale` or `offset` stands for none. y is differentiable in x (through the statistics
/// too), scale and offset; the returned statistics are not. With `activation` ("relu", "gelu",
/// "silu" or "swish": the activations' names; "" or "linear" for none), y is that activation of the
/// normalized batch, equal bit for bit to the activation applied to fused_batch_norm(...).y, and its
/// gradients too, in fewer passes over the batch: the normalized value is never written (a model
/// runs a BatchNormalization and the Activation layer after it this way in training). fused_batch_norm_applies() says
/// which.
FusedBatchNorm fused_batch_norm(const Tensor& x, const Tensor& scale, const Tensor& offset, double epsilon,
                                const std::string& activation = "");
/// Whether fused_batch_norm applies the activation called `activation` in its own passes.
bool fused_batch_norm_applies(const std::string& activation);

/// The replicas that synchronized_batch_norm normalizes over, seen from one of them.
struct ReplicaSum {
  /// Values per channel over every replica's x (the global batch's rows times x's middle axes).
  int64_t count = 0;
  /// Sums a [C] or [2C] tensor of the statistics dtype in place over the replicas (on x's device);
  /// every replica calls it in the same order: twice in the forward pass, once in the backward.
  std::function<void(Tensor&)> sum;
  /// The weight of this replica's loss in the sum of the replicas' losses that is differentiated
  /// (a data-parallel fit's: its rows over the global batch's); the backward's dy is the gradient
  /// of this replica's own loss. Positive.
  double share = 1.0;
};

/// fused_batch_norm over the global batch of data-parallel replicas (Keras'
/// BatchNormalization(synchronized=True)): each replica holds a shard x of it, and the mean and the
/// biased variance are those of every shard together, in two passes (the global mean from the
/// summed sums, then the summed squared deviations from it). Its backward sums the per-channel
/// reductions (sum dy and sum dy * xhat, weighted by `share`) over the replicas too, so dx is the
/// exact gradient of the global normalization; dx, dscale and doffset are those of this replica's
/// own loss (a data-parallel fit weights them by the share and sums them over the replicas). With
/// one replica (`sum` leaving its tensor as is, `count` x's values per channel, `share` 1) it
/// computes what fused_batch_norm does.
FusedBatchNorm synchronized_batch_norm(const Tensor& x, const Tensor& scale, const Tensor& offset, double epsilon,
                                       const ReplicaSum& replicas);

}  // namespace kiln

namespace kiln::layers {

/// Options of BatchNormalization, with Keras' defaults.
struct BatchNormalizationOptions {
  /// The channel axis, counted with the batch axis as in Keras; only the last axis (-1, or its
  /// positive index) is supported.
  int64_t axis = -1;
  double momentum = 0.99;                  ///< moving = moving * momentum + batch statistic * (1 - momentum), in [0, 1]
  double epsilon = 1e-3;                   ///< added to the variance before its square root; positive
  bool center = true;                      ///< adds the trainable offset beta
  bool scale = true;                       ///< multiplies by the trainable factor gamma
  std::string beta_initializer = "zeros";  ///< any registered initializer
  std::string gamma_initializer = "ones";  ///< any registered initializer
  std::string moving_mean_initializer = "zeros";                   ///< any registered initializer
  std::string moving_variance_initializer = "ones";                ///< any registered initializer
  std::shared_ptr<const Regularizer> beta_regularizer = nullptr;   ///< e.g. regularizers::l2(1e-4)
  std::shared_ptr<const Regularizer> gamma_regularizer = nullptr;  ///< e.g. regularizers::l2(1e-4)
  std::vector<int64_t> input_shape = {};                           ///< per-sample input shape
  std::string dtype = "";  ///< dtype policy (Keras' dtype=): "" takes the global one
  /// In a data-parallel fit (a strategy of several replicas), normalizes with the statistics of the
  /// global batch, every replica's shard together, instead of each replica's own (Keras'
  /// synchronized); without a strategy it changes nothing. Every replica must then get rows in
  /// every batch: fit refuses, before any step, a last batch of fewer rows than replicas.
  bool synchronized = false;
};

/// Batch normalization (Keras' BatchNormalization) over the last axis of [N, ..., C].
///
/// Weights, in Keras' names and order: gamma and beta [C] (trainable, when scale and center), then
/// moving_mean and moving_variance [C] (non-trainable). In training (fit, or call with training
/// true) each channel is normalized with the batch's mean and biased variance over every other axis,
/// and the moving statistics are updated in place on the device with the same batch statistics
/// (Keras puts the biased variance into moving_variance). In inference, and while the layer is
/// frozen (set_trainable(false), as Keras 3 does), the moving statistics normalize instead and stay
/// unchanged. With `synchronized` in a data-parallel fit, the batch statistics (and so the moving
/// ones) are those of the global batch (synchronized_batch_norm).
class BatchNormalization : public Layer {
 public:
  /// A layer with `options` (Keras' defaults when none are given).
  explicit BatchNormalization(BatchNormalizationOptions options = {});
  std::string class_name() const override { return "BatchNormalization"; }
  Config get_config() const override;
  /// Rebuilds from get_config().
  static BatchNormalization from_config(const Config& config);
  Shape compute_output_shape(const Shape& input_shape) const override;
  Tensor call(const Tensor& x, bool training) override;
  /// True in training (batch statistics) unless frozen or synchronized, for the activations that
  /// fused_batch_norm applies.
  bool can_fuse_activation(const std::string& activation, bool training) const override;
  /// The options it was made with.
  const BatchNormalizationOptions& options() const { return options_; }

 protected:
  void create_weights(const Shape& input_shape) override;

 private:
  BatchNormalizationOptions options_;
};

}  // namespace kiln::layers
