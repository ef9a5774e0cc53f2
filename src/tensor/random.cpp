// Generator: platform-independent conversions of mt19937_64 output (the standard's
// distributions are implementation-defined, so they are not used), each call under the
// generator's mutex so a shared generator is never a data race.
#include "kiln/random.h"

#include <cmath>
#include <numbers>
#include <sstream>

namespace kiln {

Generator::Generator(const Generator& other) {
  std::lock_guard lock(other.mutex_);
  engine_ = other.engine_;
}

Generator& Generator::operator=(const Generator& other) {
  if (this == &other) return *this;
  std::scoped_lock lock(mutex_, other.mutex_);
  engine_ = other.engine_;
  return *this;
}

void Generator::seed(uint64_t seed) {
  std::lock_guard lock(mutex_);
  engine_.seed(seed);
}

double Generator::uniform() {
  std::lock_guard lock(mutex_);
  return uniform_locked();
}

double Generator::normal() {
  std::lock_guard lock(mutex_);
  double u1 = uniform_locked();
  while (u1 <= 0.0) u1 = uniform_locked();
  const double u2 = uniform_locked();
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * std::numbers::pi * u2);
}

uint64_t Generator::below_locked(uint64_t n) {
  // Rejection sampling keeps every value equally likely.
  const uint64_t limit = UINT64_MAX - UINT64_MAX % n;
  uint64_t r;
  do r = engine_();
  while (r >= limit);
  return r % n;
}

uint64_t Generator::below(uint64_t n) {
  std::lock_guard lock(mutex_);
  return below_locked(n);
}

std::vector<int32_t> Generator::permutation(int64_t n) {
  std::vector<int32_t> p(static_cast<std::size_t>(n));
  for (int64_t i = 0; i < n; ++i) p[i] = static_cast<int32_t>(i);
  std::lock_guard lock(mutex_);  // one lock for the whole shuffle: another thread's draws stay out of it
  for (int64_t i = n - 1; i > 0; --i) std::swap(p[i], p[below_locked(static_cast<uint64_t>(i + 1))]);
  return p;
}

Generator Generator::split() {
  Generator child;
  std::lock_guard lock(mutex_);
  child.engine_ = engine_;
  // The next seed comes from this sequence's next word, put through splitmix64's finaliser; seeding
  // mt19937_64 from it starts a sequence unrelated to the one handed over.
  std::mt19937_64 probe = engine_;
  uint64_t z = probe() + 0x9e3779b97f4a7c15ULL;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  engine_.seed(z ^ (z >> 31));
  return child;
}

std::string Generator::state() const {
  std::ostringstream os;
  std::lock_guard lock(mutex_);
  os << engine_;
  return os.str();
}

bool Generator::set_state(const std::string& state) {
  std::istringstream is(state);
  std::mt19937_64 engine;
  is >> engine;
  if (!is || (is >> std::ws, !is.eof())) return false;  // malformed, or trailing bytes
  std::lock_guard lock(mutex_);
  engine_ = engine;
  return true;
}

Generator& global_generator() {
  static Generator gen(0);
  return gen;
}

void utils::set_random_seed(uint64_t seed) { global_generator().seed(seed); }

}  // namespace kiln
