// The state of a model's random generator as text, so a checkpoint can carry it and resumed training
// draws the same shuffles as uninterrupted training would.
#pragma once

#include <string>

#include "kiln/random.h"

namespace kiln::io {

/// The full state of `gen` (mt19937_64's standard text form: 312 words and a position).
std::string generator_state(const Generator& gen);
/// Puts `gen` in `state`, as produced by generator_state; `source` names the file in errors.
void set_generator_state(Generator& gen, const std::string& state, const std::string& source);

}  // namespace kiln::io
