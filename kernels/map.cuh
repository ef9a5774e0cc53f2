// The elementwise map behind unary, binary, affine, clip, their backward and sigmoid_xent:
// y[i] = rule(a[i], b[i], c[i]) over n elements of any floating dtype, the rule a functor over the
// compute type A (accumulate_t<T>: float for the 16-bit types) that reads kInputs of the three
// inputs; bit k of its kNullable marks an input that may be a null pointer and then reads as 0.
// One scalar kernel serves every dtype; float16 and bfloat16 on 4-byte aligned arrays take a pair
// kernel instead: two elements per load and store, the width of a float32 element, where 2-byte
// accesses would halve the bytes each instruction moves in these memory-bound kernels. Both apply
// the same rule and round once, so they give the same bits.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <initializer_list>

#include "backend/cuda/kernels.h"
#include "device_math.cuh"

namespace kiln::backend::kernels {

/// Input k of `Rule` at element i, in the compute type.
template <typename Rule, int k, typename T>
__device__ __forceinline__ accumulate_t<T> map_input(const T* p, int64_t i) {
  using A = accumulate_t<T>;
  if constexpr (k >= Rule::kInputs)
    return A(0);
  else if constexpr (((Rule::kNullable >> k) & 1u) != 0)
    return p ? load_value(p[i]) : A(0);
  else
    return load_value(p[i]);
}

/// y[i] = rule(a[i], b[i], c[i]), rounded once to T.
template <typename T, typename Rule>
__device__ __forceinline__ void map_one(const Rule& rule, const T* a, const T* b, const T* c, T* y, int64_t i) {
  y[i] = store_value<T>(rule(map_input<Rule, 0>(a, i), map_input<Rule, 1>(b, i), map_input<Rule, 2>(c, i)));
}

template <typename T, typename Rule>
__global__ void map_kernel(Rule rule, const T* a, const T* b, const T* c, T* y, int64_t n) {
  KILN_FOR_EACH(i, n) map_one(rule, a, b, c, y, i);
}

/// Input k of `Rule` at elements 2j and 2j + 1 (one 4-byte load), in float.
template <typename Rule, int k, typename T>
__device__ __forceinline__ void map_input_pair(const T* p, int64_t j, float& v0, float& v1) {
  v0 = v1 = 0.f;
  if constexpr (k < Rule::kInputs) {
    if constexpr (((Rule::kNullable >> k) & 1u) != 0)
      if (!p) return;
    const auto w = reinterpret_cast<const typename PairOf<T>::type*>(p)[j];
    v0 = load_value(w.x);
    v1 = load_value(w.y);
  }
}

/// map_kernel for float16 and bfloat16 with 4-byte aligned arrays: a thread per pair of elements;
/// the first thread also takes the last element of an odd n.
template <typename T, typename Rule>
__global__ void map_pairs_kernel(Rule rule, const T* a, const T* b, const T* c, T* y, int64_t n) {
  using Pair = typename PairOf<T>::type;
  KILN_FOR_EACH(j, n / 2) {
    float a0, a1, b0, b1, c0, c1;
    map_input_pair<Rule, 0>(a, j, a0, a1);
    map_input_pair<Rule, 1>(b, j, b0, b1);
    map_input_pair<Rule, 2>(c, j, c0, c1);
    Pair out;
    out.x = store_value<T>(rule(a0, b0, c0));
    out.y = store_value<T>(rule(a1, b1, c1));
    reinterpret_cast<Pair*>(y)[j] = out;
  }
  if (n % 2 != 0 && blockIdx.x == 0 && threadIdx.x == 0) map_one(rule, a, b, c, y, n - 1);
}

/// Whether every pointer is 4-byte aligned (a null one is).
inline bool pair_aligned(std::initializer_list<const void*> ptrs) {
  for (const void* p : ptrs)
    if (reinterpret_cast<std::uintptr_t>(p) % 4 != 0) return false;
  return true;
}

/// Queues y[i] = rule(a[i], b[i], c[i]) for i < n, elements of T, on stream s. y may alias an
/// input: each element is read before it is written, by the same thread.
template <typename T, typename Rule>
void launch_map(const Rule& rule, const void* a, const void* b, const void* c, void* y, int64_t n, cudaStream_t s) {
  const T* at = static_cast<const T*>(a);
  const T* bt = static_cast<const T*>(b);
  const T* ct = static_cast<const T*>(c);
  if constexpr (is_half_v<T>) {
    if (n >= 2 && pair_aligned({a, b, c, y})) {
      map_pairs_kernel<<<grid_for(n / 2), kBlock, 0, s>>>(rule, at, bt, ct, static_cast<T*>(y), n);
      return;
    }
  }
  map_kernel<<<grid_for(n), kBlock, 0, s>>>(rule, at, bt, ct, static_cast<T*>(y), n);
}

}  // namespace kiln::backend::kernels
