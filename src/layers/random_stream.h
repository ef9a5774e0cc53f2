// The random stream a layer owns (Dropout, the random image layers): its saved counter, where the
// counter starts, the Philox key of a layer without a seed, and where a replica's shard starts in
// the draw. One place, so every random layer draws and saves the same way.
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

/// Where this process's draw starts in the draw of the whole global batch, in the draw's items, for
/// an input whose first axis has `leading` entries here, each drawing `per_entry` items (Dropout:
/// the numbers of an entry's elements; the random image layers: 1 sample). During a data-parallel
/// fit (distribute::ReplicaContext) that is the shard's first row times the entries per row, so a
/// shard's rows get exactly what one process gives those rows of the global batch (the counters
/// advance once per step on every process, as in one process); outside one, 0. A first axis that
/// is not a whole number of entries per shard row is no batch axis: one process draws it whole
/// too, so 0 as well. A recorded (CUDA-graph) step bakes the offset into its kernels' arguments:
/// it is the same at every step of one batch size on one process, so replays stay right.
int64_t shard_draw_offset(int64_t leading, int64_t per_entry);

}  // namespace kiln::layers
