// Saving and loading of whole models and their weights, with the epoch recorded for resuming.
#pragma once

#include <string>

#include "kiln/model.h"

namespace kiln::io {

/// Model::save with the last finished epoch recorded (-1 when unknown).
void save_model(const Model& model, const std::string& path, int epoch);
/// Model::save_weights with the last finished epoch recorded (-1 when unknown).
void save_weights(const Model& model, const std::string& path, int epoch);

}  // namespace kiln::io
