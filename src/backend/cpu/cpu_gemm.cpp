// CPU matrix product: Eigen's single-threaded kernel on blocks of the product that kiln's thread pool
// runs in parallel (gemm_parallel), that kernel compiled for AVX-512 where the CPU has it
// (cpu_gemm_avx512.cpp; bench/README.md has the measurement), and the dense layer's fused forms:
// the bias and ReLU applied in one pass over the product. 16-bit operands are staged into float
// (cpu_staging.h), multiplied by the float32 path and rounded once.
#include <algorithm>
#include <atomic>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/cpu_bias_act.h"
#include "backend/cpu/cpu_gemm_eigen.h"
#include "backend/cpu/cpu_staging.h"

namespace kiln::backend {

namespace {

struct LibraryLevel {};  // the tag of this file's copy of eigen_gemm

std::atomic<bool>& avx512_on() {
  static std::atomic<bool> on{gemm_avx512_available()};
  return on;
}

}  // namespace

bool gemm_avx512_enabled() { return avx512_on().load(std::memory_order_relaxed); }

bool set_gemm_avx512(bool enabled) {
  avx512_on().store(enabled && gemm_avx512_available());
  return gemm_avx512_enabled();
}

template <typename T>
void gemm_serial(bool ta, bool tb, int64_t m, int64_t n, int64_t k, T alpha, const T* a, int64_t lda, const T* b,
                 int64_t ldb, T beta, T* c, int64_t ldc) {
  if (gemm_avx512_enabled())
    gemm_serial_avx512<T>(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
  else
    eigen_gemm<LibraryLevel, T>(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}
template void gemm_serial<float>(bool, bool, int64_t, int64_t, int64_t, float, const float*, int64_t, const float*,
                                 int64_t, float, float*, int64_t);
template void gemm_serial<double>(bool, bool, int64_t, int64_t, int64_t, double, const double*, int64_t, const double*,
                                  int64_t, double, double*, int64_t);

namespace {

// Multiply-adds a block of a split product holds at least.
constexpr int64_t kMacsPerThread = int64_t(1) << 18;
// A product is skinny when its output has at most this many rows or columns.
constexpr int64_t kSkinny = 128;
// Output blocks span at least this many rows (or columns): each block packs all of the other
// operand again, which thinner blocks would pay for more often than their products.
constexpr int64_t kMinOutputBlock = 64;
// At most this many output blocks: enough to balance 16 threads.
constexpr int64_t kMaxOutputBlocks = 64;
// An output with this many blocks along its longer axis is split along it even when the depth is
// longer: the depth split's partial products ([m, n] each) cost more to write and add than the
// blocks' repacking of the other operand (bench/README.md has the measurement).
constexpr int64_t kEnoughOutputBlocks = 8;
// Depth chunks of a split over k: at least this deep, at most kMaxDepthChunks of them.
constexpr int64_t kMinDepthChunk = 128, kMaxDepthChunks = 64;

}  // namespace

// A product split into independent Eigen products run by the thread pool, with the split fixed by
// the shape so that the result does not depend on the thread count. Mostly the output is cut along
// its longer axis: disjoint blocks of C, no reduction. Skinny products with a long depth and a
// short output (a dense layer at a small batch: [10, 7200] x [7200, 64]) have too little output for
// that: they are cut along the depth instead, and the per-chunk products summed in chunk order.
// Eigen's own threading (OpenMP) split the output only, which a 10 x 64 output barely has (0.5 ms
// for this product on 8 and 16 threads), and its barriers stalled on a shared machine
// (thread_pool.h).
template <typename T>
void gemm_parallel(bool ta, bool tb, int64_t m, int64_t n, int64_t k, T alpha, const T* a, const T* b, T beta, T* c) {
  const int64_t lda = ta ? m : k, ldb = tb ? k : n, macs = m * n * k;
  if (macs < 2 * kMacsPerThread) return gemm_serial<T>(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, n);
  if (std::max(m, n) >= k || std::min(m, n) > kSkinny ||
      std::max(m, n) / kMinOutputBlock >= kEnoughOutputBlocks) {  // disjoint blocks of C along its longer axis
    const bool rows = m >= n;
    const int64_t len = rows ? m : n;
    const int64_t blocks = std::min({macs / kMacsPerThread, len / kMinOutputBlock, kMaxOutputBlocks});
    parallel_for(len, blocks, [&](int64_t i0, int64_t i1) {
      const int64_t l = i1 - i0;
      if (rows)  // rows of op(A): rows of A, or columns of a transposed A
        gemm_serial<T>(ta, tb, l, n, k, alpha, ta ? a + i0 : a + i0 * lda, lda, b, ldb, beta, c + i0 * n, n);
      else  // columns of op(B): columns of B, or rows of a transposed B
        gemm_serial<T>(ta, tb, m, l, k, alpha, a, lda, tb ? b + i0 * ldb : b + i0, ldb, beta, c + i0, n);
    });
    return;
  }
  // Split the depth: per-chunk products, then C = beta C + alpha * (their sum in chunk order).
  const int64_t chunk = std::max(kMinDepthChunk, (k + kMaxDepthChunks - 1) / kMaxDepthChunks);
  const int64_t chunks = (k + chunk - 1) / chunk;
  std::vector<T> partial(static_cast<std::size_t>(chunks * m * n));
  parallel_for(chunks, chunks, [&](int64_t q, int64_t) {
    const int64_t k0 = q * chunk, l = std::min(chunk, k - k0);
    gemm_serial<T>(ta, tb, m, n, l, T(1), ta ? a + k0 * lda : a + k0, lda, tb ? b + k0 : b + k0 * ldb, ldb, T(0),
                   partial.data() + q * m * n, n);
  });
  parallel_for_work(m * n, m * n * chunks, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) {
      T sum = partial[static_cast<std::size_t>(i)];
      for (int64_t q = 1; q < chunks; ++q) sum += partial[static_cast<std::size_t>(q * m * n + i)];
      c[i] = (beta == T(0) ? T(0) : beta * c[i]) + alpha * sum;
    }
  });
}
template void gemm_parallel<float>(bool, bool, int64_t, int64_t, int64_t, float, const float*, const float*, float,
                                   float*);
template void gemm_parallel<double>(bool, bool, int64_t, int64_t, int64_t, double, const double*, const double*, double,
                                    double*);

void CpuBackend::gemm(DType dtype, bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, double alpha,
                      const void* a, const void* b, double beta, void* c) {
  with_cpu_compute_type(dtype, "matmul", [&](auto tag) {
    using T = decltype(tag);
    if constexpr (is_cpu_half_v<T>) {
      // beta C reads C: staged only when beta is not 0, where the product ignores C (as float32's does).
      const std::vector<float> as = widened<T>(a, m * k), bs = widened<T>(b, k * n);
      std::vector<float> cs = beta == 0.0 ? std::vector<float>(static_cast<std::size_t>(m * n)) : widened<T>(c, m * n);
      gemm_parallel<float>(trans_a, trans_b, m, n, k, static_cast<float>(alpha), as.data(), bs.data(),
                           static_cast<float>(beta), cs.data());
      store_rounded<T>(cs.data(), c, m * n);
    } else {
      gemm_parallel<T>(trans_a, trans_b, m, n, k, static_cast<T>(alpha), static_cast<const T*>(a),
                       static_cast<const T*>(b), static_cast<T>(beta), static_cast<T*>(c));
    }
  });
}

void CpuBackend::gemm_bias_act(DType dtype, int64_t m, int64_t n, int64_t k, const void* a, const void* b,
                               const void* bias, bool relu, void* c) {
  with_cpu_compute_type(dtype, "dense", [&](auto tag) {
    using T = decltype(tag);
    if constexpr (is_cpu_half_v<T>) {
      // The bias and ReLU apply to the float product, and the result is rounded once: a 16-bit dense
      // layer gives the float32 layer's output rounded, not the rounded product plus a rounded sum.
      const std::vector<float> as = widened<T>(a, m * k), bs = widened<T>(b, k * n), bias_s = widened<T>(bias, n);
      std::vector<float> cs(static_cast<std::size_t>(m * n));
      const float* bp = data_or_null(bias_s);
      gemm_parallel<float>(false, false, m, n, k, 1.0f, as.data(), bs.data(), 0.0f, cs.data());
      T* out = static_cast<T*>(c);
      parallel_for_work(m, m * n, [&](int64_t r0, int64_t r1) {
        bias_act_rows(cs.data() + r0 * n, bp, relu, r1 - r0, n);
        for (int64_t i = r0 * n; i < r1 * n; ++i) out[i] = convert_element<T>(cs[static_cast<std::size_t>(i)]);
      });
      return;
    }
    T* cs = static_cast<T*>(c);
    const T* bs = static_cast<const T*>(bias);
    gemm_parallel<T>(false, false, m, n, k, T(1), static_cast<const T*>(a), static_cast<const T*>(b), T(0), cs);
    if (!bs && !relu) return;
    parallel_for_work(m, m * n, [&](int64_t r0, int64_t r1) { bias_act_rows(cs + r0 * n, bs, relu, r1 - r0, n); });
  });
}

void CpuBackend::gemm_wgrad_bias(DType dtype, int64_t m, int64_t n, int64_t k, const void* x, const void* dz, void* dw,
                                 void* db) {
  // The weight gradient of a product already is one GEMM, and Eigen's GEMM offers no reduction
  // to ride along: the two calls matmul's and add's backward rules make, in their order.
  gemm(dtype, true, false, k, n, m, 1.0, x, dz, 0.0, dw);
  if (db) sum_rows(dtype, dz, db, m, n, false);
}

}  // namespace kiln::backend
