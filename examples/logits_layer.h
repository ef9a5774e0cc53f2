// The logits layer of the example networks (and the model zoo's): Dense(units), kept in float32
// under a mixed precision policy, as Keras' mixed precision guide advises for a model's last layer:
// the logits the softmax cross-entropy reads then come from a float32 product, not a 16-bit one.
#pragma once

#include <kiln/kiln.h>

#include <cstdint>

namespace examples {

/// Dense(units) with the float32 policy when the global policy is a mixed one. The policy is read
/// here, as the layer is made: set it before calling.
inline kiln::layers::Dense logits_layer(int64_t units) {
  kiln::layers::Dense dense(units);
  if (kiln::mixed_precision::global_policy().is_mixed()) dense.set_dtype_policy("float32");
  return dense;
}

}  // namespace examples
