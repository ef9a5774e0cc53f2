// Saving and loading of whole models and their weights, with the epoch recorded for resuming.
#pragma once

#include <string>

#include "kiln/model.h"

namespace kiln::io {

/// Sequential::save with the last finished epoch recorded (-1 when unknown).
void save_model(const Sequential& model, const std::string& path, int epoch);
/// Sequential::save_weights with the last finished epoch recorded (-1 when unknown).
void save_weights(const Sequential& model, const std::string& path, int epoch);

}  // namespace kiln::io
