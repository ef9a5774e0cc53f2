// CPU matrix product through Eigen (multi-threaded by Eigen's OpenMP GEMM).
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

}  // namespace

void CpuBackend::gemm(DType dtype, bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, double alpha,
                      const void* a, const void* b, double beta, void* c) {
  with_float_type(dtype, "matmul", [&](auto tag) {
    using T = decltype(tag);
    gemm_typed<T>(trans_a, trans_b, m, n, k, static_cast<T>(alpha), static_cast<const T*>(a),
                  static_cast<const T*>(b), static_cast<T>(beta), static_cast<T*>(c));
  });
}

}  // namespace kiln::backend
