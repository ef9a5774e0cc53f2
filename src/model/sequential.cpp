// Sequential: layer stack, building, compiling, device placement and the forward pass.
#include <cctype>
#include <iostream>
#include <map>

#include "kiln/config.h"
#include "kiln/error.h"
#include "kiln/model.h"
#include "kiln/random.h"
#include "metrics/metrics.h"

namespace kiln {

namespace {
// Keras' default layer name: the class name in snake_case (MaxPooling2D -> max_pooling2d).
std::string snake_case(const std::string& class_name) {
  std::string out;
  for (std::size_t i = 0; i < class_name.size(); ++i) {
    const char c = class_name[i];
    if (std::isupper(static_cast<unsigned char>(c))) {
      if (i > 0 && !std::isupper(static_cast<unsigned char>(class_name[i - 1]))) out += '_';
      out += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    } else {
      out += c;
    }
  }
  return out;
}

// Keras' automatic names: dense, dense_1, dense_2, ...
std::string unique_name(const std::string& base, std::map<std::string, int>& used) {
  const int n = used[base]++;
  return n == 0 ? base : base + "_" + std::to_string(n);
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
  std::string base = layer->name().empty() ? snake_case(layer->class_name()) : layer->name();
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

Tensor Sequential::operator()(const Tensor& x, bool training) {
  build_for(x, "call");
  Tensor h = x.device() == device_ ? x : x.to(device_);
  if (!is_floating(h.dtype())) h = h.astype(DType::Float32);
  for (const auto& layer : layers_) h = layer->call(h, training);
  return h;
}

Tensor Sequential::compute_loss(const Tensor& y_true, const Tensor& y_pred) const {
  require_compiled("compute_loss");
  Tensor loss = (*loss_)(y_true, y_pred);
  for (const auto& layer : layers_)
    for (const Tensor& penalty : layer->losses()) loss = kiln::add(loss, penalty.reshape(loss.shape()));
  return loss;
}

std::vector<Tensor> Sequential::trainable_weights() const {
  std::vector<Tensor> out;
  for (const auto& layer : layers_)
    for (const Tensor& w : layer->trainable_weights()) out.push_back(w);
  return out;
}

std::vector<Tensor> Sequential::non_trainable_weights() const {
  std::vector<Tensor> out;
  for (const auto& layer : layers_)
    for (const Tensor& w : layer->non_trainable_weights()) out.push_back(w);
  return out;
}

int64_t Sequential::count_params() const {
  int64_t n = 0;
  for (const auto& layer : layers_)
    for (const Tensor& w : layer->weights()) n += w.numel();
  return n;
}

void Sequential::to(Device device) {
  if (device == device_) return;
  for (const auto& layer : layers_) layer->to(device);
  device_ = device;
}

void Sequential::summary() const { summary(std::cout); }

}  // namespace kiln
