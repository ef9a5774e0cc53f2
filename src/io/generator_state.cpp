// Generator state as text, checked on the way in.
#include "io/generator_state.h"

#include <random>

#include "kiln/error.h"

namespace kiln::io {

std::string generator_state(const Generator& gen) { return gen.state(); }

void set_generator_state(Generator& gen, const std::string& state, const std::string& source) {
  if (!gen.set_state(state))
    throw Error("load_model", source + ": the saved random generator state does not parse; expected " +
                                  std::to_string(std::mt19937_64::state_size) + " numbers and a position");
}

}  // namespace kiln::io
