// The CUDA backend of one GPU: its stream, cuBLAS and cuDNN handles, caching allocator and the
// cuDNN convolution plans chosen so far. Kernels of our own live in kernels/*.cu.
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cudnn.h>

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <tuple>

#include "backend/backend.h"
#include "backend/cuda/cuda_allocator.h"
#include "backend/cuda/device_guard.h"

namespace kiln::backend {

struct ConvPlan;  // cuda_conv.cpp

class CudaBackend final : public Backend {
 public:
  /// Creates the stream and library handles of GPU `device`; throws kiln::Error.
  explicit CudaBackend(int device);
  ~CudaBackend() override;

  Allocator& allocator() override { return allocator_; }
  void copy(void* dst, const void* src, std::size_t bytes) override;
  void copy_to_host(void* host_dst, const void* src, std::size_t bytes) override;
  void copy_from_host(void* dst, const void* host_src, std::size_t bytes) override;
  void fill(DType dtype, void* dst, int64_t n, double value) override;
  void cast(DType from, const void* src, DType to, void* dst, int64_t n) override;
  void synchronize() override;

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
  void advance_counter(int64_t* counter) override;

  bool can_capture() const override { return true; }
  void begin_capture() override;
  std::unique_ptr<CapturedWork> end_capture() override;
  void abort_capture() noexcept override;

  void set_tensor_float_32(bool enabled) override;

  int device() const { return device_; }
  cudaStream_t stream() const { return stream_; }

 private:
  /// A scratch block from the caching allocator, given back (stream-ordered) at scope exit.
  class Scratch {
   public:
    Scratch(CudaAllocator& a, std::size_t bytes) : a_(a), bytes_(bytes), ptr_(bytes ? a.allocate(bytes) : nullptr) {}
    ~Scratch() {
      if (ptr_) a_.deallocate(ptr_, bytes_);
    }
    Scratch(const Scratch&) = delete;
    Scratch& operator=(const Scratch&) = delete;
    void* get() const { return ptr_; }

   private:
    CudaAllocator& a_;
    std::size_t bytes_;
    void* ptr_;
  };

  // dtype, TF32 (a plan made for one math mode is never reused for the other), then the geometry.
  using ConvKey = std::tuple<int, bool, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t,
                             int64_t, int64_t, int64_t, int64_t>;
  ConvPlan& conv_plan(DType dtype, const Conv2dGeometry& g);
  void release() noexcept;

  int device_;
  // Whether float32 products and convolutions may use TF32 tensor cores (set_tensor_float_32). Read
  // when a call is issued and when a plan is made; plans key on it.
  std::atomic<bool> tf32_{false};
  cudaStream_t stream_ = nullptr;
  cublasHandle_t cublas_ = nullptr;
  cudnnHandle_t cudnn_ = nullptr;
  void* cublas_workspace_ = nullptr;
  // cuBLASLt (cuda_gemm_lt.cpp): its handle and the matmul plan of each shape the dense layer's
  // fused products have met, chosen at a shape's first call (eager, before any recording) and kept,
  // so every later call of that shape, recorded ones included, runs the same algorithm.
  struct LtState;
  struct LtStateDeleter {
    void operator()(LtState* state) const noexcept;
  };
  std::mutex lt_mutex_;
  std::unique_ptr<LtState, LtStateDeleter> lt_;
  CudaAllocator allocator_;
  int capture_pool_ = 0;  // the private pool of the recording under way, 0 when none
  // Pinned staging for copy_from_host: the host buffer is free on return, the device copy is not
  // waited for; the next upload waits only for this one (staging_done_).
  void* staging_ = nullptr;
  std::size_t staging_bytes_ = 0;
  cudaEvent_t staging_done_ = nullptr;
  std::mutex staging_mutex_;
  std::mutex conv_mutex_;
  std::map<ConvKey, std::unique_ptr<ConvPlan>> conv_plans_;
};

}  // namespace kiln::backend
