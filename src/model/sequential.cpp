// Sequential: layer stack, building, compiling, device placement and the forward pass.
#include <cmath>
#include <iostream>
#include <map>

#include "kiln/config.h"
#include "kiln/error.h"
#include "kiln/model.h"
#include "kiln/random.h"
#include "metrics/metrics.h"

namespace kiln {

namespace {
// Keras' automatic names: dense, dense_1, dense_2, ...
std::string unique_name(const std::string& base, std::map<std::string, int>& used) {
  const int n = used[base]++;
  return n == 0 ? base : base + "_" + std::to_string(n);
}

void check_finite(const std::string& optimizer, const char* option, double value) {
  if (!std::isfinite(value))
    throw Error("compile", optimizer + " " + option + " is " + std::to_string(value) + "; expected a finite number");
}

void check_finite_options(const Optimizer& optimizer) {
  if (const auto* sgd = dynamic_cast<const optimizers::SGD*>(&optimizer)) {
    check_finite("SGD", "learning_rate", sgd->options().learning_rate);
  } else if (const auto* adam = dynamic_cast<const optimizers::Adam*>(&optimizer)) {
    check_finite("Adam", "learning_rate", adam->options().learning_rate);
    check_finite("Adam", "epsilon", adam->options().epsilon);
  }
}
}  // namespace

Sequential::Sequential(const std::vector<LayerRef>& layers, std::string name)
    : name_(std::move(name)), device_(model_device()), generator_(global_generator().split()) {
  for (const auto& l : layers) add(l);
}

void Sequential::add(const LayerRef& ref) {
  std::shared_ptr<Layer> layer = ref.get();
  if (!layer) throw Error("sequential", "add() got an empty layer");
  std::map<std::string, int> used;
  for (const auto& l : layers_) {
    std::string base = l->name();
    if (auto p = base.rfind('_');
        p != std::string::npos && base.find_first_not_of("0123456789", p + 1) == std::string::npos)
      base = base.substr(0, p);
    used[base]++;
  }
  std::string base = layer->name();
  // The name keys the layer's weights in saved files ("<layer>/<weight>"), where load_model wants
  // it unique and without '/': refused here, not in a file that would not load.
  if (base.empty() || base.size() > 256 || base.find('/') != std::string::npos)
    throw Error("sequential",
                "layer name \"" + base.substr(0, 60) + "\" cannot be saved; expected 1 to 256 characters without '/'");
  std::string name = unique_name(base, used);
  const auto taken = [&](const std::string& n) {
    for (const auto& l : layers_)
      if (l->name() == n) return true;
    return false;
  };
  while (taken(name)) name = unique_name(base, used);  // a user's "dense_1" beside kiln's dense_1
  layer->set_name(name);
  if (!layers_.empty() && !layer->declared_input_shape().empty())
    throw Error("sequential", "layer " + layer->name() + " declares input_shape but is not the first layer");
  if (built_) {  // Keras builds each added layer on the current output shape
    Shape shape = input_shape_;
    for (const auto& l : layers_) shape = l->compute_output_shape(shape);
    layer->build(shape, generator_, device_);
  }
  layers_.push_back(std::move(layer));
  if (layers_.size() == 1 && !layers_[0]->declared_input_shape().empty())
    build(Shape(layers_[0]->declared_input_shape()));
}

void Sequential::build(const Shape& input_shape) {
  if (layers_.empty()) throw Error("sequential", "the model has no layers; expected at least one (use add())");
  Shape shape = input_shape;
  for (const auto& layer : layers_) {
    layer->build(shape, generator_, device_);
    shape = layer->compute_output_shape(shape);
  }
  input_shape_ = input_shape;
  built_ = true;
}

void Sequential::build_for(const Tensor& x, const std::string& op) {
  if (!x.defined()) throw Error(op, "x is an undefined tensor");
  if (x.ndim() < 1) throw Error(op, "x is a scalar; expected a batch [N, ...]");
  const Shape per_sample = x.shape().drop_front();
  if (!built_) {
    build(per_sample);
    return;
  }
  if (per_sample == input_shape_) return;
  const Layer& first = *layers_.front();
  const std::string declared =
      first.declared_input_shape().empty() ? "" : " (input_shape=" + Shape(first.declared_input_shape()).str() + ")";
  if (per_sample.ndim() == 1 && input_shape_.ndim() == 1)
    throw Error(first.name(), "input has " + std::to_string(per_sample[0]) + " features, layer expects " +
                                  std::to_string(input_shape_[0]) + declared);
  throw Error(first.name(),
              "input has per-sample shape " + per_sample.str() + ", layer expects " + input_shape_.str() + declared);
}

void Sequential::compile(const Optimizer& optimizer, const Loss& loss, std::vector<std::string> metrics) {
  // Checked here, not at the first fit or at load: save() would write these settings into a file
  // that load_model then refuses (an unknown metric; an infinite learning rate, which JSON cannot
  // hold).
  std::vector<std::string> seen;
  for (const auto& m : metrics) {
    const std::string canonical = metrics::canonical_name(m);
    for (std::size_t i = 0; i < seen.size(); ++i)
      if (seen[i] == canonical)
        throw Error("compile", "metric '" + m + "' repeats '" + metrics[i] + "' (both are " + canonical +
                                   "); expected each metric once");
    seen.push_back(canonical);
  }
  check_finite_options(optimizer);
  optimizer_ = optimizer.clone();
  loss_ = loss.clone();
  metrics_ = std::move(metrics);
}

void Sequential::compile(const std::string& optimizer, const std::string& loss, std::vector<std::string> metrics) {
  compile(*optimizers::get(optimizer), *losses::get(loss), std::move(metrics));
}

void Sequential::require_compiled(const std::string& op) const {
  if (!optimizer_ || !loss_)
    throw Error(op, "the model is not compiled; call compile(optimizer, loss) before " + op + "()");
}

Tensor Sequential::operator()(const Tensor& x) {
  build_for(x, "call");
  Tensor h = x.device() == device_ ? x : x.to(device_);
  if (!is_floating(h.dtype())) h = h.astype(DType::Float32);
  for (const auto& layer : layers_) h = layer->call(h);
  return h;
}

std::vector<Tensor> Sequential::trainable_weights() const {
  std::vector<Tensor> out;
  for (const auto& layer : layers_)
    for (const Tensor& w : layer->weights()) out.push_back(w);
  return out;
}

int64_t Sequential::count_params() const {
  int64_t n = 0;
  for (const Tensor& w : trainable_weights()) n += w.numel();
  return n;
}

void Sequential::to(Device device) {
  if (device == device_) return;
  for (const auto& layer : layers_) layer->to(device);
  device_ = device;
}

void Sequential::summary() const { summary(std::cout); }

}  // namespace kiln
