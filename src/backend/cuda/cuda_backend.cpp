// CudaBackend: its stream and library handles, the float32 math mode and recording (CUDA graphs).
// The ops' entries sit beside their kernels in kernels/<family>.cu.
#include "backend/cuda/cuda_backend.h"

#include "backend/cuda/check.h"
#include "backend/cuda/conv_plan.h"

namespace kiln::backend {

namespace {
// cuBLAS' recommended workspace on Hopper; given once so cuBLAS never allocates during a step
// (which a captured CUDA graph could not replay). Held outside the caching allocator's stats.
constexpr std::size_t kCublasWorkspace = std::size_t(32) << 20;
}  // namespace

CudaBackend::CudaBackend(int device) : device_(device), allocator_(device) {
  DeviceGuard guard(device_);
  try {
    KILN_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
    KILN_CUDA_CHECK(cudaEventCreateWithFlags(&staging_done_, cudaEventDisableTiming));
    KILN_CUBLAS_CHECK(cublasCreate(&cublas_));
    KILN_CUBLAS_CHECK(cublasSetStream(cublas_, stream_));
    // Explicit: float32 products stay IEEE float32 (no TF32) unless set_tensor_float_32 asks otherwise.
    KILN_CUBLAS_CHECK(cublasSetMathMode(cublas_, CUBLAS_DEFAULT_MATH));
    KILN_CUDA_CHECK(cudaMalloc(&cublas_workspace_, kCublasWorkspace));
    KILN_CUBLAS_CHECK(cublasSetWorkspace(cublas_, cublas_workspace_, kCublasWorkspace));
    KILN_CUDNN_CHECK(cudnnCreate(&cudnn_));
    KILN_CUDNN_CHECK(cudnnSetStream(cudnn_, stream_));
  } catch (...) {
    release();
    throw;
  }
}

CudaBackend::~CudaBackend() { release(); }

void CudaBackend::release() noexcept {
  DeviceGuard guard(device_);
  if (stream_) cudaStreamSynchronize(stream_);
  conv_plans_.clear();
  if (cudnn_) cudnnDestroy(cudnn_);
  if (cublas_) cublasDestroy(cublas_);
  if (cublas_workspace_) cudaFree(cublas_workspace_);
  if (staging_) cudaFreeHost(staging_);
  if (staging_done_) cudaEventDestroy(staging_done_);
  if (stream_) cudaStreamDestroy(stream_);
  cudnn_ = nullptr;
  cublas_ = nullptr;
  cublas_workspace_ = staging_ = nullptr;
  staging_done_ = nullptr;
  stream_ = nullptr;
}

// ---- float32 math mode ----

// Refuses a mode change while `stream` records: a recording would hold calls of both modes, and
// its replays would then match neither.
void CudaBackend::refuse_while_recording(const char* op) {
  cudaStreamCaptureStatus capturing = cudaStreamCaptureStatusNone;
  KILN_CUDA_CHECK(cudaStreamIsCapturing(stream_, &capturing));
  if (capture_pool_ || capturing != cudaStreamCaptureStatusNone)
    throw Error(op, "GPU " + std::to_string(device_) +
                        " is recording a step (CUDA graph) right now; expected the setting to change between fit "
                        "calls, not while work is being recorded");
}

void CudaBackend::set_tensor_float_32(bool enabled) {
  if (tf32_.load() == enabled) return;
  DeviceGuard guard(device_);
  refuse_while_recording("enable_tensor_float_32_execution");
  // cuBLAS: TF32 tensor cores for float32 GEMMs (cublasSgemm); float64 is unaffected by the mode.
  // cuBLASLt and cuDNN read tf32_ when they make a plan (cuda_gemm_lt.cpp, cuda_conv.cpp).
  KILN_CUBLAS_CHECK(cublasSetMathMode(cublas_, enabled ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH));
  tf32_.store(enabled);
}

void CudaBackend::set_op_determinism(bool enabled) {
  if (deterministic_.load() == enabled) return;
  DeviceGuard guard(device_);
  refuse_while_recording("enable_op_determinism");
  // cuBLAS is deterministic on one stream with its fixed workspace (cublas_workspace_); only cuDNN's
  // algorithm choice depends on the mode, read when a plan is made (cuda_conv.cpp).
  deterministic_.store(enabled);
}

// ---- memory ----

Allocator& CudaBackend::allocator() { return allocator_; }

void CudaBackend::synchronize() {
  DeviceGuard guard(device_);
  KILN_CUDA_CHECK(cudaStreamSynchronize(stream_));
}

// ---- recording ----

namespace {
// An instantiated graph and the private pool its memory came from; the pool goes back to the
// shared cache when the graph is destroyed.
class CudaGraph final : public CapturedWork {
 public:
  CudaGraph(int device, cudaStream_t stream, cudaGraphExec_t exec, CudaAllocator& allocator, int pool)
      : device_(device), stream_(stream), exec_(exec), allocator_(allocator), pool_(pool) {}
  ~CudaGraph() override {
    DeviceGuard guard(device_);
    cudaStreamSynchronize(stream_);  // no replay may still be running when the exec goes
    cudaGraphExecDestroy(exec_);
    allocator_.release_private_pool(pool_);
  }
  void launch() override {
    DeviceGuard guard(device_);
    KILN_CUDA_CHECK(cudaGraphLaunch(exec_, stream_));
  }

 private:
  int device_;
  cudaStream_t stream_;
  cudaGraphExec_t exec_;
  CudaAllocator& allocator_;
  int pool_;
};
}  // namespace

void CudaBackend::begin_capture() {
  DeviceGuard guard(device_);
  capture_pool_ = allocator_.begin_private_pool();
  // Thread-local mode: a call of this thread that could sync with the recorded stream (a host
  // read, cudaFree) fails the recording instead of silently running outside it.
  const cudaError_t status = cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal);
  if (status != cudaSuccess) {
    allocator_.release_private_pool(capture_pool_);
    capture_pool_ = 0;
    KILN_CUDA_CHECK(status);
  }
}

std::unique_ptr<CapturedWork> CudaBackend::end_capture() {
  if (!capture_pool_) throw Error("capture", "no recording is under way; expected begin_capture() first");
  DeviceGuard guard(device_);
  const int pool = capture_pool_;
  capture_pool_ = 0;
  allocator_.end_private_pool();
  cudaGraph_t graph = nullptr;
  cudaError_t status = cudaStreamEndCapture(stream_, &graph);
  cudaGraphExec_t exec = nullptr;
  if (status == cudaSuccess) status = cudaGraphInstantiate(&exec, graph, 0);
  if (graph) cudaGraphDestroy(graph);
  if (status != cudaSuccess) {
    (void)cudaGetLastError();
    allocator_.release_private_pool(pool);
    throw Error("capture", std::string("recording the device's work failed: ") + cudaGetErrorString(status) +
                               "; expected only device work between begin_capture() and end_capture()");
  }
  return std::make_unique<CudaGraph>(device_, stream_, exec, allocator_, pool);
}

void CudaBackend::abort_capture() noexcept {
  if (!capture_pool_) return;
  DeviceGuard guard(device_);
  allocator_.end_private_pool();
  cudaStreamCaptureStatus capturing = cudaStreamCaptureStatusNone;
  if (cudaStreamIsCapturing(stream_, &capturing) == cudaSuccess && capturing != cudaStreamCaptureStatusNone) {
    cudaGraph_t graph = nullptr;
    if (cudaStreamEndCapture(stream_, &graph) == cudaSuccess && graph) cudaGraphDestroy(graph);
  }
  (void)cudaGetLastError();
  allocator_.release_private_pool(capture_pool_);
  capture_pool_ = 0;
}

}  // namespace kiln::backend
