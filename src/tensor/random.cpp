// Generator: platform-independent conversions of mt19937_64 output (the standard's
// distributions are implementation-defined, so they are not used).
#include <cmath>
#include <numbers>
#include <sstream>

#include "kiln/random.h"

namespace kiln {

double Generator::uniform() { return static_cast<double>(engine_() >> 11) * 0x1.0p-53; }

double Generator::normal() {
  double u1 = uniform();
  while (u1 <= 0.0) u1 = uniform();
  const double u2 = uniform();
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * std::numbers::pi * u2);
}

uint64_t Generator::below(uint64_t n) {
  // Rejection sampling keeps every value equally likely.
  const uint64_t limit = UINT64_MAX - UINT64_MAX % n;
  uint64_t r;
  do r = engine_(); while (r >= limit);
  return r % n;
}

std::vector<int32_t> Generator::permutation(int64_t n) {
  std::vector<int32_t> p(static_cast<std::size_t>(n));
  for (int64_t i = 0; i < n; ++i) p[i] = static_cast<int32_t>(i);
  for (int64_t i = n - 1; i > 0; --i) std::swap(p[i], p[below(static_cast<uint64_t>(i + 1))]);
  return p;
}

std::string Generator::state() const {
  std::ostringstream os;
  os << engine_;
  return os.str();
}

bool Generator::set_state(const std::string& state) {
  std::istringstream is(state);
  std::mt19937_64 engine;
  is >> engine;
  if (!is || (is >> std::ws, !is.eof())) return false;  // malformed, or trailing bytes
  engine_ = engine;
  return true;
}

Generator& global_generator() {
  static Generator gen(0);
  return gen;
}

void utils::set_random_seed(uint64_t seed) { global_generator().seed(seed); }

}  // namespace kiln
