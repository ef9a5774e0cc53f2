// The Eigen product behind gemm_serial, written once and compiled twice: at the library's
// instruction-set level (cpu_gemm.cpp) and for AVX-512 (cpu_gemm_avx512.cpp, which includes Eigen
// under another namespace name). The Isa tag gives each copy its own symbols, so the linker never
// merges an AVX-512 instantiation into the portable path.
#pragma once

#include <Eigen/Core>
#include <cstdint>

namespace kiln::backend {

/// C = alpha op(A) op(B) + beta C, row-major operands with leading dimensions lda, ldb, ldc (A is
/// stored [m, k], or [k, m] when transposed; B [k, n], or [n, k]), by one single-threaded Eigen product.
template <typename Isa, typename T>
void eigen_gemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, T alpha, const T* a, int64_t lda, const T* b,
                int64_t ldb, T beta, T* c, int64_t ldc) {
  using RowMajor = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  using Strided = Eigen::Map<const RowMajor, 0, Eigen::OuterStride<>>;
  using StridedOut = Eigen::Map<RowMajor, 0, Eigen::OuterStride<>>;
  Strided A(a, ta ? k : m, ta ? m : k, Eigen::OuterStride<>(lda));
  Strided B(b, tb ? n : k, tb ? k : n, Eigen::OuterStride<>(ldb));
  StridedOut C(c, m, n, Eigen::OuterStride<>(ldc));
  if (beta == T(0))
    C.setZero();
  else if (beta != T(1))
    C *= beta;
  if (k == 0) return;
  if (!ta && !tb)
    C.noalias() += alpha * A * B;
  else if (ta && !tb)
    C.noalias() += alpha * A.transpose() * B;
  else if (!ta && tb)
    C.noalias() += alpha * A * B.transpose();
  else
    C.noalias() += alpha * A.transpose() * B.transpose();
}

}  // namespace kiln::backend
