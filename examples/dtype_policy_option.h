// The CIFAR-10 examples' --dtype-policy option: Keras' global mixed precision policy, set before
// the model is built (kiln::mixed_precision::set_global_policy).
#pragma once

#include <CLI/CLI.hpp>
#include <string>

namespace examples {

/// Adds --dtype-policy to `app`, writing the chosen policy name to `policy` (default float32).
inline void add_dtype_policy_option(CLI::App& app, std::string& policy) {
  app.add_option("--dtype-policy", policy,
                 "Keras' global dtype policy (kiln::mixed_precision::set_global_policy): float32, or mixed_bfloat16 / "
                 "mixed_float16 (layers compute in the 16-bit type with float32 weights; the logits layer stays "
                 "float32; fit adds loss scaling under mixed_float16)")
      ->check(CLI::IsMember({"float32", "mixed_bfloat16", "mixed_float16"}));
}

}  // namespace examples
