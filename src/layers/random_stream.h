// The random stream a layer owns (Dropout, the random image layers): its saved counter, where the
// counter starts, and the Philox key of a layer without a seed. One place, so every random layer
// draws and saves the same way.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "kiln/initializers.h"

namespace kiln::layers {

/// The counter's weight name, as Keras names a SeedGenerator's state.
inline constexpr const char* kStreamCounter = "seed_generator_state";

/// The Philox key of a layer without a seed. Such a layer's randomness lies in where its counter
/// starts (drawn at build, saved with the model); a key no seed of 0 collides with keeps that
/// stream apart from a seeded layer's, whose counter starts at 0.
inline constexpr uint64_t kUnseededKey = 0x9e3779b97f4a7c15ULL;

/// The key of a layer's stream: its seed, or kUnseededKey.
inline uint64_t stream_key(const std::optional<int64_t>& seed) {
  return seed ? static_cast<uint64_t>(*seed) : kUnseededKey;
}

/// The counter's first value: 0 with a seed, else a point drawn from the model's generator, below
/// 2^62 so that advancing it never overflows.
class CounterStart : public Initializer {
 public:
  /// For a layer with a seed (`seeded`) or without.
  explicit CounterStart(bool seeded) : seeded_(seeded) {}
  std::string class_name() const override { return "CounterStart"; }
  Tensor operator()(const Shape& shape, Generator& gen, Device device) const override;

 private:
  bool seeded_;
};

}  // namespace kiln::layers
