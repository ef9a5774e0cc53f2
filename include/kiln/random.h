/// Seeded random numbers, identical on every platform (so every device gets the same weights).
#pragma once

#include <cstdint>
#include <random>
#include <string>
#include <vector>

namespace kiln {

/// A reproducible generator: mt19937_64 with platform-independent conversions.
class Generator {
 public:
  explicit Generator(uint64_t seed = 0) : engine_(seed) {}
  /// Restarts the sequence from `seed`.
  void seed(uint64_t seed) { engine_.seed(seed); }
  /// Uniform double in [0, 1) with 53 random bits.
  double uniform();
  /// Standard normal (Box-Muller).
  double normal();
  /// Uniform integer in [0, n).
  uint64_t below(uint64_t n);
  /// A random permutation of 0..n-1 (Fisher-Yates).
  std::vector<int32_t> permutation(int64_t n);
  /// The full engine state as text (checkpoints save it so resumed training repeats the shuffles).
  std::string state() const;
  /// Restores a state from state(); returns false, leaving the generator unchanged, when it does not
  /// parse.
  bool set_state(const std::string& state);

 private:
  std::mt19937_64 engine_;
};

/// The generator behind weight initialisation and shuffling.
Generator& global_generator();

namespace utils {
/// Seeds the generator behind initial weights and shuffling (Keras' set_random_seed).
void set_random_seed(uint64_t seed);
}  // namespace utils

}  // namespace kiln
