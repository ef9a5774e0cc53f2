// Row-major GEMM through column-major cuBLAS: a row-major [m, n] matrix is a column-major [n, m]
// one, so C = op(A) op(B) is computed as C^T = op(B)^T op(A)^T with the operands swapped.
#include <algorithm>
#include <type_traits>

#include "backend/cuda/check.h"
#include "backend/cuda/cuda_backend.h"
#include "backend/dtype_dispatch.h"
#include "kiln/error.h"

namespace kiln::backend {

void CudaBackend::gemm(DType dtype, bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, double alpha,
                       const void* a, const void* b, double beta, void* c) {
  if (m <= 0 || n <= 0) return;
  constexpr int64_t kIntMax = 2147483647;
  if (m > kIntMax || n > kIntMax || k > kIntMax)
    throw Error("matmul", "matrix extent above 2^31-1 (m=" + std::to_string(m) + ", n=" + std::to_string(n) +
                              ", k=" + std::to_string(k) + "); expected extents cuBLAS' int API can address");
  DeviceGuard guard(device_);
  // Row-major B [k, n] is column-major [n, k] with leading dimension n (transposed: [k, n], ld k).
  const cublasOperation_t op_b = trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
  const cublasOperation_t op_a = trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
  const int ldb = static_cast<int>(std::max<int64_t>(1, trans_b ? k : n));
  const int lda = static_cast<int>(std::max<int64_t>(1, trans_a ? m : k));
  const int ldc = static_cast<int>(n);
  const int M = static_cast<int>(m), N = static_cast<int>(n), K = static_cast<int>(k);
  with_float_type(dtype, "matmul", [&](auto tag) {
    using T = decltype(tag);
    const T al = static_cast<T>(alpha), be = static_cast<T>(beta);
    if constexpr (std::is_same_v<T, float>)
      KILN_CUBLAS_CHECK(cublasSgemm(cublas_, op_b, op_a, N, M, K, &al, static_cast<const float*>(b), ldb,
                                    static_cast<const float*>(a), lda, &be, static_cast<float*>(c), ldc));
    else
      KILN_CUBLAS_CHECK(cublasDgemm(cublas_, op_b, op_a, N, M, K, &al, static_cast<const double*>(b), ldb,
                                    static_cast<const double*>(a), lda, &be, static_cast<double*>(c), ldc));
  });
}

}  // namespace kiln::backend
