// The CPU backend: Eigen for matrix products, loops elsewhere; both split across kiln's thread
// pool (thread_pool.h) in chunks fixed by the shape.
#pragma once

#include <algorithm>

#include "backend/backend.h"
#include "backend/cpu/thread_pool.h"
#include "kiln/error.h"

namespace kiln::backend {

/// Host memory, 64-byte aligned, with statistics.
class CpuAllocator final : public Allocator {
 public:
  void* allocate(std::size_t bytes) override;
  void deallocate(void* ptr, std::size_t bytes) override;
  MemoryStats stats() const override;

 private:
  MemoryStats stats_;
};

class CpuBackend final : public Backend {
 public:
  Allocator& allocator() override { return allocator_; }
  void copy(void* dst, const void* src, std::size_t bytes) override;
  void copy_to_host(void* host_dst, const void* src, std::size_t bytes) override;
  void copy_from_host(void* dst, const void* host_src, std::size_t bytes) override;
  void fill(DType dtype, void* dst, int64_t n, double value) override;
  void cast(DType from, const void* src, DType to, void* dst, int64_t n) override;
  void synchronize() override {}

  void unary(UnaryFn fn, DType dtype, const void* x, void* y, int64_t n) override;
  void unary_backward(UnaryFn fn, DType dtype, const void* x, const void* y, const void* dy, void* dx,
                      int64_t n) override;
  void binary(BinaryOp op, DType dtype, const void* a, int64_t na, const void* b, int64_t nb, void* out,
              int64_t n) override;
  void affine(DType dtype, const void* x, double alpha, double beta, void* y, int64_t n) override;
  void clip(DType dtype, const void* x, void* y, int64_t n, double lo, double hi) override;
  void clip_backward(DType dtype, const void* x, const void* dy, void* dx, int64_t n, double lo, double hi) override;

  void sum_rows(DType dtype, const void* x, void* y, int64_t rows, int64_t cols, bool accumulate) override;
  void sum_cols(DType dtype, const void* x, void* y, int64_t rows, int64_t cols) override;
  void argmax_rows(DType dtype, const void* x, int32_t* y, int64_t rows, int64_t cols) override;
  void accuracy_sum(DType dtype, const void* x, const int32_t* labels, void* correct, int64_t rows,
                    int64_t cols) override;

  void gemm(DType dtype, bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, double alpha, const void* a,
            const void* b, double beta, void* c) override;
  void gemm_bias_act(DType dtype, int64_t m, int64_t n, int64_t k, const void* a, const void* b, const void* bias,
                     bool relu, void* c) override;
  void gemm_wgrad_bias(DType dtype, int64_t m, int64_t n, int64_t k, const void* x, const void* dz, void* dw,
                       void* db) override;

  void softmax(DType dtype, const void* x, void* y, int64_t rows, int64_t cols, bool log) override;
  void softmax_backward(DType dtype, const void* y, const void* dy, void* dx, int64_t rows, int64_t cols,
                        bool log) override;
  void sparse_softmax_xent(DType dtype, const void* logits, const int32_t* labels, void* loss, void* dlogits,
                           double grad_scale, int64_t rows, int64_t cols) override;

  void conv2d_forward(DType dtype, const Conv2dGeometry& g, const void* x, const void* w, const void* bias, bool relu,
                      void* y) override;
  void conv2d_backward_data(DType dtype, const Conv2dGeometry& g, const void* dy, const void* w, void* dx) override;
  void conv2d_backward_filter(DType dtype, const Conv2dGeometry& g, const void* x, const void* dy, const void* relu_y,
                              void* dw, void* db) override;
  void max_pool2d_forward(DType dtype, const Pool2dGeometry& g, const void* x, void* y) override;
  void max_pool2d_backward(DType dtype, const Pool2dGeometry& g, const void* x, const void* y, const void* dy,
                           void* dx) override;
  void avg_pool2d_forward(DType dtype, const Pool2dGeometry& g, const void* x, void* y) override;
  void avg_pool2d_backward(DType dtype, const Pool2dGeometry& g, const void* dy, void* dx) override;

  void philox_uniform(DType dtype, void* y, int64_t n, uint64_t seed, const int64_t* counter, uint64_t draw) override;
  void dropout(DType dtype, const void* x, void* y, int64_t n, double rate, uint64_t seed, const int64_t* counter,
               uint64_t draw) override;

  void sgd_step(DType dtype, void* w, const void* g, void* v, int64_t n, double lr, double momentum,
                bool nesterov) override;
  void adam_step(DType dtype, void* w, const void* g, void* m, void* v, int64_t n, double lr, double beta1,
                 double beta2, double eps, int64_t step) override;

  void adam_step_multi(DType dtype, const ParamSlots* params, int count, double beta1, double beta2, double eps,
                       const void* alpha_table, const int64_t* index) override;
  void gather_rows(const void* src, const int32_t* idx, void* dst, int64_t n_idx, std::size_t row_bytes) override;
  void select_batch(const int32_t* perm, const int64_t* index, int32_t* idx, int64_t n) override;
  void advance_counter(int64_t* counter) override { ++*counter; }

 private:
  CpuAllocator allocator_;
};

/// Calls f(T{}) with T = float or double for a floating `dtype`; throws for others.
template <typename F>
void with_float_type(DType dtype, const char* op, F&& f) {
  switch (dtype) {
    case DType::Float32:
      f(float{});
      return;
    case DType::Float64:
      f(double{});
      return;
    default:
      throw Error(op, "no kernel for " + dtype_name(dtype) + "; expected float32 or float64");
  }
}

/// C = alpha op(A) op(B) + beta C on row-major operands with leading dimensions lda, ldb, ldc, by
/// one single-threaded Eigen product: for callers that already split their work across threads.
template <typename T>
void gemm_serial(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, T alpha, const T* a, int64_t lda,
                 const T* b, int64_t ldb, T beta, T* c, int64_t ldc);

/// The same on contiguous operands (lda = k, or m when transposed; ldb = n, or k; ldc = n), split
/// across the thread pool in blocks fixed by the shape: what gemm() runs.
template <typename T>
void gemm_parallel(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, T alpha, const T* a, const T* b, T beta,
                   T* c);

}  // namespace kiln::backend
