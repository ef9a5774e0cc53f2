// Translation between Keras 3's serialized model (config.json of a .keras archive) and kiln's own
// model config (io/model_config.h). Both use Keras' class names and get_config keys; Keras adds
// object wrappers ({"module", "class_name", "config", "registered_name"}), dtype policies,
// initializer objects, InputLayer entries, inbound nodes and build configs, which are mapped here.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "kiln/model.h"

namespace kiln::io::keras {

/// Keras' version whose .keras layout kiln reads and writes (metadata.json's keras_version).
inline constexpr const char* kKerasVersion = "3.15.1";

/// kiln's model config (the JSON parse_model_config reads) for Keras' `config.json` object.
/// Unknown classes, custom objects, dtype policies other than float32 and options kiln does not
/// have (a dilation rate, a constraint kiln lacks) are refused naming the layer and the field; `source`
/// names the file in errors.
nlohmann::json kiln_config_from_keras(const nlohmann::json& keras, const std::string& source);

/// Keras' config.json object for `model` (built; compile settings included when compiled).
nlohmann::json keras_config_from_model(const Model& model);

}  // namespace kiln::io::keras
