/// The base of every layer: weights (trainable or not), freezing, training mode, config and the
/// registry that lets save/load rebuild any registered layer class, a user's own included.
#pragma once

#include <concepts>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <typeindex>
#include <utility>
#include <vector>

#include "kiln/constraints.h"
#include "kiln/initializers.h"
#include "kiln/mixed_precision.h"
#include "kiln/registry.h"
#include "kiln/regularizers.h"
#include "kiln/symbolic_tensor.h"
#include "kiln/tensor.h"

namespace kiln {

class Generator;

/// How add_weight makes a weight.
struct WeightOptions {
  /// False for state the optimizer must not touch (BatchNormalization's moving statistics); such
  /// a weight never tracks gradients and is updated by its layer.
  bool trainable = true;
  /// A penalty on the weight added to the training loss (Keras' kernel_regularizer); may be null.
  std::shared_ptr<const Regularizer> regularizer = nullptr;
  /// False for state that Keras keeps outside layer.weights (a random stream's counter, as Keras'
  /// SeedGenerator state): saved, loaded and moved like a weight, but left out of weights(),
  /// trainable_weights() and non_trainable_weights(), so of count_params and summary. Such a weight
  /// is never trained: it needs trainable = false.
  bool in_weights = true;
  /// False for a weight the layer reads in its stored dtype even under a mixed policy (Keras'
  /// autocast=False: BatchNormalization's gamma and beta, used by its float32 math).
  bool autocast = true;
  /// A projection applied to the weight after each optimizer update (Keras' kernel_constraint);
  /// may be null.
  std::shared_ptr<const Constraint> constraint = nullptr;
};

/// One weight of a layer, by its Keras name ("kernel", "bias", "moving_mean").
struct LayerWeight {
  std::string name;                                        ///< Keras' name within the layer
  Tensor value;                                            ///< the tensor (undefined in a dry build)
  bool trainable = true;                                   ///< see WeightOptions::trainable
  std::shared_ptr<const Regularizer> regularizer;          ///< see WeightOptions::regularizer
  Shape shape;                                             ///< its shape
  bool in_weights = true;                                  ///< see WeightOptions::in_weights
  bool autocast = true;                                    ///< see WeightOptions::autocast
  bool frozen = false;                                     ///< a trainable weight frozen by Layer::set_weight_trainable
  std::shared_ptr<const Constraint> constraint = nullptr;  ///< see WeightOptions::constraint
};

/// Base of every layer. A subclass implements class_name(), compute_output_shape(), call() and,
/// when it has weights, create_weights(); get_config() and a static from_config() plus a
/// RegisterLayer<> object in its .cpp make it savable.
class Layer : public std::enable_shared_from_this<Layer> {
 public:
  virtual ~Layer() = default;
  /// Keras' class name, e.g. "Dense"; also the name it is registered under.
  virtual std::string class_name() const = 0;
  /// The layer's own constructor arguments (Keras' get_config); the saver adds the base fields
  /// (name, trainable, input_shape).
  virtual Config get_config() const { return Config::object(); }
  /// Per-sample output shape for per-sample `input_shape`; throws when the input does not fit.
  virtual Shape compute_output_shape(const Shape& input_shape) const = 0;
  /// Forward pass on a batch [N, ...]. `training` is true inside fit (Dropout drops, BatchNorm uses
  /// the batch's statistics and updates its moving ones) and false in evaluate and predict.
  virtual Tensor call(const Tensor& x, bool training) = 0;

  /// Output shape for the per-sample shapes of several inputs (a node of a functional model). The
  /// default takes exactly one input and runs compute_output_shape(); merge layers (Add,
  /// Concatenate) override it and take two or more.
  virtual Shape compute_output_shape_inputs(const std::vector<Shape>& input_shapes) const;
  /// Forward pass on several inputs, in the order the layer was called with them. The default takes
  /// exactly one and runs call(); merge layers override it.
  virtual Tensor call_inputs(const std::vector<Tensor>& inputs, bool training);

  /// Calls the layer on a symbolic tensor (Keras' layer(x) in the functional API): checks the
  /// shape and returns the output's symbolic tensor; kiln::Model(inputs, outputs) builds the
  /// layer later. Calling the same layer object again shares its weights. A layer held by a
  /// std::shared_ptr joins the graph as that object; any other is copied into the graph once (its
  /// class must be registered with RegisterLayer), and later calls of the same object use that copy.
  SymbolicTensor operator()(const SymbolicTensor& x);
  /// The same for a layer that takes several inputs (Add, Concatenate).
  SymbolicTensor operator()(const std::vector<SymbolicTensor>& inputs);

  /// Creates the weights for per-sample `input_shape` on `device`, drawing from `gen`: checks the
  /// shape with compute_output_shape, then runs create_weights().
  void build(const Shape& input_shape, Generator& gen, Device device);
  /// build() for several inputs: one input builds as above; several are checked with
  /// compute_output_shape_inputs() and create no weights (merge layers have none).
  void build_inputs(const std::vector<Shape>& input_shapes, Generator& gen, Device device);
  /// Whether build() has run.
  bool built() const { return built_; }
  /// The weights build() would create for `input_shape`, with undefined values: nothing is
  /// allocated (a loader checks a file's sizes with it before building anything).
  std::vector<LayerWeight> weight_specs(const Shape& input_shape);

  /// Every weight in creation order, trainable or not, in weights() or not (what save writes).
  const std::vector<LayerWeight>& all_weights() const { return weights_; }
  /// (name, tensor) of every weight, in creation order.
  std::vector<std::pair<std::string, Tensor>> named_weights() const;
  /// Weights the optimizer updates: the trainable ones, none while the layer is frozen.
  std::vector<Tensor> trainable_weights() const;
  /// The other weights: non-trainable ones, and all of them while the layer is frozen.
  std::vector<Tensor> non_trainable_weights() const;
  /// trainable_weights() then non_trainable_weights() (Keras' order).
  std::vector<Tensor> weights() const;
  /// Replaces a weight's values in place (shape must agree); used by loaders.
  void set_weight(const std::string& name, const Tensor& value);
  /// The regularization penalties of the weights, from their current values (Keras' layer.losses).
  std::vector<Tensor> losses() const;
  /// Projects every trained weight that has a constraint (Keras' kernel_constraint) in place; fit
  /// calls it after each optimizer update, as Keras' optimizer does.
  void apply_constraints();

  /// Trains weight `weight_name` (a trainable one) at `multiplier` times the optimizer's learning
  /// rate (a kiln extension, as PyTorch's parameter groups or Caffe's lr_mult: e.g. a larger rate for
  /// BatchNormalization's beta). It scales the step of the built-in optimizers' rule (Adam's step
  /// size too); their decoupled weight decay keeps the optimizer's rate. A multiplier of 1 (the
  /// default) changes nothing, 0 keeps the weight still but for weight decay. Not saved with the
  /// model (a setting of training, as the optimizer's options are not part of the weights). Throws
  /// before build, for an unknown or non-trainable weight, and for a negative or non-finite value.
  void set_learning_rate_multiplier(const std::string& weight_name, double multiplier);
  /// The multiplier of weight `weight_name` (1 unless set).
  double learning_rate_multiplier(const std::string& weight_name) const;

  /// Freezes (false) or unfreezes one trainable weight (Keras 3's layer.kernel.trainable = ...): a
  /// frozen weight gets no gradient and no update, moves to non_trainable_weights() and keeps its
  /// place in saved files; it is still cast under a mixed policy. Compile again after changing it,
  /// as for set_trainable. Throws for an unknown weight or one the layer itself updates (moving
  /// statistics).
  void set_weight_trainable(const std::string& weight_name, bool trainable);

  /// False while the layer is frozen: no gradients, no updates; its weights are still saved.
  bool trainable() const { return trainable_; }
  /// Freezes (false) or unfreezes the layer (Keras' layer.trainable = ...); compile again after
  /// changing it, as in Keras.
  void set_trainable(bool trainable);

  /// The layer's dtype policy (Keras' layer.dtype_policy): the global policy when the layer was
  /// constructed, unless set_dtype_policy changed it.
  const mixed_precision::DTypePolicy& dtype_policy() const { return dtype_policy_; }
  /// Sets the layer's dtype policy by name (Keras' dtype= argument, e.g. "float32" for a model's
  /// last layer under a mixed policy); throws kiln::Error for an unknown name or once the layer is
  /// built (its weights were made for the old policy).
  void set_dtype_policy(const std::string& name);
  /// The dtype the layer computes in (dtype_policy().compute_dtype()).
  DType compute_dtype() const { return dtype_policy_.compute_dtype(); }
  /// Runs the layer as a model does: under a mixed policy, floating inputs are cast to the compute
  /// dtype and, while call_inputs() runs, weight() returns the trainable floating weights cast to
  /// it (differentiably, so gradients reach the float32 weights); otherwise call_inputs() as is.
  /// With `then_activation` (a registered activation's name, only where
  /// can_fuse_activation(then_activation, training) says so; throws otherwise), returns that
  /// activation of the output, computed in the layer's own passes.
  Tensor call_with_policy(const std::vector<Tensor>& inputs, bool training, const std::string& then_activation = "");
  /// Whether a call in mode `training` can apply `activation` (a registered activation's name) to
  /// its output in its own passes, bit for bit as an Activation layer after it would: a model then
  /// runs this layer and a following Activation layer as one call. False unless a layer says
  /// otherwise (BatchNormalization in training does, for the activations fused_batch_norm applies).
  virtual bool can_fuse_activation(const std::string& activation, bool training) const {
    (void)activation, (void)training;
    return false;
  }
  /// The registered activation that the layer applies, doing nothing else (Activation("gelu"):
  /// "gelu"), which the layer before it may then fuse (can_fuse_activation); "" for other layers.
  virtual std::string pure_activation() const { return ""; }

  /// Moves the weights to `device`.
  void to(Device device);
  /// Per-sample input shape declared with input_shape (empty when none).
  const std::vector<int64_t>& declared_input_shape() const { return input_shape_; }
  /// Declares the per-sample input shape (Keras' input_shape argument).
  void set_declared_input_shape(std::vector<int64_t> shape) { input_shape_ = std::move(shape); }
  /// Instance name ("dense", "dense_1", ...), unique within its model.
  const std::string& name() const { return name_; }
  /// Renames the layer (a model makes names unique when the layer is added); its weights' variable
  /// paths ("<name>/<weight name>", which optimizers such as Muon match) follow.
  void set_name(std::string name);

 protected:
  /// Takes the options every layer's options struct ends with: the declared per-sample input shape
  /// (Keras' input_shape=) and, unless empty, the dtype policy by name (Keras' dtype=, see
  /// set_dtype_policy; throws for an unknown name). Call from the constructor.
  void declare(std::vector<int64_t> input_shape, const std::string& dtype);
  /// Creates the weights with add_weight (called by build(); the default creates none).
  virtual void create_weights(const Shape& input_shape) { (void)input_shape; }
  /// Creates a weight of `shape` filled by `initializer` (Keras' add_weight). Call only from
  /// create_weights(); the returned reference stays valid until the next add_weight.
  Tensor& add_weight(const std::string& name, const Shape& shape, const Initializer& initializer,
                     WeightOptions options = {});
  /// The weight called `name` (throws when there is none).
  Tensor& weight(const std::string& name);
  /// The weight called `name` (throws when there is none).
  const Tensor& weight(const std::string& name) const;
  /// The activation that call() applies to its output while call_with_policy runs a call with
  /// then_activation ("" otherwise).
  const std::string& then_activation() const { return then_activation_; }

  std::vector<int64_t> input_shape_;  ///< declared per-sample input shape (empty when none)
  std::string name_;                  ///< instance name

 private:
  std::vector<LayerWeight> weights_;
  mixed_precision::DTypePolicy dtype_policy_ = mixed_precision::global_policy();
  // The compute-dtype copies of the trainable weights, by index in weights_, while
  // call_with_policy() runs a mixed-policy call (empty otherwise).
  std::vector<Tensor> autocast_;
  std::string then_activation_;  // see then_activation()
  bool built_ = false;
  bool trainable_ = true;
  // The bookkeeping entry of weight `weight_name` (throws naming the layer when there is none).
  LayerWeight& weight_entry(const std::string& weight_name);
  const LayerWeight& weight_entry(const std::string& weight_name) const;
  // Whether the optimizer trains `w` now: a trainable weight in weights(), neither it nor the layer frozen.
  bool trained(const LayerWeight& w) const { return trainable_ && w.trainable && !w.frozen && w.in_weights; }
  // The layer that stands for this object in functional graphs when the object is not itself held
  // by a shared_ptr (see operator()). A copy of the object is another layer, so it starts empty.
  struct GraphCopy {
    std::shared_ptr<Layer> layer;
    GraphCopy() = default;
    GraphCopy(const GraphCopy&) {}
    GraphCopy& operator=(const GraphCopy& other) {
      if (this != &other) layer.reset();
      return *this;
    }
    GraphCopy(GraphCopy&&) = default;
    GraphCopy& operator=(GraphCopy&&) = default;
    ~GraphCopy() = default;
  };
  GraphCopy graph_copy_;
  // Set only while build() or weight_specs() runs create_weights().
  Generator* build_generator_ = nullptr;
  Device build_device_ = Device::cpu();
  bool dry_build_ = false;
};

/// The table of layer classes by class name.
Registry<std::shared_ptr<Layer>>& layer_registry();

/// Copies a layer of a registered class into a new shared object; throws for an unregistered class.
std::shared_ptr<Layer> copy_registered_layer(const Layer& layer);
/// The copy functions of the registered layer classes, by their C++ type (used by
/// copy_registered_layer; filled by RegisterLayer).
std::map<std::type_index, std::function<std::shared_ptr<Layer>(const Layer&)>>& layer_copiers();

/// Registers layer class L under `class_name` while this object is constructed: declare one at
/// namespace scope in L's .cpp (`const kiln::RegisterLayer<MyLayer> registered("MyLayer");`).
/// L needs `static L from_config(const kiln::Config&)`.
template <typename L>
requires std::derived_from<L, Layer>
struct RegisterLayer {
  /// Registers L under `class_name`.
  explicit RegisterLayer(const std::string& class_name) {
    layer_registry().add(class_name, [](const Config& config) -> std::shared_ptr<Layer> {
      return std::make_shared<L>(L::from_config(config));
    });
    layer_copiers()[typeid(L)] = [](const Layer& layer) -> std::shared_ptr<Layer> {
      return std::make_shared<L>(static_cast<const L&>(layer));
    };
  }
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

}  // namespace kiln
