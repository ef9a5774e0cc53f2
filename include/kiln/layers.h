/// Keras-style layers: each owns its weights and calls ops. Shapes exclude the batch dimension.
#pragma once

#include <array>
#include <concepts>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "kiln/ops.h"
#include "kiln/tensor.h"

namespace kiln {

class Generator;

/// Base of every layer.
class Layer {
 public:
  virtual ~Layer() = default;
  /// Keras' class name, e.g. "Dense".
  virtual std::string class_name() const = 0;
  /// Creates the weights for per-sample `input_shape` on `device`, drawing from `gen`.
  virtual void build(const Shape& input_shape, Generator& gen, Device device);
  /// Per-sample output shape for per-sample `input_shape`; throws when the input does not fit.
  virtual Shape compute_output_shape(const Shape& input_shape) const = 0;
  /// Forward pass on a batch [N, ...].
  virtual Tensor call(const Tensor& x) = 0;
  /// Trainable weights with their Keras names ("kernel", "bias"), in Keras' order.
  virtual std::vector<std::pair<std::string, Tensor>> named_weights() const { return {}; }
  /// Replaces a weight's values (shape must agree); used by loaders.
  void set_weight(const std::string& name, const Tensor& value);
  /// The layer's arguments as strings, for summaries and saved configs.
  virtual std::map<std::string, std::string> config() const { return {}; }

  /// Trainable weights, in Keras' order.
  std::vector<Tensor> weights() const;
  /// Moves the weights to `device`.
  void to(Device device);
  /// Whether build() has run.
  bool built() const { return built_; }
  /// Per-sample input shape declared with input_shape (empty when none).
  const std::vector<int64_t>& declared_input_shape() const { return input_shape_; }
  /// Instance name ("dense", "dense_1", ...), unique within its model.
  const std::string& name() const { return name_; }
  /// Renames the layer (a model makes names unique when the layer is added).
  void set_name(std::string name) { name_ = std::move(name); }

 protected:
  /// Storage for the weights, by name, in creation order.
  std::vector<std::pair<std::string, Tensor>> weights_;
  std::vector<int64_t> input_shape_;  ///< declared per-sample input shape (empty when none)
  bool built_ = false;                ///< set by build()
  std::string name_;                  ///< instance name
  /// Creates a trainable weight (called from build()).
  Tensor& add_weight(const std::string& name, Tensor value);
};

/// A shared handle to a layer, built implicitly from any layer value, so that
/// Sequential({Dense(64), Dense(10)}) reads like Keras.
class LayerRef {
 public:
  /// Holds a copy of `layer`.
  template <typename L>
  requires std::derived_from<L, Layer> LayerRef(L layer) : ptr_(std::make_shared<L>(std::move(layer))) {}
  /// Shares `layer` (a layer object used in more than one place).
  LayerRef(std::shared_ptr<Layer> layer) : ptr_(std::move(layer)) {}
  /// The layer.
  const std::shared_ptr<Layer>& get() const { return ptr_; }

 private:
  std::shared_ptr<Layer> ptr_;
};

namespace layers {

/// Options of Dense, with Keras' defaults.
struct DenseOptions {
  std::string activation = "linear";      ///< "linear", "relu", "sigmoid", "tanh" or "softmax"
  bool use_bias = true;                   ///< adds a bias vector
  std::vector<int64_t> input_shape = {};  ///< per-sample input shape, e.g. {1}
};

/// Fully connected layer: activation(x W + b), W [in, units] glorot_uniform, b zeros.
class Dense : public Layer {
 public:
  /// A layer of `units` outputs.
  explicit Dense(int64_t units, DenseOptions options = {});
  std::string class_name() const override { return "Dense"; }
  void build(const Shape& input_shape, Generator& gen, Device device) override;
  Shape compute_output_shape(const Shape& input_shape) const override;
  Tensor call(const Tensor& x) override;
  std::vector<std::pair<std::string, Tensor>> named_weights() const override { return weights_; }
  std::map<std::string, std::string> config() const override;
  /// Number of outputs.
  int64_t units() const { return units_; }
  /// The options it was made with.
  const DenseOptions& options() const { return options_; }

 private:
  int64_t units_;
  DenseOptions options_;
};

/// Options of Conv2D, with Keras' defaults.
struct Conv2DOptions {
  std::array<int64_t, 2> strides = {1, 1};  ///< (height, width) step of the window
  std::string padding = "valid";            ///< "valid" or "same"
  std::string activation = "linear";        ///< "linear", "relu", "sigmoid", "tanh" or "softmax"
  bool use_bias = true;                     ///< adds a bias per filter
  std::vector<int64_t> input_shape = {};    ///< per-sample (H, W, C), e.g. {32, 32, 3}
};

/// 2-D convolution, channels_last: kernel [KH, KW, C, filters] glorot_uniform, bias zeros.
class Conv2D : public Layer {
 public:
  /// A layer of `filters` output channels and a (height, width) `kernel_size` window.
  Conv2D(int64_t filters, std::array<int64_t, 2> kernel_size, Conv2DOptions options = {});
  std::string class_name() const override { return "Conv2D"; }
  void build(const Shape& input_shape, Generator& gen, Device device) override;
  Shape compute_output_shape(const Shape& input_shape) const override;
  Tensor call(const Tensor& x) override;
  std::vector<std::pair<std::string, Tensor>> named_weights() const override { return weights_; }
  std::map<std::string, std::string> config() const override;
  /// Number of output channels.
  int64_t filters() const { return filters_; }
  /// (height, width) of the window.
  std::array<int64_t, 2> kernel_size() const { return kernel_size_; }
  /// The options it was made with.
  const Conv2DOptions& options() const { return options_; }

 private:
  int64_t filters_;
  std::array<int64_t, 2> kernel_size_;
  Conv2DOptions options_;
  Padding padding_;
};

/// Options of MaxPooling2D; strides default to pool_size as in Keras.
struct MaxPooling2DOptions {
  std::array<int64_t, 2> strides = {0, 0};  ///< {0, 0}: same as pool_size
  std::string padding = "valid";            ///< "valid" or "same"
  std::vector<int64_t> input_shape = {};    ///< per-sample (H, W, C)
};

/// 2-D max pooling, channels_last.
class MaxPooling2D : public Layer {
 public:
  /// Takes the maximum over (height, width) `pool_size` windows.
  explicit MaxPooling2D(std::array<int64_t, 2> pool_size = {2, 2}, MaxPooling2DOptions options = {});
  std::string class_name() const override { return "MaxPooling2D"; }
  Shape compute_output_shape(const Shape& input_shape) const override;
  Tensor call(const Tensor& x) override;
  std::map<std::string, std::string> config() const override;
  /// (height, width) of the window.
  std::array<int64_t, 2> pool_size() const { return pool_size_; }
  /// (height, width) step of the window (pool_size unless given).
  std::array<int64_t, 2> strides() const { return strides_; }
  /// The options it was made with.
  const MaxPooling2DOptions& options() const { return options_; }

 private:
  std::array<int64_t, 2> pool_size_;
  std::array<int64_t, 2> strides_;
  MaxPooling2DOptions options_;
  Padding padding_;
};

/// Options of Flatten.
struct FlattenOptions {
  std::vector<int64_t> input_shape = {};  ///< per-sample input shape
};

/// [N, ...] -> [N, prod(...)].
class Flatten : public Layer {
 public:
  /// A layer that keeps the batch dimension and flattens the rest.
  explicit Flatten(FlattenOptions options = {});
  std::string class_name() const override { return "Flatten"; }
  Shape compute_output_shape(const Shape& input_shape) const override;
  Tensor call(const Tensor& x) override;
};

}  // namespace layers

namespace activations {
/// Applies a Keras activation by name ("linear", "relu", "sigmoid", "tanh", "softmax").
Tensor apply(const std::string& name, const Tensor& x);
/// Throws unless `name` is a known activation; `op` names the layer in the message.
void check(const std::string& name, const std::string& op);
}  // namespace activations

namespace initializers {
/// Keras' glorot_uniform: U(-limit, limit), limit = sqrt(6 / (fan_in + fan_out)).
Tensor glorot_uniform(const Shape& shape, int64_t fan_in, int64_t fan_out, Generator& gen, Device device);
}  // namespace initializers

}  // namespace kiln
