// CudaBackend: handles and stream, copies, and the thin calls into our kernels (kernels/*.cu).
#include "backend/cuda/cuda_backend.h"

#include <cmath>
#include <cstring>

#include "backend/cuda/check.h"
#include "backend/cuda/conv_plan.h"
#include "backend/cuda/kernels.h"

namespace kiln::backend {

namespace {
// cuBLAS' recommended workspace on Hopper; given once so cuBLAS never allocates during a step
// (which a captured CUDA graph could not replay). Held outside the caching allocator's stats.
constexpr std::size_t kCublasWorkspace = std::size_t(32) << 20;
// Uploads larger than this go straight from the caller's buffer and wait for the copy.
constexpr std::size_t kStagingLimit = std::size_t(64) << 20;
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

void CudaBackend::set_tensor_float_32(bool enabled) {
  if (tf32_.load() == enabled) return;
  DeviceGuard guard(device_);
  // A recording would hold calls of both modes; its replays would then match neither.
  cudaStreamCaptureStatus capturing = cudaStreamCaptureStatusNone;
  KILN_CUDA_CHECK(cudaStreamIsCapturing(stream_, &capturing));
  if (capture_pool_ || capturing != cudaStreamCaptureStatusNone)
    throw Error("enable_tensor_float_32_execution",
                "GPU " + std::to_string(device_) +
                    " is recording a step (CUDA graph) right now; expected the setting to change between fit "
                    "calls, not while work is being recorded");
  // cuBLAS: TF32 tensor cores for float32 GEMMs (cublasSgemm); float64 is unaffected by the mode.
  // cuBLASLt and cuDNN read tf32_ when they make a plan (cuda_gemm_lt.cpp, cuda_conv.cpp).
  KILN_CUBLAS_CHECK(cublasSetMathMode(cublas_, enabled ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH));
  tf32_.store(enabled);
}

// ---- memory ----

void CudaBackend::copy(void* dst, const void* src, std::size_t bytes) {
  if (!bytes || dst == src) return;
  DeviceGuard guard(device_);
  KILN_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, stream_));
}

void CudaBackend::copy_to_host(void* host_dst, const void* src, std::size_t bytes) {
  if (!bytes) return;
  DeviceGuard guard(device_);
  KILN_CUDA_CHECK(cudaMemcpyAsync(host_dst, src, bytes, cudaMemcpyDeviceToHost, stream_));
  KILN_CUDA_CHECK(cudaStreamSynchronize(stream_));
}

void CudaBackend::copy_from_host(void* dst, const void* host_src, std::size_t bytes) {
  if (!bytes) return;
  DeviceGuard guard(device_);
  if (bytes > kStagingLimit) {
    KILN_CUDA_CHECK(cudaMemcpyAsync(dst, host_src, bytes, cudaMemcpyHostToDevice, stream_));
    KILN_CUDA_CHECK(cudaStreamSynchronize(stream_));
    return;
  }
  std::lock_guard lock(staging_mutex_);
  KILN_CUDA_CHECK(cudaEventSynchronize(staging_done_));  // the previous upload has left the buffer
  if (staging_bytes_ < bytes) {
    if (staging_) KILN_CUDA_CHECK(cudaFreeHost(staging_));
    staging_ = nullptr;
    std::size_t size = std::size_t(1) << 20;
    while (size < bytes) size *= 2;
    KILN_CUDA_CHECK(cudaMallocHost(&staging_, size));
    staging_bytes_ = size;
  }
  std::memcpy(staging_, host_src, bytes);
  KILN_CUDA_CHECK(cudaMemcpyAsync(dst, staging_, bytes, cudaMemcpyHostToDevice, stream_));
  KILN_CUDA_CHECK(cudaEventRecord(staging_done_, stream_));
}

void CudaBackend::fill(DType dtype, void* dst, int64_t n, double value) {
  DeviceGuard guard(device_);
  kernels::fill(dtype, dst, n, value, stream_);
}

void CudaBackend::cast(DType from, const void* src, DType to, void* dst, int64_t n) {
  DeviceGuard guard(device_);
  kernels::cast(from, src, to, dst, n, stream_);
}

void CudaBackend::synchronize() {
  DeviceGuard guard(device_);
  KILN_CUDA_CHECK(cudaStreamSynchronize(stream_));
}

void CudaBackend::select_batch(const int32_t* perm, const int64_t* index, int32_t* idx, int64_t n) {
  DeviceGuard guard(device_);
  kernels::select_batch(perm, index, idx, n, stream_);
}

void CudaBackend::advance_counter(int64_t* counter) {
  DeviceGuard guard(device_);
  kernels::advance_counter(counter, stream_);
}

void CudaBackend::gather_rows(const void* src, const int32_t* idx, void* dst, int64_t n_idx, std::size_t row_bytes) {
  DeviceGuard guard(device_);
  kernels::gather_rows(src, idx, dst, n_idx, row_bytes, stream_);
}

// ---- elementwise ----

void CudaBackend::unary(UnaryFn fn, DType dtype, const void* x, void* y, int64_t n) {
  DeviceGuard guard(device_);
  kernels::unary(fn, dtype, x, y, n, stream_);
}

void CudaBackend::unary_backward(UnaryFn fn, DType dtype, const void* x, const void* y, const void* dy, void* dx,
                                 int64_t n) {
  DeviceGuard guard(device_);
  kernels::unary_backward(fn, dtype, x, y, dy, dx, n, stream_);
}

void CudaBackend::binary(BinaryOp op, DType dtype, const void* a, int64_t na, const void* b, int64_t nb, void* out,
                         int64_t n) {
  DeviceGuard guard(device_);
  kernels::binary(op, dtype, a, na, b, nb, out, n, stream_);
}

void CudaBackend::affine(DType dtype, const void* x, double alpha, double beta, void* y, int64_t n) {
  DeviceGuard guard(device_);
  kernels::affine(dtype, x, alpha, beta, y, n, stream_);
}

void CudaBackend::clip(DType dtype, const void* x, void* y, int64_t n, double lo, double hi) {
  DeviceGuard guard(device_);
  kernels::clip(dtype, x, y, n, lo, hi, stream_);
}

void CudaBackend::clip_backward(DType dtype, const void* x, const void* dy, void* dx, int64_t n, double lo, double hi) {
  DeviceGuard guard(device_);
  kernels::clip_backward(dtype, x, dy, dx, n, lo, hi, stream_);
}

// ---- reductions ----

void CudaBackend::sum_rows(DType dtype, const void* x, void* y, int64_t rows, int64_t cols, bool accumulate) {
  DeviceGuard guard(device_);
  // Scratch for the row slices' partial sums; from the caching allocator, so a recording's pool
  // serves it and replays see the same address.
  const int64_t slices = kernels::sum_rows_slices(rows, cols);
  Scratch partial(allocator_, slices > 1 ? static_cast<std::size_t>(slices * cols) * dtype_size(dtype) : 0);
  kernels::sum_rows(dtype, x, y, rows, cols, accumulate, partial.get(), stream_);
}

void CudaBackend::sum_cols(DType dtype, const void* x, void* y, int64_t rows, int64_t cols) {
  DeviceGuard guard(device_);
  kernels::sum_cols(dtype, x, y, rows, cols, stream_);
}

void CudaBackend::argmax_rows(DType dtype, const void* x, int32_t* y, int64_t rows, int64_t cols) {
  DeviceGuard guard(device_);
  kernels::argmax_rows(dtype, x, y, rows, cols, stream_);
}

void CudaBackend::accuracy_sum(DType dtype, const void* x, const int32_t* labels, void* correct, int64_t rows,
                               int64_t cols) {
  DeviceGuard guard(device_);
  kernels::accuracy_sum(dtype, x, labels, correct, rows, cols, stream_);
}

// ---- softmax family ----

void CudaBackend::softmax(DType dtype, const void* x, void* y, int64_t rows, int64_t cols, bool log) {
  DeviceGuard guard(device_);
  kernels::softmax(dtype, x, y, rows, cols, log, stream_);
}

void CudaBackend::softmax_backward(DType dtype, const void* y, const void* dy, void* dx, int64_t rows, int64_t cols,
                                   bool log) {
  DeviceGuard guard(device_);
  kernels::softmax_backward(dtype, y, dy, dx, rows, cols, log, stream_);
}

void CudaBackend::sparse_softmax_xent(DType dtype, const void* logits, const int32_t* labels, void* loss, void* dlogits,
                                      double grad_scale, int64_t rows, int64_t cols) {
  DeviceGuard guard(device_);
  kernels::sparse_softmax_xent(dtype, logits, labels, loss, dlogits, grad_scale, rows, cols, stream_);
}

// ---- pooling ----

void CudaBackend::max_pool2d_forward(DType dtype, const Pool2dGeometry& g, const void* x, void* y) {
  DeviceGuard guard(device_);
  kernels::max_pool2d_forward(dtype, g, x, y, stream_);
}

void CudaBackend::max_pool2d_backward(DType dtype, const Pool2dGeometry& g, const void* x, const void*, const void* dy,
                                      void* dx) {
  DeviceGuard guard(device_);
  kernels::max_pool2d_backward(dtype, g, x, dy, dx, stream_);
}

void CudaBackend::avg_pool2d_forward(DType dtype, const Pool2dGeometry& g, const void* x, void* y) {
  DeviceGuard guard(device_);
  kernels::avg_pool2d_forward(dtype, g, x, y, stream_);
}

void CudaBackend::avg_pool2d_backward(DType dtype, const Pool2dGeometry& g, const void* dy, void* dx) {
  DeviceGuard guard(device_);
  kernels::avg_pool2d_backward(dtype, g, dy, dx, stream_);
}

// ---- randomness ----

void CudaBackend::philox_uniform(DType dtype, void* y, int64_t n, uint64_t seed, const int64_t* counter,
                                 uint64_t draw) {
  DeviceGuard guard(device_);
  kernels::philox_uniform(dtype, y, n, seed, counter, draw, stream_);
}

void CudaBackend::dropout(DType dtype, const void* x, void* y, int64_t n, double rate, uint64_t seed,
                          const int64_t* counter, uint64_t draw) {
  DeviceGuard guard(device_);
  kernels::dropout(dtype, x, y, n, rate, seed, counter, draw, stream_);
}

// ---- optimizers ----

void CudaBackend::sgd_step(DType dtype, void* w, const void* g, void* v, int64_t n, double lr, double momentum,
                           bool nesterov) {
  DeviceGuard guard(device_);
  kernels::sgd_step(dtype, w, g, v, n, lr, momentum, nesterov, stream_);
}

void CudaBackend::adam_step(DType dtype, void* w, const void* g, void* m, void* v, int64_t n, double lr, double beta1,
                            double beta2, double eps, int64_t step) {
  DeviceGuard guard(device_);
  // The bias-corrected step size in the variable's precision, exactly as the CPU backend (Keras).
  double alpha = 0.0;
  kernels::with_float(dtype, "adam", [&](auto tag) {
    using T = decltype(tag);
    const T b1 = static_cast<T>(beta1), b2 = static_cast<T>(beta2), t = static_cast<T>(step);
    alpha = static_cast<T>(lr) * std::sqrt(T(1) - std::pow(b2, t)) / (T(1) - std::pow(b1, t));
  });
  kernels::adam_step(dtype, w, g, m, v, n, alpha, beta1, beta2, eps, stream_);
}

void CudaBackend::adam_step_multi(DType dtype, const ParamSlots* params, int count, double beta1, double beta2,
                                  double eps, const void* alpha_table, const int64_t* index) {
  DeviceGuard guard(device_);
  kernels::adam_step_multi(dtype, params, count, beta1, beta2, eps, alpha_table, index, stream_);
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
