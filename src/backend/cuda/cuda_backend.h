// The CUDA backend of one GPU: its stream, cuBLAS and cuDNN handles, caching allocator and the
// cuDNN convolution plans chosen so far. Kernels of our own and their entries live in kernels/*.cu.
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

/// The kernels of one GPU: every op of backend/backend_ops.h, and recording as CUDA graphs.
class CudaBackend final : public Backend {
 public:
  /// Creates the stream and library handles of GPU `device`; throws kiln::Error.
  explicit CudaBackend(int device);
  ~CudaBackend() override;

  // Every op of the list (backend/backend_ops.h). Each family's entry sits beside its kernels in
  // kernels/<family>.cu; the ones that call cuBLAS or cuDNN are in cuda_gemm*.cpp and cuda_conv.cpp.
#define KILN_BACKEND_OP(ret, name, params) ret name params override;
#include "backend/backend_ops.h"

  // The hooks of backend_ops.h that a GPU has: recording and the math modes.
  bool can_capture() const override { return true; }
  void begin_capture() override;
  std::unique_ptr<CapturedWork> end_capture() override;
  void abort_capture() noexcept override;

  // Collectives across processes (nccl_collectives.cpp).
  std::string make_collectives_key() override;
  std::unique_ptr<DeviceCollectives> join_collectives(const std::string& key, int rank, int size,
                                                      double timeout_seconds) override;

  void set_tensor_float_32(bool enabled) override;
  void set_op_determinism(bool enabled) override;

  int device() const { return device_; }
  cudaStream_t stream() const { return stream_; }

 private:
  // dtype, TF32 and determinism (a plan made for one mode is never reused for another), then the
  // geometry.
  using ConvKey = std::tuple<int, bool, bool, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t,
                             int64_t, int64_t, int64_t, int64_t, int64_t>;
  ConvPlan& conv_plan(DType dtype, const Conv2dGeometry& g);
  // conv2d_forward through a graph-API plan (float32) on cuDNN's operands (the padded input, the
  // transposed kernel): the engine's convolution, then our bias/ReLU.
  void graph_forward(ConvPlan& p, const Conv2dGeometry& g, const void* input, const void* kernel, const void* bias,
                     bool relu, void* y);
  void refuse_while_recording(const char* op);
  void release() noexcept;

  int device_;
  // Whether float32 products and convolutions may use TF32 tensor cores (set_tensor_float_32). Read
  // when a call is issued and when a plan is made; plans key on it.
  std::atomic<bool> tf32_{false};
  // Whether cuDNN must use deterministic algorithms (set_op_determinism); plans key on it.
  std::atomic<bool> deterministic_{false};
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
