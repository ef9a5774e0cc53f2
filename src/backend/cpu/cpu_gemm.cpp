// CPU matrix product through Eigen (multi-threaded by Eigen's OpenMP GEMM, or by chunks for skinny
// products: gemm_split), and the dense layer's
// fused forms: the bias and ReLU applied in one pass over the product.
#include <omp.h>

#include <algorithm>
#include <vector>

#include <Eigen/Core>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/cpu_bias_act.h"

namespace kiln::backend {

namespace {

template <typename T>
using RowMajor = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

template <typename T>
using Strided = Eigen::Map<const RowMajor<T>, 0, Eigen::OuterStride<>>;
template <typename T>
using StridedOut = Eigen::Map<RowMajor<T>, 0, Eigen::OuterStride<>>;

// C = alpha op(A) op(B) + beta C on row-major operands with leading dimensions lda, ldb, ldc (the
// elements between consecutive rows as stored), so that a block of a larger matrix is one call.
template <typename T>
void gemm_strided(bool ta, bool tb, int64_t m, int64_t n, int64_t k, T alpha, const T* a, int64_t lda, const T* b,
                  int64_t ldb, T beta, T* c, int64_t ldc) {
  // A is stored [m, k] (or [k, m] when transposed); B is [k, n] (or [n, k]).
  Strided<T> A(a, ta ? k : m, ta ? m : k, Eigen::OuterStride<>(lda));
  Strided<T> B(b, tb ? n : k, tb ? k : n, Eigen::OuterStride<>(ldb));
  StridedOut<T> C(c, m, n, Eigen::OuterStride<>(ldc));
  if (beta == T(0)) C.setZero();
  else if (beta != T(1)) C *= beta;
  if (k == 0) return;
  if (!ta && !tb) C.noalias() += alpha * A * B;
  else if (ta && !tb) C.noalias() += alpha * A.transpose() * B;
  else if (!ta && tb) C.noalias() += alpha * A * B.transpose();
  else C.noalias() += alpha * A.transpose() * B.transpose();
}

// Multiply-adds a thread takes at least in a split product.
constexpr int64_t kMacsPerThread = int64_t(1) << 18;
// A product is skinny when its output has at most this many rows or columns.
constexpr int64_t kSkinny = 128;
// Depth chunks of a split over k: at least this deep, at most kMaxDepthChunks of them.
constexpr int64_t kMinDepthChunk = 128, kMaxDepthChunks = 64;

// A skinny product (a dense layer at a small batch: [10, 7200] x [7200, 64] and its two gradients)
// split into independent products, one per chunk of the long axis, each run by one thread with
// Eigen's single-threaded kernel. Why: Eigen's own threading splits the output's rows and columns
// only, which a 10 x 64 output barely has; it measured 0.5 ms for this 4.6 M multiply-add
// product on 8 and 16 threads. Splitting the output's long axis needs no reduction; splitting the
// depth sums per-chunk products in chunk order (chunk sizes depend on the shape alone, so the
// result does not depend on the thread count). Returns false where it does not apply.
template <typename T>
bool gemm_split(bool ta, bool tb, int64_t m, int64_t n, int64_t k, T alpha, const T* a, const T* b, T beta, T* c) {
  if (omp_in_parallel() || std::min(m, n) > kSkinny || m * n * k < 2 * kMacsPerThread) return false;
  // Chunks for this many threads; the team is the whole thread count (see iteration_chunk).
  const int threads = static_cast<int>(std::clamp<int64_t>(m * n * k / kMacsPerThread, 1, omp_get_max_threads()));
  if (threads <= 1) return false;
  const int64_t lda = ta ? m : k, ldb = tb ? k : n;
  if (std::max(m, n) >= k) {  // split the output's long axis: disjoint blocks of C
    const bool rows = m >= n;
    const int64_t len = rows ? m : n, chunk = (len + threads - 1) / threads;
#pragma omp parallel for schedule(static)
    for (int64_t i0 = 0; i0 < len; i0 += chunk) {
      const int64_t l = std::min(chunk, len - i0);
      if (rows)  // rows of op(A): rows of A, or columns of a transposed A
        gemm_strided<T>(ta, tb, l, n, k, alpha, ta ? a + i0 : a + i0 * lda, lda, b, ldb, beta, c + i0 * n, n);
      else  // columns of op(B): columns of B, or rows of a transposed B
        gemm_strided<T>(ta, tb, m, l, k, alpha, a, lda, tb ? b + i0 * ldb : b + i0, ldb, beta, c + i0, n);
    }
    return true;
  }
  // Split the depth: per-chunk products, then C = beta C + alpha * (their sum in chunk order).
  const int64_t chunk = std::max(kMinDepthChunk, (k + kMaxDepthChunks - 1) / kMaxDepthChunks);
  const int64_t chunks = (k + chunk - 1) / chunk;
  std::vector<T> partial(static_cast<std::size_t>(chunks * m * n));
#pragma omp parallel for schedule(static)
  for (int64_t q = 0; q < chunks; ++q) {
    const int64_t k0 = q * chunk, l = std::min(chunk, k - k0);
    gemm_strided<T>(ta, tb, m, n, l, T(1), ta ? a + k0 * lda : a + k0, lda, tb ? b + k0 : b + k0 * ldb, ldb, T(0),
                    partial.data() + q * m * n, n);
  }
#pragma omp parallel for schedule(static, iteration_chunk(m * n, m * n)) if (threads_for(m * n) > 1)
  for (int64_t i = 0; i < m * n; ++i) {
    T sum = partial[static_cast<std::size_t>(i)];
    for (int64_t q = 1; q < chunks; ++q) sum += partial[static_cast<std::size_t>(q * m * n + i)];
    c[i] = (beta == T(0) ? T(0) : beta * c[i]) + alpha * sum;
  }
  return true;
}

template <typename T>
void gemm_typed(bool ta, bool tb, int64_t m, int64_t n, int64_t k, T alpha, const T* a, const T* b, T beta, T* c) {
  if (gemm_split(ta, tb, m, n, k, alpha, a, b, beta, c)) return;
  gemm_strided(ta, tb, m, n, k, alpha, a, ta ? m : k, b, tb ? k : n, beta, c, n);
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
    if (!bs && !relu) return;
#pragma omp parallel for schedule(static, iteration_chunk(m, m * n)) if (threads_for(m * n) > 1 && m > 1)
    for (int64_t r = 0; r < m; ++r) bias_act_rows(cs + r * n, bs, relu, 1, n);
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
