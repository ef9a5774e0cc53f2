// A fused layer's bias and ReLU on rows of its product, in place: one definition for the dense
// layer (cpu_gemm.cpp) and the convolution (cpu_conv.cpp). Add, then ReLU, with the unfused ops'
// formulas (backend/elementwise_math.h), so a fused layer gives the same bits as add and relu.
#pragma once

#include <cstdint>

#include "backend/backend.h"
#include "backend/elementwise_math.h"

namespace kiln::backend {

namespace detail {
template <typename T, bool kBias, bool kRelu>
void bias_act_rows(T* c, const T* bias, int64_t rows, int64_t n) {
  for (int64_t r = 0; r < rows; ++r) {
    T* __restrict row = c + r * n;
    for (int64_t j = 0; j < n; ++j) {
      T v = row[j];
      if constexpr (kBias) v = math::apply_binary<BinaryOp::Add>(v, bias[j]);
      if constexpr (kRelu) v = math::apply_unary<UnaryOp::Relu>(v);
      row[j] = v;
    }
  }
}
}  // namespace detail

/// c[r, :] = relu?(c[r, :] + bias) for `rows` rows of `n`, on the calling thread; `bias` may be
/// null. The choice of bias and ReLU is made once, outside the loop, so the loop vectorises.
template <typename T>
void bias_act_rows(T* c, const T* bias, bool relu, int64_t rows, int64_t n) {
  if (bias && relu)
    detail::bias_act_rows<T, true, true>(c, bias, rows, n);
  else if (bias)
    detail::bias_act_rows<T, true, false>(c, bias, rows, n);
  else if (relu)
    detail::bias_act_rows<T, false, true>(c, bias, rows, n);
}

}  // namespace kiln::backend
