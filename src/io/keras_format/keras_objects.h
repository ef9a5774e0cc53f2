// Keras' serialized objects ({"module", "class_name", "config", "registered_name"}) and the
// names kiln gives them: shared by the two directions of the config translation.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

namespace kiln::io::keras {

/// Whether `j` is a Keras object wrapper: an object with a string "class_name" and a "config".
bool is_wrapped(const nlohmann::json& j);

/// Keras' wrapper {"module": module, "class_name": ..., "config": ..., "registered_name": null}.
nlohmann::json wrap(const std::string& module, const std::string& class_name, nlohmann::json config);

/// Keras' float32 dtype policy object.
nlohmann::json float32_policy();

/// "glorot_uniform" -> "GlorotUniform" (Keras' initializer class of a snake_case alias).
std::string camel_case(const std::string& snake);

}  // namespace kiln::io::keras
