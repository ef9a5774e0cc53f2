// Row-major GEMM through column-major cuBLAS: a row-major [m, n] matrix is a column-major [n, m]
// one, so C = op(A) op(B) is computed as C^T = op(B)^T op(A)^T with the operands swapped.
// float32 and float64 take cublasSgemm / cublasDgemm (float32 as TF32 only when asked for: the
// handle's math mode). float16 and bfloat16 take cublasGemmEx with CUBLAS_COMPUTE_32F: products of
// 16-bit values are exact in float, tensor cores sum them in float, alpha and beta are floats, and C
// is rounded to 16 bits once. Split-K partial sums are kept in float too
// (CUBLAS_MATH_DISALLOW_REDUCED_PRECISION_REDUCTION): by default cuBLAS may add them in the 16-bit
// output type, which would round a long sum once per slice.
#include <algorithm>
#include <type_traits>

#include "backend/cuda/check.h"
#include "backend/cuda/cuda_backend.h"
#include "backend/dtype_dispatch.h"
#include "kiln/error.h"

namespace kiln::backend {

namespace {

// The handle's math mode with reduced-precision split-K reductions forbidden, for one call; the
// mode it had (TF32 or not, set_tensor_float_32) comes back at scope exit.
class FloatReductions {
 public:
  explicit FloatReductions(cublasHandle_t handle) : handle_(handle) {
    KILN_CUBLAS_CHECK(cublasGetMathMode(handle_, &before_));
    KILN_CUBLAS_CHECK(cublasSetMathMode(
        handle_, static_cast<cublasMath_t>(before_ | CUBLAS_MATH_DISALLOW_REDUCED_PRECISION_REDUCTION)));
  }
  ~FloatReductions() { (void)cublasSetMathMode(handle_, before_); }
  FloatReductions(const FloatReductions&) = delete;
  FloatReductions& operator=(const FloatReductions&) = delete;

 private:
  cublasHandle_t handle_;
  cublasMath_t before_ = CUBLAS_DEFAULT_MATH;
};

// Stand-ins for the 16-bit element types in the dtype dispatch: cuBLAS takes their data as void*.
struct Half16 {};
struct BFloat16Tag {};

}  // namespace

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
  with_compute_type<Half16, BFloat16Tag>(dtype, "matmul", [&](auto tag) {
    using T = decltype(tag);
    if constexpr (std::is_same_v<T, float>) {
      const float al = static_cast<float>(alpha), be = static_cast<float>(beta);
      KILN_CUBLAS_CHECK(cublasSgemm(cublas_, op_b, op_a, N, M, K, &al, static_cast<const float*>(b), ldb,
                                    static_cast<const float*>(a), lda, &be, static_cast<float*>(c), ldc));
    } else if constexpr (std::is_same_v<T, double>) {
      KILN_CUBLAS_CHECK(cublasDgemm(cublas_, op_b, op_a, N, M, K, &alpha, static_cast<const double*>(b), ldb,
                                    static_cast<const double*>(a), lda, &beta, static_cast<double*>(c), ldc));
    } else {
      const cudaDataType_t type = std::is_same_v<T, Half16> ? CUDA_R_16F : CUDA_R_16BF;
      const float al = static_cast<float>(alpha), be = static_cast<float>(beta);
      const FloatReductions float_reductions(cublas_);
      KILN_CUBLAS_CHECK(cublasGemmEx(cublas_, op_b, op_a, N, M, K, &al, b, type, ldb, a, type, lda, &be, c, type, ldc,
                                     CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
    }
  });
}

}  // namespace kiln::backend
