// A checkpoint's model config: kiln version, model name, layers, input shape, compile settings,
// optimizer iteration count, last epoch and random generator state, as JSON text kept in the
// safetensors "__metadata__" under "kiln_config".
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "io/functional_config.h"
#include "kiln/model.h"
namespace kiln::io {

/// Layout version of the config; readers refuse newer ones with a clear message.
inline constexpr int kCheckpointFormatVersion = 1;
/// Largest per-sample input accepted from a file, in scalars.
inline constexpr int64_t kMaxInputNumel = int64_t{1} << 40;

/// A parsed, validated config, its layers rebuilt (unbuilt) and its optimizer and loss recreated.
struct ModelConfig {
  std::string name;
  bool functional = false;  ///< a functional model (graph), else a Sequential one
  std::vector<std::shared_ptr<Layer>> layers;
  std::optional<Shape> input_shape;               ///< Sequential: set when the saved model was built
  FunctionalGraph graph;                          ///< functional: the layers called on symbolic inputs
  int64_t weight_count = 0;                       ///< scalars of every weight for input_shape
  std::unique_ptr<Optimizer> optimizer;           ///< null when the saved model was not compiled
  std::vector<std::unique_ptr<Loss>> losses;      ///< one per output
  std::vector<std::vector<std::string>> metrics;  ///< per output
  std::vector<double> loss_weights;               ///< per output
  int64_t iterations = 0;                         ///< optimizer updates applied
  int64_t slot_groups = 0;                        ///< parameters with saved optimizer slots (0 before the first update)
  int epoch = -1;                                 ///< last finished epoch (0-based), -1 when unknown
  std::string rng_state;                          ///< global generator state at save time (empty when absent)
};

/// The config of `model` as JSON text; `epoch` is the last finished epoch (-1 when unknown).
/// Throws for a layer, optimizer or loss class that cannot be rebuilt.
std::string model_config_json(const Model& model, int epoch);

/// Parses and checks config text (untrusted); `source` names the file in errors. Every layer's
/// output shape is computed, so a config that could not build fails here, before any allocation.
ModelConfig parse_model_config(std::string_view text, const std::string& source);

}  // namespace kiln::io
