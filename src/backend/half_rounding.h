// Rounding to the 16-bit floats in one step from any source type, shared by the CPU's and the GPU's
// casts and fills. A value is first narrowed to float rounding to odd (truncate, then set the last
// bit if anything was dropped); float keeps at least two more bits than float16 or bfloat16, so the
// following round-to-nearest-even to 16 bits gives the correctly rounded result. Narrowing with
// round-to-nearest-even instead would round twice: 1 + 2^-11 + 2^-30 (double) would become the tie
// 1 + 2^-11 in float and then 1 in float16, where the nearest float16 is 1 + 2^-10.
#pragma once

#include <cstdint>
#include <cstring>
#include <type_traits>

#include "backend/host_device.h"

namespace kiln::backend {

/// The bits of `f`.
KILN_HOST_DEVICE inline uint32_t float_bits(float f) {
#if defined(__CUDA_ARCH__)
  return __float_as_uint(f);
#else
  uint32_t u = 0;
  std::memcpy(&u, &f, sizeof u);
  return u;
#endif
}

/// The float whose bits are `u`.
KILN_HOST_DEVICE inline float float_of_bits(uint32_t u) {
#if defined(__CUDA_ARCH__)
  return __uint_as_float(u);
#else
  float f = 0;
  std::memcpy(&f, &u, sizeof f);
  return f;
#endif
}

/// `d` as a float rounded to odd; NaN and infinities stay as they are, a finite value past float's
/// range becomes float's largest (which still rounds to inf in float16 and bfloat16).
KILN_HOST_DEVICE inline float to_float_round_to_odd(double d) {
  const float f = static_cast<float>(d);
  if (d != d || static_cast<double>(f) == d) return f;  // NaN, or exact
  uint32_t u = float_bits(f);
  const double af = f < 0 ? -static_cast<double>(f) : static_cast<double>(f);
  const double ad = d < 0 ? -d : d;
  if (af > ad) --u;  // the nearest float lies away from zero: take its neighbour toward zero
  return float_of_bits(u | 1u);
}

/// The integer `v` as a float rounded to odd (exact up to 2^24 in magnitude).
template <typename I>
KILN_HOST_DEVICE float int_to_float_round_to_odd(I v) {
  static_assert(std::is_integral_v<I>, "an integer type");
  if constexpr (sizeof(I) <= 2) {
    return static_cast<float>(v);
  } else {
    const bool negative = v < 0;
    const uint64_t m = negative ? uint64_t{0} - static_cast<uint64_t>(v) : static_cast<uint64_t>(v);
    int shift = 0;
    while ((m >> shift) >= (uint64_t{1} << 24)) ++shift;
    uint64_t kept = m >> shift;
    if (shift > 0 && (m & ((uint64_t{1} << shift) - 1)) != 0) kept |= 1;
    float f = static_cast<float>(kept);      // exact: kept < 2^24
    for (int s = 0; s < shift; ++s) f *= 2;  // exact: a power of two below float's range
    return negative ? -f : f;
  }
}

/// `v` (any arithmetic type) as a float that rounds to 16 bits as `v` itself would.
template <typename From>
KILN_HOST_DEVICE float to_float_for_half(From v) {
  if constexpr (std::is_integral_v<From>)
    return int_to_float_round_to_odd(v);
  else
    return to_float_round_to_odd(static_cast<double>(v));
}

}  // namespace kiln::backend
