// Layer configs as JSON, through the layer registry (kiln/layer.h):
// {"class_name": "Dense", "name": "dense_1", "config": {"units": 64, "activation": "relu", ...}}.
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "kiln/layer.h"

namespace kiln::io {

/// The config of `layer`: its class's get_config() plus the base fields (trainable, input_shape);
/// throws for a class that is not registered (load_model could not rebuild it).
nlohmann::json layer_to_json(const Layer& layer);
/// Rebuilds an unbuilt layer, named as saved, from layer_to_json's output; `where` names the file
/// and layer in errors.
std::shared_ptr<Layer> layer_from_json(const nlohmann::json& j, const std::string& where);
/// Scalars of the weights `layer` creates for per-sample `input_shape` (which compute_output_shape
/// has accepted), counted by a dry build that allocates nothing; lets a loader refuse a config
/// whose weights could not be in the file before building it. INT64_MAX when the count overflows.
int64_t weight_count(Layer& layer, const Shape& input_shape);

}  // namespace kiln::io
