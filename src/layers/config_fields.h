// Config fields shared by layer classes: regularizers and constraints as {"class_name", "config"}
// objects, window
// pairs as two-element lists, and reading a layer's config with checked fields.
#pragma once

#include <array>
#include <memory>
#include <string>

#include "io/json_fields.h"
#include "kiln/constraints.h"
#include "kiln/registry.h"
#include "kiln/regularizers.h"

namespace kiln::layers {

/// {"class_name": ..., "config": ...} of a registered object (a regularizer, a constraint), or null
/// for none.
template <typename T>
Config object_config(const std::shared_ptr<const T>& object) {
  if (!object) return nullptr;
  return {{"class_name", object->class_name()}, {"config", object->get_config()}};
}
/// The object in field `key`, made by `registry` from its class name and config (absent or null: none).
template <typename T>
std::shared_ptr<const T> object_field(const io::JsonFields& f, const std::string& key,
                                      Registry<std::shared_ptr<const T>>& registry) {
  if (!f.has(key)) return nullptr;
  const io::JsonFields o(f.at(key), f.where() + " " + key, "from_config");
  return registry.make(o.string("class_name"), o.has("config") ? o.at("config") : Config::object());
}
/// The number `v` as Keras writes it in an error ("0.5", "1e-07").
std::string number_text(double v);
/// [a, b].
inline Config pair_config(std::array<int64_t, 2> p) { return Config::array({p[0], p[1]}); }
/// Checked reads of the config of layer class `class_name` (errors are "[from_config] ...").
inline io::JsonFields config_fields(const Config& config, const std::string& class_name) {
  return io::JsonFields(config, "the " + class_name + " config", "from_config");
}
/// The string in `key`, or `fallback` when absent (configs written before the field existed).
inline std::string string_or(const io::JsonFields& f, const std::string& key, const std::string& fallback) {
  return f.has(key) ? f.string(key) : fallback;
}

/// Writes the kernel and bias fields Dense and Conv2D share (initializers and regularizers) into
/// `config`.
template <typename Options>
void put_kernel_bias_fields(Config& config, const Options& o) {
  config["kernel_initializer"] = o.kernel_initializer;
  config["bias_initializer"] = o.bias_initializer;
  config["kernel_regularizer"] = object_config(o.kernel_regularizer);
  config["bias_regularizer"] = object_config(o.bias_regularizer);
  config["kernel_constraint"] = object_config(o.kernel_constraint);
  config["bias_constraint"] = object_config(o.bias_constraint);
}

/// Reads the fields put_kernel_bias_fields writes into `o`; absent ones keep Keras' defaults.
template <typename Options>
Options with_kernel_bias_fields(const io::JsonFields& f, Options o) {
  o.kernel_initializer = string_or(f, "kernel_initializer", "glorot_uniform");
  o.bias_initializer = string_or(f, "bias_initializer", "zeros");
  o.kernel_regularizer = object_field(f, "kernel_regularizer", regularizer_registry());
  o.bias_regularizer = object_field(f, "bias_regularizer", regularizer_registry());
  o.kernel_constraint = object_field(f, "kernel_constraint", constraint_registry());
  o.bias_constraint = object_field(f, "bias_constraint", constraint_registry());
  return o;
}

}  // namespace kiln::layers
