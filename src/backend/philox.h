// Philox-4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC 2011; the
// generator of cuRAND and PyTorch) and kiln's stream on top of it, shared by the CPU backend and
// the CUDA kernels so both draw the same bits. Counter-based: element i's number is a pure function
// of (seed, step, draw, i), so any thread computes any element and a recorded step draws anew when
// the step counter on the device advances. The stream is documented in kiln/ops.h (dropout).
#pragma once

#include <cmath>
#include <cstdint>

#include "backend/host_device.h"

namespace kiln::backend::philox {

/// Four 32-bit words: a counter, or a block of output.
struct Words {
  uint32_t v[4];
};

/// Random123's multipliers and Weyl key increments (golden ratio and sqrt(3) - 1).
constexpr uint32_t kM0 = 0xD2511F53u, kM1 = 0xCD9E8D57u;
constexpr uint32_t kW0 = 0x9E3779B9u, kW1 = 0xBB67AE85u;

/// Philox-4x32 with 10 rounds of counter `c` under key (k0, k1).
KILN_HOST_DEVICE inline Words philox4x32_10(Words c, uint32_t k0, uint32_t k1) {
  for (int round = 0; round < 10; ++round) {
    if (round > 0) {
      k0 += kW0;
      k1 += kW1;
    }
    const uint64_t p0 = uint64_t(kM0) * c.v[0], p1 = uint64_t(kM1) * c.v[2];
    const uint32_t hi0 = uint32_t(p0 >> 32), lo0 = uint32_t(p0);
    const uint32_t hi1 = uint32_t(p1 >> 32), lo1 = uint32_t(p1);
    c = Words{{hi1 ^ c.v[1] ^ k0, lo1, hi0 ^ c.v[3] ^ k1, lo0}};
  }
  return c;
}

/// Elements per Philox call: element i is word i % 4 of block i / 4.
constexpr int64_t kPerBlock = 4;
/// Streams hold at most 2^34 elements (the block index is one 32-bit counter word).
constexpr int64_t kMaxElements = int64_t(1) << 34;
/// draw is one 32-bit counter word.
constexpr uint64_t kMaxDraw = 0xFFFFFFFFu;

/// Block j of stream (seed, step, draw): counter (j, draw, low and high words of step), key (low and
/// high words of seed).
KILN_HOST_DEVICE inline Words stream_block(uint64_t seed, int64_t step, uint64_t draw, uint64_t j) {
  const uint64_t s = static_cast<uint64_t>(step);
  return philox4x32_10(Words{{uint32_t(j), uint32_t(draw), uint32_t(s), uint32_t(s >> 32)}}, uint32_t(seed),
                       uint32_t(seed >> 32));
}

/// The number u = w / 2^32 of output word w, in [0, 1), rounded down to T: exact for double, the top
/// 24 bits for float (rounding to nearest could give 1).
template <typename T>
KILN_HOST_DEVICE inline T to_uniform(uint32_t w) {
  if constexpr (sizeof(T) == sizeof(float))
    return T(w >> 8) * T(1.0f / 16777216.0f);
  else
    return T(w) * T(1.0 / 4294967296.0);
}

/// The smallest word w with w / 2^32 >= rate: keep = (w >= threshold) is exactly u >= rate, decided
/// on integers so every device agrees bit for bit. 0 <= rate < 1.
inline uint64_t keep_threshold(double rate) { return static_cast<uint64_t>(std::ceil(rate * 4294967296.0)); }

/// The factor that scales kept elements, 1 / (1 - rate), in the tensor's precision.
template <typename T>
T keep_scale(double rate) {
  return static_cast<T>(1.0 / (1.0 - rate));
}

/// x * keep / (1 - rate) as a select, x * (keep ? scale : 0), so a NaN x stays NaN where dropped
/// (as PyTorch's x * mask * scale does) and a layer gone NaN stays visible downstream.
template <typename T>
KILN_HOST_DEVICE inline T dropout_of(T x, uint32_t w, uint64_t threshold, T scale) {
  return x * (uint64_t(w) >= threshold ? scale : T(0));
}

}  // namespace kiln::backend::philox
