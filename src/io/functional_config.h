// A functional model's graph in a saved config: its inputs, every layer call by the layer's name
// and the values it reads, and its outputs. A value is named as Keras' inbound nodes name it:
// [maker, call] where maker is an input's or a layer's name and call counts that layer's calls.
//   "inputs":  [{"name": "input_layer", "shape": [32, 32, 3]}]
//   "nodes":   [{"layer": "conv2d", "inputs": [["input_layer", 0]]}, ...]
//   "outputs": [["dense", 0]]
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "kiln/model.h"

namespace kiln::io {

/// The graph fields ("inputs", "nodes", "outputs") of a built functional `model`.
nlohmann::json functional_graph_json(const Model& model);

/// A graph read back: symbolic inputs and outputs over `layers`, ready for Model(inputs, outputs).
struct FunctionalGraph {
  std::vector<SymbolicTensor> inputs, outputs;
  int64_t weight_count = 0;  ///< scalars of every weight the layers will create
};

/// Calls `layers` (rebuilt from the same config, unbuilt) as the graph fields of `config` say,
/// checking every reference and shape; nothing is allocated. `source` names the file in errors.
FunctionalGraph parse_functional_graph(const nlohmann::json& config, const std::vector<std::shared_ptr<Layer>>& layers,
                                       const std::string& source);

}  // namespace kiln::io
