// The CPU backend: Eigen for matrix products, loops elsewhere; both split across kiln's thread
// pool (thread_pool.h) in chunks fixed by the shape.
#pragma once

#include <algorithm>

#include "backend/backend.h"
#include "backend/cpu/thread_pool.h"
#include "backend/dtype_dispatch.h"
#include "kiln/error.h"

namespace kiln::backend {

/// Host memory, 64-byte aligned, with statistics.
class CpuAllocator final : public Allocator {
 public:
  void* allocate(std::size_t bytes) override;
  /// Keeps a large block for the next request of its size (cpu_memory.cpp says why and how much).
  void deallocate(void* ptr, std::size_t bytes) override;
  MemoryStats stats() const override;
  /// Returns the kept blocks to the C library.
  void empty_cache() override;

 private:
  MemoryStats stats_;
};

/// The CPU's kernels: every op of backend/backend_ops.h, one cpu_<family>.cpp per op family.
class CpuBackend final : public Backend {
 public:
#define KILN_BACKEND_OP(ret, name, params) ret name params override;
#include "backend/backend_ops.h"

 private:
  CpuAllocator allocator_;
};

/// C = alpha op(A) op(B) + beta C on row-major operands with leading dimensions lda, ldb, ldc, by
/// one single-threaded Eigen product: for callers that already split their work across threads.
template <typename T>
void gemm_serial(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, T alpha, const T* a, int64_t lda,
                 const T* b, int64_t ldb, T beta, T* c, int64_t ldc);

/// Whether gemm_serial may run its AVX-512 copy (cpu_gemm_avx512.cpp): compiled into this build
/// and supported by this CPU and OS.
bool gemm_avx512_available();

/// gemm_serial's product compiled for AVX-512; call only where gemm_avx512_available().
template <typename T>
void gemm_serial_avx512(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, T alpha, const T* a, int64_t lda,
                        const T* b, int64_t ldb, T beta, T* c, int64_t ldc);

/// Whether gemm_serial runs the AVX-512 copy now (by default wherever it is available).
bool gemm_avx512_enabled();

/// Turns the AVX-512 copy off, or back on where it is available: for the tests and benchmarks that
/// compare it with the library's own level. Returns whether it is on afterwards.
bool set_gemm_avx512(bool enabled);

/// The same on contiguous operands (lda = k, or m when transposed; ldb = n, or k; ldc = n), split
/// across the thread pool in blocks fixed by the shape: what gemm() runs.
template <typename T>
void gemm_parallel(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, T alpha, const T* a, const T* b, T beta,
                   T* c);

}  // namespace kiln::backend
