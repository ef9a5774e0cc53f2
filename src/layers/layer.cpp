// Layer base: weight bookkeeping (trainable or not, frozen or not), building and the layer registry.
#include "kiln/layer.h"

#include <cmath>

#include "kiln/autograd.h"
#include "kiln/error.h"
#include "kiln/ops.h"
#include "tensor/tensor_impl.h"

namespace kiln {

Registry<std::shared_ptr<Layer>>& layer_registry() {
  static Registry<std::shared_ptr<Layer>> registry("layer");
  return registry;
}

std::map<std::type_index, std::function<std::shared_ptr<Layer>(const Layer&)>>& layer_copiers() {
  static std::map<std::type_index, std::function<std::shared_ptr<Layer>(const Layer&)>> copiers;
  return copiers;
}

std::shared_ptr<Layer> copy_registered_layer(const Layer& layer) {
  const auto it = layer_copiers().find(typeid(layer));
  if (it == layer_copiers().end())
    throw Error(layer.name(), "is a " + layer.class_name() +
                                  ", whose C++ class is not registered, so kiln cannot copy it into the graph; "
                                  "expected the layer held by a std::shared_ptr (std::make_shared<...>(...)), or its "
                                  "class registered with RegisterLayer");
  return it->second(layer);
}

void Layer::build(const Shape& input_shape, Generator& gen, Device device) {
  compute_output_shape(input_shape);  // validates the input
  weights_.clear();
  build_generator_ = &gen;
  build_device_ = device;
  try {
    create_weights(input_shape);
  } catch (...) {
    build_generator_ = nullptr;
    weights_.clear();
    throw;
  }
  build_generator_ = nullptr;
  built_ = true;
}

namespace {
std::string shapes_str(const std::vector<Shape>& shapes) {
  std::string out;
  for (std::size_t i = 0; i < shapes.size(); ++i) out += (i ? ", " : "") + shapes[i].batch_str();
  return out;
}
}  // namespace

Shape Layer::compute_output_shape_inputs(const std::vector<Shape>& input_shapes) const {
  if (input_shapes.size() != 1)
    throw Error(name_, "got " + std::to_string(input_shapes.size()) + " inputs (" + shapes_str(input_shapes) +
                           "); expected one");
  return compute_output_shape(input_shapes[0]);
}

Tensor Layer::call_inputs(const std::vector<Tensor>& inputs, bool training) {
  if (inputs.size() != 1) throw Error(name_, "got " + std::to_string(inputs.size()) + " inputs; expected one");
  return call(inputs[0], training);
}

void Layer::set_dtype_policy(const std::string& policy_name) {
  mixed_precision::DTypePolicy policy(policy_name);
  if (built_ && !(policy == dtype_policy_))
    throw Error(name_, "set_dtype_policy(\"" + policy_name + "\") after the layer was built under \"" +
                           dtype_policy_.name() + "\"; expected it before the model is built");
  dtype_policy_ = std::move(policy);
}

Tensor Layer::call_with_policy(const std::vector<Tensor>& inputs, bool training, const std::string& then_activation) {
  if (!then_activation.empty() && !can_fuse_activation(then_activation, training))
    throw Error(name_, "cannot apply activation '" + then_activation + "' in its own call " +
                           (training ? "in training" : "in inference") +
                           "; expected then_activation only where can_fuse_activation says so");
  // Written only for a fused call (training): calls without it write nothing, so concurrent
  // predicts on one model stay free of data races.
  struct ThenActivationScope {
    std::string& name;
    bool set;
    ~ThenActivationScope() {
      if (set) name.clear();
    }
  } scope{then_activation_, !then_activation.empty()};
  if (scope.set) then_activation_ = then_activation;
  const DType compute = dtype_policy_.compute_dtype();
  // Keras casts a layer's floating inputs to its compute dtype: a float32 layer after bfloat16 ones
  // (a model's head under a mixed policy) computes in float32. Outside mixed policies only 16-bit
  // inputs are cast, so float32 models run exactly as before.
  const auto needs_cast = [&](const Tensor& x) {
    return is_floating(x.dtype()) && x.dtype() != compute &&
           (dtype_policy_.is_mixed() || !is_compute_floating(x.dtype()));
  };
  bool any_cast = false;
  for (const Tensor& x : inputs) any_cast = any_cast || needs_cast(x);
  if (!dtype_policy_.is_mixed() && !any_cast) return call_inputs(inputs, training);
  std::vector<Tensor> cast_inputs;
  cast_inputs.reserve(inputs.size());
  for (const Tensor& x : inputs) cast_inputs.push_back(needs_cast(x) ? kiln::cast(x, compute) : x);
  if (!dtype_policy_.is_mixed()) return call_inputs(cast_inputs, training);
  // Keras' autocast: the trainable floating variables are read in the compute dtype during the call;
  // state a layer updates itself (BatchNormalization's moving statistics) is read as stored.
  autocast_.assign(weights_.size(), Tensor());
  for (std::size_t i = 0; i < weights_.size(); ++i) {
    const LayerWeight& w = weights_[i];
    if (w.trainable && w.autocast && w.value.defined() && is_floating(w.value.dtype()))
      autocast_[i] = kiln::cast(w.value, compute);
  }
  struct ClearAutocast {
    std::vector<Tensor>& copies;
    ~ClearAutocast() { copies.clear(); }
  } clear{autocast_};
  return call_inputs(cast_inputs, training);
}

void Layer::build_inputs(const std::vector<Shape>& input_shapes, Generator& gen, Device device) {
  if (input_shapes.size() == 1) return build(input_shapes[0], gen, device);
  compute_output_shape_inputs(input_shapes);  // validates the inputs
  weights_.clear();
  built_ = true;
}

std::vector<LayerWeight> Layer::weight_specs(const Shape& input_shape) {
  compute_output_shape(input_shape);
  // A dry build: add_weight records each weight's shape without allocating it. The layer's own
  // state is put back afterwards, built or not.
  std::vector<LayerWeight> kept = std::move(weights_);
  const bool was_built = built_;
  weights_.clear();
  dry_build_ = true;
  std::vector<LayerWeight> specs;
  try {
    create_weights(input_shape);
    specs = std::move(weights_);
  } catch (...) {
    dry_build_ = false;
    weights_ = std::move(kept);
    throw;
  }
  dry_build_ = false;
  weights_ = std::move(kept);
  built_ = was_built;
  return specs;
}

Tensor& Layer::add_weight(const std::string& weight_name, const Shape& shape, const Initializer& initializer,
                          WeightOptions options) {
  for (const auto& w : weights_)
    if (w.name == weight_name) throw Error(name_, "adds a second weight named '" + weight_name + "'");
  if (options.trainable && !options.in_weights)
    throw Error(name_, "weight '" + weight_name +
                           "' is trainable but left out of weights(); expected .trainable = false with .in_weights "
                           "= false");
  LayerWeight w{weight_name, Tensor(),           options.trainable, std::move(options.regularizer),
                shape,       options.in_weights, options.autocast};
  w.constraint = std::move(options.constraint);
  if (!dry_build_) {
    if (!build_generator_)
      throw Error(name_, "add_weight('" + weight_name + "') called outside build; expected it in create_weights()");
    w.value = initializer(shape, *build_generator_, build_device_);
    if (w.value.shape() != shape)
      throw Error(name_, "initializer " + initializer.class_name() + " made a " + w.value.shape().str() +
                             " tensor for weight '" + weight_name + "'; expected " + shape.str());
    w.value.set_requires_grad(trained(w));
    w.value.impl()->variable_path = name_ + "/" + weight_name;
  }
  weights_.push_back(std::move(w));
  return weights_.back().value;
}

Tensor& Layer::weight(const std::string& weight_name) {
  for (std::size_t i = 0; i < weights_.size(); ++i)
    if (weights_[i].name == weight_name)
      return i < autocast_.size() && autocast_[i].defined() ? autocast_[i] : weights_[i].value;
  throw Error(name_, "has no weight named '" + weight_name + "'");
}

const Tensor& Layer::weight(const std::string& weight_name) const {
  return const_cast<Layer*>(this)->weight(weight_name);
}

std::vector<std::pair<std::string, Tensor>> Layer::named_weights() const {
  std::vector<std::pair<std::string, Tensor>> out;
  for (const auto& w : weights_) out.emplace_back(w.name, w.value);
  return out;
}

std::vector<Tensor> Layer::trainable_weights() const {
  std::vector<Tensor> out;
  for (const auto& w : weights_)
    if (trained(w)) out.push_back(w.value);
  return out;
}

std::vector<Tensor> Layer::non_trainable_weights() const {
  std::vector<Tensor> out;
  for (const auto& w : weights_)
    if (w.in_weights && !trained(w)) out.push_back(w.value);
  return out;
}

std::vector<Tensor> Layer::weights() const {
  std::vector<Tensor> out = trainable_weights();
  for (const Tensor& t : non_trainable_weights()) out.push_back(t);
  return out;
}

void Layer::set_weight(const std::string& weight_name, const Tensor& value) {
  Tensor& w = weight(weight_name);
  if (value.shape() != w.shape())
    throw Error(name_, "weight '" + weight_name + "' has shape " + w.shape().str() + "; got a value of shape " +
                           value.shape().str());
  w.copy_(value.astype(w.dtype()));
}

std::vector<Tensor> Layer::losses() const {
  std::vector<Tensor> out;
  // A frozen weight (or layer) does not change, so its penalty has no gradient to give.
  for (const auto& w : weights_)
    if (w.regularizer && trained(w) && w.value.defined()) out.push_back((*w.regularizer)(w.value));
  return out;
}

void Layer::set_name(std::string name) {
  name_ = std::move(name);
  for (auto& w : weights_)
    if (w.value.defined()) w.value.impl()->variable_path = name_ + "/" + w.name;
}

void Layer::apply_constraints() {
  NoGradGuard no_grad;
  for (auto& w : weights_)
    if (w.constraint && trained(w) && w.value.defined()) w.value.copy_((*w.constraint)(w.value));
}

void Layer::declare(std::vector<int64_t> input_shape, const std::string& dtype) {
  input_shape_ = std::move(input_shape);
  if (!dtype.empty()) set_dtype_policy(dtype);
}

void Layer::set_learning_rate_multiplier(const std::string& weight_name, double multiplier) {
  if (!built_)
    throw Error(name_,
                "is not built; build it (or the model holding it) before setting the learning-rate "
                "multiplier of weight '" +
                    weight_name + "'");
  if (!(std::isfinite(multiplier) && multiplier >= 0))
    throw Error(name_, "learning-rate multiplier of weight '" + weight_name + "' is " + std::to_string(multiplier) +
                           "; expected a finite number >= 0");
  LayerWeight& w = weight_entry(weight_name);
  if (!w.trainable || !w.in_weights)
    throw Error(name_, "weight '" + weight_name +
                           "' is not trained by the optimizer (its layer updates it); expected a trainable weight");
  if (w.value.defined()) w.value.impl()->learning_rate_multiplier = multiplier;
}

double Layer::learning_rate_multiplier(const std::string& weight_name) const {
  const LayerWeight& w = weight_entry(weight_name);
  return w.value.defined() ? w.value.impl()->learning_rate_multiplier : 1.0;
}

LayerWeight& Layer::weight_entry(const std::string& weight_name) {
  for (auto& w : weights_)
    if (w.name == weight_name) return w;
  throw Error(name_, "has no weight named '" + weight_name + "'");
}

const LayerWeight& Layer::weight_entry(const std::string& weight_name) const {
  return const_cast<Layer*>(this)->weight_entry(weight_name);
}

void Layer::set_trainable(bool trainable) {
  trainable_ = trainable;
  for (auto& w : weights_)
    if (w.value.defined()) {
      w.value.zero_grad();
      w.value.set_requires_grad(trained(w));
    }
}

void Layer::set_weight_trainable(const std::string& weight_name, bool trainable) {
  LayerWeight& w = weight_entry(weight_name);
  if (!w.trainable || !w.in_weights)
    throw Error(name_, "weight '" + weight_name +
                           "' is updated by the layer itself, not by the optimizer; expected a trainable weight");
  w.frozen = !trainable;
  if (w.value.defined()) {
    w.value.zero_grad();
    w.value.set_requires_grad(trained(w));
  }
}

void Layer::to(Device device) {
  for (auto& w : weights_) {
    if (!w.value.defined() || w.value.device() == device) continue;
    Tensor moved = w.value.detach().to(device);
    moved.set_requires_grad(trained(w));
    moved.impl()->learning_rate_multiplier = w.value.impl()->learning_rate_multiplier;
    moved.impl()->variable_path = w.value.impl()->variable_path;
    w.value = moved;
  }
}

}  // namespace kiln
