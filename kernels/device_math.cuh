// Helpers for the kernels. Their float and double math functions (exp_of, log_of, ...) are in
// backend/elementwise_math.h, shared with the CPU backend. The 16-bit floats (float16, bfloat16)
// are storage types here: a kernel loads an element into accumulate_t<T> (float), computes there as
// its float32 twin does, and stores the result rounded once (load_value, store_value); for float
// and double both are no-ops, so those kernels compile to what they were.
#pragma once

#include <cstdint>
#include <type_traits>

#include "backend/dtype_dispatch.h"
#include "half_types.cuh"

namespace kiln::backend::kernels {

/// Grid-stride loop over [0, n).
#define KILN_FOR_EACH(i, n) \
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < (n); i += int64_t(gridDim.x) * blockDim.x)

/// True for the GPU's 16-bit float types.
template <typename T>
constexpr bool is_half_v = std::is_same_v<T, __half> || std::is_same_v<T, __nv_bfloat16>;

/// An element of storage type T as the type kernels compute in (exact).
template <typename T>
__device__ __forceinline__ accumulate_t<T> load_value(T v) {
  return convert_element<accumulate_t<T>>(v);
}

/// A computed value stored as T: rounded once to nearest even for the 16-bit types, as it is for
/// float and double.
template <typename T, typename A>
__device__ __forceinline__ T store_value(A v) {
  return convert_element<T>(v);
}

/// Two adjacent 16-bit elements: one 4-byte load or store instead of two 2-byte ones.
template <typename T>
struct PairOf;
template <>
struct PairOf<__half> {
  using type = __half2;
};
template <>
struct PairOf<__nv_bfloat16> {
  using type = __nv_bfloat162;
};

/// *p += v atomically, the sum computed in accumulate_t<T> and rounded once. float and double use
/// the hardware's atomicAdd; the 16-bit types a compare-and-swap on their 16 bits (compute
/// capability 7.0 and up), so float16 and bfloat16 round the same way on every architecture.
template <typename T>
__device__ void atomic_add_value(T* p, accumulate_t<T> v) {
  if constexpr (is_half_v<T>) {
    auto* word = reinterpret_cast<unsigned short*>(p);
    unsigned short old = *word, assumed = 0;
    do {
      assumed = old;
      T current;
      static_assert(sizeof(T) == sizeof(unsigned short), "a 16-bit type");
      memcpy(&current, &assumed, sizeof current);
      const T next = store_value<T>(load_value(current) + v);
      unsigned short next_bits = 0;
      memcpy(&next_bits, &next, sizeof next_bits);
      old = atomicCAS(word, assumed, next_bits);
    } while (old != assumed);
  } else {
    atomicAdd(p, v);
  }
}

}  // namespace kiln::backend::kernels
