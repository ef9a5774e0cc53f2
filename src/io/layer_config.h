// Layer configs as JSON, written from each layer class's public getters and rebuilt from them:
// {"class_name": "Dense", "name": "dense_1", "config": {"units": 64, "activation": "relu", ...}}.
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "kiln/layers.h"

namespace kiln::io {

/// The config of `layer`; throws for a layer class kiln cannot rebuild (only Dense, Conv2D,
/// MaxPooling2D and Flatten can be saved).
nlohmann::json layer_to_json(const Layer& layer);

/// Rebuilds an unbuilt layer, named as saved, from layer_to_json's output; `where` names the file
/// and layer in errors.
std::shared_ptr<Layer> layer_from_json(const nlohmann::json& j, const std::string& where);

/// Scalars of the weights `layer` creates for per-sample `input_shape` (which compute_output_shape
/// has accepted), computed without allocating them; lets a loader refuse a config whose weights
/// could not be in the file before building it.
int64_t weight_count(const Layer& layer, const Shape& input_shape);

/// Whether `layer` creates weights when it is built (Dense, Conv2D): a config without an input
/// shape cannot say how many, so the file could not hold them.
bool creates_weights(const Layer& layer);

}  // namespace kiln::io
