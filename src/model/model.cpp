// Model: the graph, compiling, device placement, weights and the forward pass, shared by
// functional and Sequential models.
#include "kiln/model.h"

#include <iostream>

#include "kiln/config.h"
#include "kiln/error.h"
#include "kiln/random.h"
#include "metrics/metrics.h"
#include "model/graph.h"
#include "model/loss_terms.h"
#include "model/recorded_evaluation.h"
#include "optimizers/loss_scale_optimizer.h"

namespace kiln {

Model::Model(std::string name, bool sequential)
    : name_(std::move(name)),
      sequential_(sequential),
      device_(model_device()),
      generator_(global_generator().split()) {}

Model::Model(const std::vector<SymbolicTensor>& inputs, const std::vector<SymbolicTensor>& outputs, std::string name)
    : Model(std::move(name), false) {
  set_graph(model::Graph::from_symbolic(inputs, outputs));
}

Model::Model(const SymbolicTensor& input, const SymbolicTensor& output, std::string name)
    : Model(std::vector<SymbolicTensor>{input}, std::vector<SymbolicTensor>{output}, std::move(name)) {}

Model::Model(Model&&) noexcept = default;
Model& Model::operator=(Model&&) noexcept = default;
Model::~Model() = default;

void Model::set_graph(model::Graph graph) {
  graph.build(generator_, device_);
  layers_ = graph.layers();
  graph_ = std::make_shared<const model::Graph>(std::move(graph));
}

const model::Graph& Model::graph() const {
  if (!graph_) throw Error(name_, "the model is not built; expected build(input_shape), fit() or an input_shape first");
  return *graph_;
}

const Shape& Model::input_shape() const { return graph().shape(0); }
std::vector<Shape> Model::input_shapes() const { return graph().input_shapes(); }
std::vector<Shape> Model::output_shapes() const { return graph().output_shapes(); }

std::vector<std::string> Model::output_names() const {
  std::vector<std::string> out;
  for (int v : graph().outputs()) out.push_back(graph().maker_name(v));
  return out;
}

std::shared_ptr<Layer> Model::get_layer(const std::string& name) const {
  std::string known;
  for (const auto& l : layers_) {
    if (l->name() == name) return l;
    known += (known.empty() ? "" : ", ") + l->name();
  }
  throw Error("get_layer", "no layer named '" + name + "'; the model has " + (known.empty() ? "none" : known));
}

void Model::build_for(const std::vector<Tensor>& x, const std::string& op) {
  for (std::size_t i = 0; i < x.size(); ++i) {
    const std::string which = x.size() == 1 ? "x" : "x[" + std::to_string(i) + "]";
    if (!x[i].defined()) throw Error(op, which + " is an undefined tensor");
    if (x[i].ndim() < 1) throw Error(op, which + " is a scalar; expected a batch [N, ...]");
  }
  if (!graph_) {
    if (x.size() != 1)
      throw Error(op, "got " + std::to_string(x.size()) + " input tensors; expected one (a Sequential model)");
    static_cast<Sequential*>(this)->build(x[0].shape().drop_front());
    return;
  }
  const auto shapes = graph_->input_shapes();
  if (x.size() != shapes.size())
    throw Error(op, "got " + std::to_string(x.size()) + " input tensors; expected " + std::to_string(shapes.size()) +
                        " (one per model input)");
  for (std::size_t i = 0; i < x.size(); ++i) {
    const Shape per_sample = x[i].shape().drop_front();
    if (per_sample == shapes[i]) continue;
    // Name the layer that reads the input (the first layer of a Sequential model).
    std::string reader = graph_->input_names()[i];
    std::string declared;
    for (const auto& node : graph_->nodes())
      if (node.inputs.size() == 1 && node.inputs[0] == static_cast<int>(i)) {
        reader = node.layer->name();
        if (!node.layer->declared_input_shape().empty())
          declared = " (input_shape=" + Shape(node.layer->declared_input_shape()).str() + ")";
        break;
      }
    if (per_sample.ndim() == 1 && shapes[i].ndim() == 1)
      throw Error(reader, "input has " + std::to_string(per_sample[0]) + " features, layer expects " +
                              std::to_string(shapes[i][0]) + declared);
    throw Error(reader,
                "input has per-sample shape " + per_sample.str() + ", layer expects " + shapes[i].str() + declared);
  }
}

std::vector<Tensor> Model::prepare_inputs(const std::vector<Tensor>& x) const {
  std::vector<Tensor> out;
  for (const Tensor& t : x) {
    Tensor h = t.device() == device_ ? t : t.to(device_);
    out.push_back(is_compute_floating(h.dtype()) ? h : h.astype(DType::Float32));
  }
  return out;
}

std::vector<Tensor> Model::prepare_targets(const std::vector<Tensor>& y, const std::string& op) const {
  const auto shapes = graph().output_shapes();
  if (y.size() != shapes.size())
    throw Error(op, "got " + std::to_string(y.size()) + " target tensors; expected " + std::to_string(shapes.size()) +
                        " (one per model output)");
  std::vector<Tensor> out;
  for (std::size_t i = 0; i < y.size(); ++i) out.push_back(losses_[i]->prepare_targets(y[i], shapes[i], op));
  return out;
}

// The public signature takes the list by value, as the other compile overloads do.
// NOLINTNEXTLINE(performance-unnecessary-value-param)
void Model::compile(const Optimizer& optimizer, const Loss& loss, std::vector<std::string> metrics) {
  const std::size_t outputs = graph_ ? graph_->outputs().size() : 1;
  std::vector<LossRef> losses(outputs, LossRef(loss));
  compile(optimizer, losses, std::vector<std::vector<std::string>>(outputs, metrics), {});
}

void Model::compile(const std::string& optimizer, const std::string& loss, std::vector<std::string> metrics) {
  compile(*optimizers::get(optimizer), *losses::get(loss), std::move(metrics));
}

void Model::compile(const Optimizer& optimizer, const std::vector<LossRef>& losses,
                    std::vector<std::vector<std::string>> metrics, std::vector<double> loss_weights) {
  const std::size_t outputs = graph_ ? graph_->outputs().size() : 1;
  if (losses.size() != outputs)
    throw Error("compile", "got " + std::to_string(losses.size()) + " losses for " + std::to_string(outputs) +
                               " outputs; expected one per output (or one loss for all)");
  if (metrics.empty()) metrics.resize(outputs);
  if (metrics.size() != outputs)
    throw Error("compile", "got " + std::to_string(metrics.size()) + " metric lists for " + std::to_string(outputs) +
                               " outputs; expected one list per output");
  if (loss_weights.empty()) loss_weights.assign(outputs, 1.0);
  if (loss_weights.size() != outputs)
    throw Error("compile", "got " + std::to_string(loss_weights.size()) + " loss_weights for " +
                               std::to_string(outputs) + " outputs; expected one per output");
  for (double w : loss_weights)
    if (!std::isfinite(w)) throw Error("compile", "a loss weight is not finite; expected finite numbers");
  // Checked here, not at the first fit or at load: save() would write these settings into a file
  // that load_model then refuses (an unknown metric; an infinite learning rate, which JSON cannot
  // hold).
  for (const auto& list : metrics) {
    std::vector<std::string> seen;
    for (const auto& m : list) {
      const std::string canonical = metrics::canonical_name(m);
      for (std::size_t i = 0; i < seen.size(); ++i)
        if (seen[i] == canonical)
          throw Error("compile", "metric '" + m + "' repeats '" + list[i] + "' (both are " + canonical +
                                     "); expected each metric once");
      seen.push_back(canonical);
    }
  }
  // Keras: a mixed_float16 model trains with dynamic loss scaling.
  optimizer_ = optimizers::with_loss_scaling_for(optimizer.clone(), layers_);
  losses_.clear();
  for (const LossRef& l : losses) losses_.push_back(l.get().clone());
  loss_weights_ = std::move(loss_weights);
  metrics_ = std::move(metrics);
}

const std::vector<std::string>& Model::metrics() const {
  static const std::vector<std::string> none;
  return metrics_.empty() ? none : metrics_.front();
}

void Model::require_compiled(const std::string& op) const {
  if (!optimizer_ || losses_.empty())
    throw Error(op, "the model is not compiled; call compile(optimizer, loss) before " + op + "()");
  if (graph_ && losses_.size() != graph_->outputs().size())
    throw Error(op, "the model was compiled with " + std::to_string(losses_.size()) + " losses but has " +
                        std::to_string(graph_->outputs().size()) + " outputs; expected compile() again");
}

std::vector<Tensor> Model::operator()(const std::vector<Tensor>& x, bool training) {
  build_for(x, "call");
  return graph_->run(prepare_inputs(x), training);
}

Tensor Model::operator()(const Tensor& x, bool training) {
  std::vector<Tensor> out = (*this)(std::vector<Tensor>{x}, training);
  if (out.size() != 1)
    throw Error("call", "the model has " + std::to_string(out.size()) +
                            " outputs; expected the call with a list of inputs, which returns one tensor per output");
  return out[0];
}

Tensor Model::compute_loss(const std::vector<Tensor>& y_true, const std::vector<Tensor>& y_pred) const {
  require_compiled("compute_loss");
  return model::loss_terms(*this, y_true, y_pred).total;
}

Tensor Model::compute_loss(const Tensor& y_true, const Tensor& y_pred) const {
  return compute_loss(std::vector<Tensor>{y_true}, std::vector<Tensor>{y_pred});
}

std::vector<Tensor> Model::trainable_weights() const {
  std::vector<Tensor> out;
  for (const auto& layer : layers_)
    for (const Tensor& w : layer->trainable_weights()) out.push_back(w);
  return out;
}

void Model::apply_constraints() {
  for (const auto& layer : layers_) layer->apply_constraints();
}

std::vector<Tensor> Model::non_trainable_weights() const {
  std::vector<Tensor> out;
  for (const auto& layer : layers_)
    for (const Tensor& w : layer->non_trainable_weights()) out.push_back(w);
  return out;
}

int64_t Model::count_params() const {
  int64_t n = 0;
  for (const auto& layer : layers_)
    for (const Tensor& w : layer->weights()) n += w.numel();
  return n;
}

void Model::to(Device device) {
  if (device == device_) return;
  for (const auto& layer : layers_) layer->to(device);
  device_ = device;
}

void Model::summary() const { summary(std::cout); }

}  // namespace kiln
