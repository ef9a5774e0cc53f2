// Config fields shared by layer classes: regularizers as {"class_name", "config"} objects, window
// pairs as two-element lists, and reading a layer's config with checked fields.
#pragma once

#include <array>
#include <memory>
#include <string>

#include "io/json_fields.h"
#include "kiln/registry.h"
#include "kiln/regularizers.h"

namespace kiln::layers {

/// {"class_name": ..., "config": ...} of `r`, or null for none.
Config regularizer_config(const std::shared_ptr<const Regularizer>& r);
/// The regularizer in field `key` (absent or null: none).
std::shared_ptr<const Regularizer> regularizer_field(const io::JsonFields& f, const std::string& key);
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

}  // namespace kiln::layers
