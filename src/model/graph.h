// A model's computation as data: its inputs, the layer calls in an order where every call comes
// after the calls that make its inputs, and its outputs. A functional model reads it from symbolic
// tensors (kiln/symbolic_tensor.h); a Sequential model is the chain of its layers. One run() serves
// both, so fit, evaluate, predict and the recorded step never ask which kind of model they run.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "kiln/layer.h"
#include "kiln/symbolic_tensor.h"
#include "kiln/tensor.h"

namespace kiln::model {

class Graph {
 public:
  /// One layer call: the values it reads and the value it makes (indices into the graph's values;
  /// the inputs are values 0 .. input_count() - 1).
  struct Node {
    std::shared_ptr<Layer> layer;
    std::vector<int> inputs;
    int output = 0;
  };

  /// The graph from `inputs` to `outputs`; layers without a name get Keras' default one and
  /// repeated names are made unique. Throws naming the problem: an output that does not depend on
  /// the inputs given, an input listed twice, no outputs.
  static Graph from_symbolic(const std::vector<SymbolicTensor>& inputs, const std::vector<SymbolicTensor>& outputs);
  /// The chain layers[0](layers[1](...)) on one input of per-sample `input_shape`; throws (naming the
  /// layer) where a layer does not accept its input.
  static Graph chain(const Shape& input_shape, const std::vector<std::shared_ptr<Layer>>& layers);

  /// Number of inputs.
  int input_count() const { return static_cast<int>(input_names_.size()); }
  /// The inputs' names ("input_layer", ...).
  const std::vector<std::string>& input_names() const { return input_names_; }
  /// The layer calls, in the order run() makes them.
  const std::vector<Node>& nodes() const { return nodes_; }
  /// The values the model returns, in order.
  const std::vector<int>& outputs() const { return outputs_; }
  /// Per-sample shape of value `v`.
  const Shape& shape(int v) const { return shapes_[static_cast<std::size_t>(v)]; }
  /// Per-sample shapes of the inputs.
  std::vector<Shape> input_shapes() const;
  /// Per-sample shapes of the outputs.
  std::vector<Shape> output_shapes() const;
  /// Every layer once, in the order of its first call.
  std::vector<std::shared_ptr<Layer>> layers() const;
  /// Value `v` as Keras' "Connected to" column names it: "<layer>[<call>][0]" ("dense[0][0]",
  /// "dense[1][0]" for a shared layer's second call, "input_layer[0][0]").
  std::string value_name(int v) const;
  /// The name of what makes value `v`: the input's or the layer's.
  std::string maker_name(int v) const;

  /// Builds every unbuilt layer for the shapes it is called on, drawing from `gen`; a layer that is
  /// already built (called twice, or taken from another model) must need the same weights again.
  void build(Generator& gen, Device device) const;
  /// Runs the calls on batches `inputs` (one per input, on the model's device). `after_node`, when
  /// given, sees each node's output as it is made (check_numerics). Values are released after their
  /// last reader. A call followed by an Activation layer that is the only reader of its output runs
  /// with the activation inside where the layer can (Layer::can_fuse_activation: the same values in
  /// fewer passes), unless `after_node` is given (it sees every node's own output).
  std::vector<Tensor> run(const std::vector<Tensor>& inputs, bool training,
                          const std::function<void(const Node&, const Tensor&)>& after_node = {}) const;

 private:
  std::vector<std::string> input_names_;
  std::vector<Shape> shapes_;  // per value
  std::vector<Node> nodes_;
  std::vector<int> outputs_;
  std::vector<int> last_reader_;  // per value: the last node that reads it (-1: none; outputs stay)
  std::vector<int> call_number_;  // per node: how many earlier nodes call the same layer
  // Per node: the activation of the next node when that is an activation layer that alone reads
  // this node's output (which is not a model output either), so the two may run as one call; ""
  // otherwise. fused_activation() adds what can change after the graph is made (the mode, the
  // layers' dtype policies).
  std::vector<std::string> activation_next_;

  void finish();  // fills last_reader_, call_number_ and activation_next_
  // The activation that node k applies in its own call in this run ("" when none).
  const std::string& fused_activation(std::size_t k, bool training) const;
};

/// Keras' default layer name for `class_name`: MaxPooling2D -> max_pooling2d.
std::string snake_case(const std::string& class_name);

}  // namespace kiln::model
