// Symbolic tensors: kiln::Input, and a layer called on symbolic tensors (the functional API).
#include "kiln/symbolic_tensor.h"

#include "kiln/error.h"
#include "kiln/layer.h"
#include "model/graph.h"

namespace kiln {

SymbolicTensor::SymbolicTensor(std::shared_ptr<const model::SymbolicNode> node) : node_(std::move(node)) {
  if (!node_) throw Error("model", "a symbolic tensor needs the call that makes it");
}

const Shape& SymbolicTensor::shape() const { return node_->shape; }

std::string SymbolicTensor::str() const {
  const std::string from = node_->layer ? node_->layer->name() : "input " + node_->input_name;
  return "<SymbolicTensor shape=" + shape().batch_str() + ", from " + from + ">";
}

SymbolicTensor Input(const Shape& shape, std::string name) {
  if (shape.ndim() == 0) throw Error("Input", "shape is empty; expected the per-sample shape, e.g. {32, 32, 3}");
  for (int64_t d : shape.dims())
    if (d < 1) throw Error("Input", "shape " + shape.str() + " has an extent < 1; expected positive extents");
  if (name.find('/') != std::string::npos || name.size() > 256)
    throw Error("Input",
                "name \"" + name.substr(0, 60) + "\" cannot be saved; expected up to 256 characters without '/'");
  auto node = std::make_shared<model::SymbolicNode>();
  node->shape = shape;
  node->input_name = std::move(name);
  return SymbolicTensor(std::move(node));
}

SymbolicTensor Layer::operator()(const SymbolicTensor& x) { return (*this)(std::vector<SymbolicTensor>{x}); }

SymbolicTensor Layer::operator()(const std::vector<SymbolicTensor>& inputs) {
  if (name_.empty()) name_ = model::snake_case(class_name());
  if (inputs.empty()) throw Error(name_, "called on no tensors; expected at least one symbolic tensor");
  // The object that joins the graph: this one when a shared_ptr holds it, else its copy.
  std::shared_ptr<Layer> self = weak_from_this().lock();
  if (!self) {
    if (!graph_copy_.layer) graph_copy_.layer = copy_registered_layer(*this);
    self = graph_copy_.layer;
  }
  std::vector<Shape> shapes;
  shapes.reserve(inputs.size());
  for (const SymbolicTensor& t : inputs) shapes.push_back(t.shape());
  auto node = std::make_shared<model::SymbolicNode>();
  node->shape = self->compute_output_shape_inputs(shapes);  // names the layer and the shapes on error
  node->layer = self;
  node->inputs = inputs;
  return SymbolicTensor(std::move(node));
}

}  // namespace kiln
