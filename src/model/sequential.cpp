// Sequential: a Model whose graph is the chain of its layers, built once the input shape is known.
#include "kiln/error.h"
#include "kiln/model.h"
#include "model/graph.h"

namespace kiln {

namespace {

// Keras' automatic names: dense, dense_1, dense_2, ...
std::string unique_name(const std::string& base, std::map<std::string, int>& used) {
  const int n = used[base]++;
  return n == 0 ? base : base + "_" + std::to_string(n);
}

}  // namespace

Sequential::Sequential(const std::vector<LayerRef>& layers, std::string name) : Model(std::move(name), true) {
  for (const auto& l : layers) add(l);
}

Sequential::Sequential(Model&& model) : Model(std::move(model)) {
  if (!is_sequential())
    throw Error("load_model", "the model '" + name() +
                                  "' is a functional model, not a Sequential one; expected kiln::Model to hold it");
}

void Sequential::add(const LayerRef& ref) {
  const std::shared_ptr<Layer>& layer = ref.get();
  if (!layer) throw Error("sequential", "add() got an empty layer");
  std::map<std::string, int> used;
  for (const auto& l : layers_) {
    std::string base = l->name();
    if (auto p = base.rfind('_');
        p != std::string::npos && base.find_first_not_of("0123456789", p + 1) == std::string::npos)
      base = base.substr(0, p);
    used[base]++;
  }
  std::string base = layer->name().empty() ? model::snake_case(layer->class_name()) : layer->name();
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
  layers_.push_back(layer);
  if (built()) {  // Keras builds each added layer on the current output shape
    try {
      set_graph(model::Graph::chain(input_shape(), layers_));
    } catch (...) {
      layers_.pop_back();
      throw;
    }
  } else if (layers_.size() == 1 && !layers_[0]->declared_input_shape().empty()) {
    build(Shape(layers_[0]->declared_input_shape()));
  }
}

void Sequential::build(const Shape& input_shape) {
  if (layers_.empty()) throw Error("sequential", "the model has no layers; expected at least one (use add())");
  set_graph(model::Graph::chain(input_shape, layers_));
}

}  // namespace kiln
