// Graph: reading a functional model's calls from its symbolic tensors, the Sequential chain,
// building the layers and running the calls.
#include "model/graph.h"

#include <cctype>
#include <map>
#include <set>

#include "kiln/error.h"

namespace kiln::model {

std::string snake_case(const std::string& class_name) {
  std::string out;
  for (std::size_t i = 0; i < class_name.size(); ++i) {
    const char c = class_name[i];
    if (std::isupper(static_cast<unsigned char>(c))) {
      // Keras' to_snake_case: a word starts at an upper-case letter after a lower-case one, or at
      // one followed by a lower-case letter (MaxPooling2D -> max_pooling2d, Conv2DTranspose ->
      // conv2d_transpose).
      const auto lower = [&](std::size_t k) {
        return k < class_name.size() && std::islower(static_cast<unsigned char>(class_name[k]));
      };
      if (i > 0 && (lower(i - 1) || lower(i + 1))) out += '_';
      out += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    } else {
      out += c;
    }
  }
  return out;
}

namespace {

const std::string kNoActivation;  // what fused_activation() returns for none

// Keras' automatic names: dense, dense_1, dense_2, ... skipping names already taken.
std::string unique_name(const std::string& name, std::set<std::string>& taken) {
  std::string out = name;
  for (int n = 1; taken.count(out); ++n) out = name + "_" + std::to_string(n);
  taken.insert(out);
  return out;
}

}  // namespace

Graph Graph::from_symbolic(const std::vector<SymbolicTensor>& inputs, const std::vector<SymbolicTensor>& outputs) {
  if (inputs.empty()) throw Error("model", "no inputs; expected at least one kiln::Input");
  if (outputs.empty()) throw Error("model", "no outputs; expected at least one symbolic tensor");
  Graph g;
  std::map<const SymbolicNode*, int> value_of;
  std::set<std::string> input_names_taken;
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    const SymbolicNode* node = inputs[i].node().get();
    if (node->layer)
      throw Error("model", "inputs[" + std::to_string(i) + "] is the output of layer " + node->layer->name() +
                               "; expected a tensor made by kiln::Input");
    if (value_of.count(node)) throw Error("model", "inputs[" + std::to_string(i) + "] is listed twice");
    value_of[node] = static_cast<int>(g.shapes_.size());
    g.shapes_.push_back(node->shape);
    g.input_names_.push_back(
        unique_name(node->input_name.empty() ? "input_layer" : node->input_name, input_names_taken));
  }
  // Depth-first from the outputs: a call is placed after the calls making its inputs, in the order
  // the inputs were given, so the order does not depend on addresses.
  std::vector<std::pair<const SymbolicNode*, std::size_t>> stack;
  std::set<const SymbolicNode*> on_stack;
  for (const SymbolicTensor& out : outputs) {
    stack.push_back({out.node().get(), 0});
    while (!stack.empty()) {
      auto& [node, next] = stack.back();
      if (value_of.count(node)) {
        stack.pop_back();
        continue;
      }
      if (!node->layer)
        throw Error("model", "an output depends on input '" +
                                 (node->input_name.empty() ? "input_layer" : node->input_name) + "' " +
                                 node->shape.batch_str() +
                                 ", which is not among the model's inputs; expected every input it needs in inputs");
      if (next < node->inputs.size()) {
        const SymbolicNode* child = node->inputs[next++].node().get();
        if (!value_of.count(child)) stack.push_back({child, 0});
        continue;
      }
      Node call{node->layer, {}, static_cast<int>(g.shapes_.size())};
      for (const SymbolicTensor& in : node->inputs) call.inputs.push_back(value_of.at(in.node().get()));
      value_of[node] = call.output;
      g.shapes_.push_back(node->shape);
      g.nodes_.push_back(std::move(call));
      stack.pop_back();
    }
    g.outputs_.push_back(value_of.at(out.node().get()));
  }
  // Unique layer names in call order (names key the saved weights).
  std::set<std::string> taken;
  for (const auto& layer : g.layers()) {
    const std::string base = layer->name().empty() ? snake_case(layer->class_name()) : layer->name();
    if (base.size() > 256 || base.find('/') != std::string::npos)
      throw Error("model", "layer name \"" + base.substr(0, 60) +
                               "\" cannot be saved; expected 1 to 256 characters without '/'");
    layer->set_name(unique_name(base, taken));
  }
  for (auto& name : g.input_names_)
    if (taken.count(name)) name = unique_name(name, taken);
  g.finish();
  return g;
}

Graph Graph::chain(const Shape& input_shape, const std::vector<std::shared_ptr<Layer>>& layers) {
  Graph g;
  g.input_names_ = {"input_layer"};
  g.shapes_ = {input_shape};
  for (const auto& layer : layers) {
    const int in = static_cast<int>(g.shapes_.size()) - 1;
    g.shapes_.push_back(layer->compute_output_shape(g.shapes_.back()));
    g.nodes_.push_back({layer, {in}, in + 1});
  }
  g.outputs_ = {static_cast<int>(g.shapes_.size()) - 1};
  g.finish();
  return g;
}

void Graph::finish() {
  last_reader_.assign(shapes_.size(), -1);
  std::map<const Layer*, int> calls;
  call_number_.clear();
  for (std::size_t n = 0; n < nodes_.size(); ++n) {
    for (int v : nodes_[n].inputs) last_reader_[static_cast<std::size_t>(v)] = static_cast<int>(n);
    call_number_.push_back(calls[nodes_[n].layer.get()]++);
  }
  for (int v : outputs_) last_reader_[static_cast<std::size_t>(v)] = static_cast<int>(nodes_.size());
  activation_next_.assign(nodes_.size(), "");
  for (std::size_t k = 0; k + 1 < nodes_.size(); ++k) {
    const Node& next = nodes_[k + 1];
    const int v = nodes_[k].output;
    if (next.inputs == std::vector<int>{v} && last_reader_[static_cast<std::size_t>(v)] == static_cast<int>(k + 1))
      activation_next_[k] = next.layer->pure_activation();
  }
}

const std::string& Graph::fused_activation(std::size_t k, bool training) const {
  const std::string& next = activation_next_[k];
  // The policies are compared on each run: set_dtype_policy may change them until the layers are built.
  const bool fused = !next.empty() && nodes_[k].layer->can_fuse_activation(next, training) &&
                     nodes_[k].layer->dtype_policy() == nodes_[k + 1].layer->dtype_policy();
  return fused ? next : kNoActivation;
}

std::vector<Shape> Graph::input_shapes() const { return {shapes_.begin(), shapes_.begin() + input_count()}; }

std::vector<Shape> Graph::output_shapes() const {
  std::vector<Shape> out;
  for (int v : outputs_) out.push_back(shape(v));
  return out;
}

std::vector<std::shared_ptr<Layer>> Graph::layers() const {
  std::vector<std::shared_ptr<Layer>> out;
  std::set<const Layer*> seen;
  for (const Node& n : nodes_)
    if (seen.insert(n.layer.get()).second) out.push_back(n.layer);
  return out;
}

std::string Graph::value_name(int v) const {
  if (v < input_count()) return input_names_[static_cast<std::size_t>(v)] + "[0][0]";
  const std::size_t n = static_cast<std::size_t>(v - input_count());
  return nodes_[n].layer->name() + "[" + std::to_string(call_number_[n]) + "][0]";
}

std::string Graph::maker_name(int v) const {
  if (v < input_count()) return input_names_[static_cast<std::size_t>(v)];
  return nodes_[static_cast<std::size_t>(v - input_count())].layer->name();
}

void Graph::build(Generator& gen, Device device) const {
  for (const Node& n : nodes_) {
    std::vector<Shape> in;
    for (int v : n.inputs) in.push_back(shape(v));
    Layer& layer = *n.layer;
    if (!layer.built()) {
      layer.build_inputs(in, gen, device);
      continue;
    }
    if (in.size() != 1) continue;  // layers of several inputs have no weights
    // A built layer called again (a shared layer) must need the weights it has.
    const auto specs = layer.weight_specs(in[0]);
    const auto& have = layer.all_weights();
    bool same = specs.size() == have.size();
    for (std::size_t i = 0; same && i < specs.size(); ++i) same = specs[i].shape == have[i].value.shape();
    if (!same)
      throw Error(layer.name(), "is called on an input of shape " + in[0].batch_str() +
                                    ", which needs other weights than the ones it has; expected every call of a "
                                    "shared layer on inputs of the shape it was built for");
  }
}

std::vector<Tensor> Graph::run(const std::vector<Tensor>& inputs, bool training,
                               const std::function<void(const Node&, const Tensor&)>& after_node) const {
  if (static_cast<int>(inputs.size()) != input_count())
    throw Error("model", "got " + std::to_string(inputs.size()) + " inputs; expected " + std::to_string(input_count()));
  std::vector<Tensor> values(shapes_.size());
  for (std::size_t i = 0; i < inputs.size(); ++i) values[i] = inputs[i];
  std::vector<Tensor> args;
  for (std::size_t k = 0; k < nodes_.size(); ++k) {
    const Node& n = nodes_[k];
    args.clear();
    for (int v : n.inputs) args.push_back(values[static_cast<std::size_t>(v)]);
    const std::string& activation = after_node ? kNoActivation : fused_activation(k, training);
    Tensor out = n.layer->call_with_policy(args, training, activation);
    if (after_node) after_node(n, out);
    // Memory: a value no later call reads goes (autograd keeps what backward needs).
    for (int v : n.inputs)
      if (last_reader_[static_cast<std::size_t>(v)] == static_cast<int>(k))
        values[static_cast<std::size_t>(v)] = Tensor();
    if (!activation.empty()) ++k;  // out is the activation node's output; the value between is never made
    values[static_cast<std::size_t>(nodes_[k].output)] = std::move(out);
  }
  std::vector<Tensor> out;
  for (int v : outputs_) out.push_back(values[static_cast<std::size_t>(v)]);
  return out;
}

}  // namespace kiln::model
