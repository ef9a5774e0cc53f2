// Saving and loading of whole models and their weights, with the epoch recorded for resuming.
#pragma once

#include <string>

#include "io/model_config.h"
#include "kiln/model.h"

namespace kiln::io {

/// Model::save with the last finished epoch recorded (-1 when unknown).
void save_model(const Model& model, const std::string& path, int epoch);
/// Model::save_weights with the last finished epoch recorded (-1 when unknown).
void save_weights(const Model& model, const std::string& path, int epoch);
/// The model `cfg` describes (layers and graph, fresh weights, not compiled); the global generator
/// is left as it was. `source` names the file in errors.
Model build_model(const ModelConfig& cfg, const std::string& source);

}  // namespace kiln::io
