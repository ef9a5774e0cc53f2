// Config fields shared by layer classes: regularizers as {"class_name", "config"} objects, window
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

/// {"class_name": ..., "config": ...} of `r`, or null for none.
Config regularizer_config(const std::shared_ptr<const Regularizer>& r);
/// The regularizer in field `key` (absent or null: none).
std::shared_ptr<const Regularizer> regularizer_field(const io::JsonFields& f, const std::string& key);
/// A constraint as {"class_name", "config"}, or null.
Config constraint_config(const std::shared_ptr<const Constraint>& c);
/// The constraint in field `key` (absent or null: none).
std::shared_ptr<const Constraint> constraint_field(const io::JsonFields& f, const std::string& key);
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
  config["kernel_regularizer"] = regularizer_config(o.kernel_regularizer);
  config["bias_regularizer"] = regularizer_config(o.bias_regularizer);
  config["kernel_constraint"] = constraint_config(o.kernel_constraint);
  config["bias_constraint"] = constraint_config(o.bias_constraint);
}

/// Reads the fields put_kernel_bias_fields writes into `o`; absent ones keep Keras' defaults.
template <typename Options>
Options with_kernel_bias_fields(const io::JsonFields& f, Options o) {
  o.kernel_initializer = string_or(f, "kernel_initializer", "glorot_uniform");
  o.bias_initializer = string_or(f, "bias_initializer", "zeros");
  o.kernel_regularizer = regularizer_field(f, "kernel_regularizer");
  o.bias_regularizer = regularizer_field(f, "bias_regularizer");
  o.kernel_constraint = constraint_field(f, "kernel_constraint");
  o.bias_constraint = constraint_field(f, "bias_constraint");
  return o;
}

}  // namespace kiln::layers
