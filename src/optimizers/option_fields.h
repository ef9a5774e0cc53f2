// Helpers shared by the built-in optimizers' constructors and from_config: option checks, config
// reads, and copying the common options back into an options struct.
#pragma once

#include <cmath>
#include <optional>
#include <string>

#include "io/json_fields.h"
#include "kiln/error.h"
#include "kiln/optimizers.h"

namespace kiln::optimizers {

/// The number at `key`, or `fallback` when it is absent or null.
inline double number_or(const io::JsonFields& f, const std::string& key, double fallback) {
  return f.has(key) ? f.number(key) : fallback;
}

/// A value that may be none as JSON: the number or null.
inline Config optional_json(const std::optional<double>& v) { return v ? Config(*v) : Config(nullptr); }

/// The number at `key`, none when it is absent or null.
inline std::optional<double> optional_number(const io::JsonFields& f, const std::string& key) {
  return f.has(key) ? std::optional<double>(f.number(key)) : std::nullopt;
}

/// The number at `key` (none when null); `fallback` when the key is absent.
inline std::optional<double> optional_number_or(const Config& config, const io::JsonFields& f, const std::string& key,
                                                std::optional<double> fallback) {
  return config.contains(key) ? optional_number(f, key) : fallback;
}

/// Throws "[op] option is value; expected a finite number" unless `value` is finite.
inline void check_finite(const std::string& op, const char* option, double value) {
  if (!std::isfinite(value))
    throw Error(op, std::string(option) + " is " + std::to_string(value) + "; expected a finite number");
}

/// Writes the common options `c` into the options struct `o`.
template <typename O>
void set_common(O& o, const CommonOptions& c) {
  o.learning_rate = c.learning_rate;
  o.weight_decay = c.weight_decay;
  o.clipnorm = c.clipnorm;
  o.clipvalue = c.clipvalue;
  o.global_clipnorm = c.global_clipnorm;
  o.use_ema = c.use_ema;
  o.ema_momentum = c.ema_momentum;
  o.ema_overwrite_frequency = c.ema_overwrite_frequency;
}

}  // namespace kiln::optimizers
