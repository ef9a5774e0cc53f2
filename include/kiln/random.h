/// Seeded random numbers, identical on every platform (so every device gets the same weights).
#pragma once

#include <cstdint>
#include <mutex>
#include <random>
#include <string>
#include <vector>

namespace kiln {

/// A reproducible generator: mt19937_64 with platform-independent conversions.
///
/// Every call is atomic (the generator holds a mutex), so threads may share one without a data
/// race; the values each of them draws then depend on timing. Results that must not depend on it
/// come from a generator per thread: each Sequential has its own (Sequential::generator()).
class Generator {
 public:
  /// A generator whose sequence starts from `seed`.
  explicit Generator(uint64_t seed = 0) : engine_(seed) {}
  /// A generator in `other`'s state: it draws what `other` would draw next.
  Generator(const Generator& other);
  /// Takes `other`'s state: this generator then draws what `other` would draw next.
  Generator& operator=(const Generator& other);
  /// Restarts the sequence from `seed`.
  void seed(uint64_t seed);
  /// Uniform double in [0, 1) with 53 random bits.
  double uniform();
  /// Standard normal (Box-Muller).
  double normal();
  /// Uniform integer in [0, n).
  uint64_t below(uint64_t n);
  /// A random permutation of 0..n-1 (Fisher-Yates).
  std::vector<int32_t> permutation(int64_t n);
  /// Hands this generator's sequence to a new generator and moves on to a fresh one, seeded from
  /// it: the new generator draws exactly what this one would have drawn, this one draws values
  /// unrelated to those. A model takes its generator from the global one this way, so a single
  /// model after set_random_seed(n) sees the sequence it always saw, and the next model another.
  Generator split();
  /// The full engine state as text (checkpoints save it so resumed training repeats the shuffles).
  std::string state() const;
  /// Restores a state from state(); returns false, leaving the generator unchanged, when it does not
  /// parse.
  bool set_state(const std::string& state);

 private:
  mutable std::mutex mutex_;
  std::mt19937_64 engine_;

  uint64_t below_locked(uint64_t n);
  double uniform_locked() { return static_cast<double>(engine_() >> 11) * 0x1.0p-53; }
};

/// The process-wide generator: models take their own generators from it when they are constructed
/// (see Generator::split), and code of one's own may draw from it. Thread-safe call by call, like
/// every Generator; draws from several threads interleave in an order that depends on timing.
Generator& global_generator();

namespace utils {
/// Seeds the global generator, from which the models constructed afterwards take their generators
/// for initial weights and shuffling (Keras' set_random_seed).
void set_random_seed(uint64_t seed);
}  // namespace utils

}  // namespace kiln
