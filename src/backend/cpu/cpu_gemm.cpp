// CPU matrix product through Eigen (multi-threaded by Eigen's OpenMP GEMM), and the dense layer's
// fused forms: the bias and ReLU applied in one pass over the product.
#include <Eigen/Core>

#include "backend/cpu/cpu_backend.h"

namespace kiln::backend {

namespace {

template <typename T>
using RowMajor = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

template <typename T>
void gemm_typed(bool ta, bool tb, int64_t m, int64_t n, int64_t k, T alpha, const T* a, const T* b, T beta, T* c) {
  // A is stored [m, k] (or [k, m] when transposed); B is [k, n] (or [n, k]).
  Eigen::Map<const RowMajor<T>> A(a, ta ? k : m, ta ? m : k);
  Eigen::Map<const RowMajor<T>> B(b, tb ? n : k, tb ? k : n);
  Eigen::Map<RowMajor<T>> C(c, m, n);
  if (beta == T(0)) C.setZero();
  else if (beta != T(1)) C *= beta;
  if (k == 0) return;
  if (!ta && !tb) C.noalias() += alpha * A * B;
  else if (ta && !tb) C.noalias() += alpha * A.transpose() * B;
  else if (!ta && tb) C.noalias() += alpha * A * B.transpose();
  else C.noalias() += alpha * A.transpose() * B.transpose();
}

// c[r, :] = act(c[r, :] + bias) in one pass, in the unfused ops' order (Add, then Relu), so the
// fused dense layer gives the same bits as matmul, add and relu.
template <typename T, bool kBias, bool kRelu>
void bias_act_rows(T* c, const T* bias, int64_t m, int64_t n) {
#pragma omp parallel for if (m * n > parallel_grain() && m > 1)
  for (int64_t r = 0; r < m; ++r) {
    T* __restrict row = c + r * n;
    for (int64_t j = 0; j < n; ++j) {
      T v = row[j];
      if constexpr (kBias) v = v + bias[j];
      if constexpr (kRelu) v = v > T(0) ? v : T(0);
      row[j] = v;
    }
  }
}

}  // namespace

void CpuBackend::gemm(DType dtype, bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, double alpha,
                      const void* a, const void* b, double beta, void* c) {
  with_float_type(dtype, "matmul", [&](auto tag) {
    using T = decltype(tag);
    gemm_typed<T>(trans_a, trans_b, m, n, k, static_cast<T>(alpha), static_cast<const T*>(a),
                  static_cast<const T*>(b), static_cast<T>(beta), static_cast<T*>(c));
  });
}

void CpuBackend::gemm_bias_act(DType dtype, int64_t m, int64_t n, int64_t k, const void* a, const void* b,
                               const void* bias, bool relu, void* c) {
  with_float_type(dtype, "dense", [&](auto tag) {
    using T = decltype(tag);
    T* cs = static_cast<T*>(c);
    const T* bs = static_cast<const T*>(bias);
    gemm_typed<T>(false, false, m, n, k, T(1), static_cast<const T*>(a), static_cast<const T*>(b), T(0), cs);
    if (bs && relu) bias_act_rows<T, true, true>(cs, bs, m, n);
    else if (bs) bias_act_rows<T, true, false>(cs, bs, m, n);
    else if (relu) bias_act_rows<T, false, true>(cs, bs, m, n);
  });
}

void CpuBackend::gemm_wgrad_bias(DType dtype, int64_t m, int64_t n, int64_t k, const void* x, const void* dz,
                                 void* dw, void* db) {
  // The weight gradient of a product already is one GEMM, and Eigen's GEMM offers no reduction
  // to ride along: the two calls matmul's and add's backward rules make, in their order.
  gemm(dtype, true, false, k, n, m, 1.0, x, dz, 0.0, dw);
  if (db) sum_rows(dtype, dz, db, m, n, false);
}

}  // namespace kiln::backend
