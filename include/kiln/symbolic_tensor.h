/// The functional API's placeholders: kiln::Input and the symbolic tensors that calling a layer on
/// them returns, from which kiln::Model(inputs, outputs) reads the graph (Keras' KerasTensor).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "kiln/shape.h"

namespace kiln {

class Layer;
class SymbolicTensor;

namespace model {
/// Where a symbolic tensor comes from: an Input, or a layer called on other symbolic tensors.
struct SymbolicNode {
  std::shared_ptr<Layer> layer;        ///< the layer called (null for an Input)
  std::vector<SymbolicTensor> inputs;  ///< what it was called on, in order (empty for an Input)
  Shape shape;                         ///< per-sample shape of the result
  std::string input_name;              ///< an Input's name (empty for a layer's output)
};
}  // namespace model

/// A tensor of a model under construction: its per-sample shape and the layer calls that make it.
/// It holds no values; kiln::Model(inputs, outputs) turns the calls into a model.
class SymbolicTensor {
 public:
  /// The per-sample shape (without the batch dimension).
  const Shape& shape() const;
  /// "<SymbolicTensor shape=[None, 32, 32, 3], from dense>", for messages.
  std::string str() const;
  /// The call that makes it (for kiln::Model and the graph code).
  const std::shared_ptr<const model::SymbolicNode>& node() const { return node_; }
  /// A tensor made by `node`.
  explicit SymbolicTensor(std::shared_ptr<const model::SymbolicNode> node);

 private:
  std::shared_ptr<const model::SymbolicNode> node_;
};

/// An input of a functional model with per-sample `shape` (Keras' keras.Input(shape=...)); `name`
/// defaults to "input_layer", made unique within the model ("input_layer_1", ...).
SymbolicTensor Input(const Shape& shape, std::string name = "");

}  // namespace kiln
