// Helpers of the CPU-vs-GPU parity tests: the two backends, fresh random inputs, device buffers and
// the tolerance check.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <cstddef>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "backend/backend.h"

namespace kiln::testing {

inline backend::Backend& cpu() { return backend::cpu(); }
inline backend::Backend& gpu() { return backend::cuda(0); }

/// The parity tests' engine, seeded afresh each run: a mismatch shows on some run, not on none.
inline std::mt19937& rng() {
  static std::mt19937 engine(std::random_device{}());
  return engine;
}

/// n uniform values in [lo, hi).
template <typename T = float>
std::vector<T> random_vec(std::size_t n, double lo = -2.0, double hi = 2.0) {
  std::uniform_real_distribution<double> dist(lo, hi);
  std::vector<T> v(n);
  for (auto& x : v) x = static_cast<T>(dist(rng()));
  return v;
}

/// Integer-valued floats in [0, k): many exact ties, for argmax and max pooling.
inline std::vector<float> tied_vec(std::size_t n, int k) {
  std::uniform_int_distribution<int> dist(0, k - 1);
  std::vector<float> v(n);
  for (auto& x : v) x = static_cast<float>(dist(rng()));
  return v;
}

/// `v` with about one value in `one_in` replaced by NaN (and at least index 0, so every case has one).
template <typename T>
std::vector<T> with_nans(std::vector<T> v, int one_in = 8) {
  std::uniform_int_distribution<int> dist(0, one_in - 1);
  for (auto& x : v)
    if (dist(rng()) == 0) x = std::numeric_limits<T>::quiet_NaN();
  if (!v.empty()) v[0] = std::numeric_limits<T>::quiet_NaN();
  return v;
}

/// Device memory holding a copy of `host` (or n zero bytes), freed at scope exit.
struct DevBuf {
  void* ptr = nullptr;
  std::size_t bytes = 0;
  explicit DevBuf(std::size_t n_bytes) : bytes(n_bytes) {
    ptr = gpu().allocator().allocate(bytes);
    gpu().fill(DType::UInt8, ptr, static_cast<int64_t>(bytes), 0.0);
  }
  template <typename T>
  explicit DevBuf(const std::vector<T>& host) : DevBuf(host.size() * sizeof(T)) {
    gpu().copy_from_host(ptr, host.data(), bytes);
  }
  ~DevBuf() { gpu().allocator().deallocate(ptr, bytes); }
  DevBuf(const DevBuf&) = delete;
  DevBuf& operator=(const DevBuf&) = delete;
  template <typename T>
  std::vector<T> get() const {
    std::vector<T> out(bytes / sizeof(T));
    gpu().copy_to_host(out.data(), ptr, bytes);
    return out;
  }
  template <typename T>
  T* as() const {
    return static_cast<T*>(ptr);
  }
};

/// |cpu - gpu| <= atol + rtol |cpu| everywhere; NaN must meet NaN.
template <typename T>
void expect_close(const std::vector<T>& want, const std::vector<T>& got, double rtol, double atol,
                  const std::string& what) {
  ASSERT_EQ(want.size(), got.size()) << what;
  for (std::size_t i = 0; i < want.size(); ++i) {
    const double w = want[i], g = got[i];
    if (std::isnan(w) && std::isnan(g)) continue;
    ASSERT_LE(std::abs(w - g), atol + rtol * std::abs(w)) << what << " at " << i << ": cpu " << w << ", gpu " << g;
  }
}

}  // namespace kiln::testing
