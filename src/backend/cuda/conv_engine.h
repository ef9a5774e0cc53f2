// One direction of a float32 NHWC convolution through cuDNN's graph API (the backend descriptors):
// the operation graph, the engine configuration chosen for it, and its execution plan. cuDNN's
// legacy convolution API offers float32 NHWC only its two implicit-GEMM algorithms; the graph API
// reaches every engine cuDNN has for the geometry (bench/README.md has the survey that chose it).
// cuDNN's FFT and Winograd engines for float32 take NCHW tensors only: an engine may also run in
// NCHW on copies of the NHWC operands, transposed there and back, when that is faster, transposes
// included.
#pragma once

#include <cuda_runtime.h>
#include <cudnn.h>

#include <cstddef>
#include <cstdint>
#include <string>

namespace kiln::backend {

class CudaAllocator;

enum class ConvDirection { Forward, BackwardData, BackwardFilter };

/// The layout an engine runs in: kiln's NHWC, or NCHW on transposed copies of the operands.
enum class ConvLayout { Nhwc, Nchw };

/// Each direction's cuDNN operation and the names of its attributes (x, w, y: the forward pass's
/// tensors, whichever is the output), indexed by ConvDirection.
struct ConvOperationNames {
  cudnnBackendDescriptorType_t type;
  cudnnBackendAttributeName_t x, w, y, conv, alpha, beta;
};
inline constexpr ConvOperationNames kConvOperationNames[3] = {
    {CUDNN_BACKEND_OPERATION_CONVOLUTION_FORWARD_DESCRIPTOR, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_X,
     CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_W, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_Y,
     CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_CONV_DESC, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_ALPHA,
     CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_BETA},
    {CUDNN_BACKEND_OPERATION_CONVOLUTION_BACKWARD_DATA_DESCRIPTOR, CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_DX,
     CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_W, CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_DY,
     CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_CONV_DESC, CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_ALPHA,
     CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_BETA},
    {CUDNN_BACKEND_OPERATION_CONVOLUTION_BACKWARD_FILTER_DESCRIPTOR, CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_FILTER_X,
     CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_FILTER_DW, CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_FILTER_DY,
     CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_FILTER_CONV_DESC, CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_FILTER_ALPHA,
     CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_FILTER_BETA},
};

/// An owned cuDNN backend descriptor.
class BackendDescriptor {
 public:
  BackendDescriptor() = default;
  /// Creates a descriptor of `type`; throws kiln::Error.
  explicit BackendDescriptor(cudnnBackendDescriptorType_t type);
  ~BackendDescriptor();
  BackendDescriptor(BackendDescriptor&& other) noexcept : d_(other.d_) { other.d_ = nullptr; }
  BackendDescriptor& operator=(BackendDescriptor&& other) noexcept;
  BackendDescriptor(const BackendDescriptor&) = delete;
  BackendDescriptor& operator=(const BackendDescriptor&) = delete;

  cudnnBackendDescriptor_t get() const { return d_; }
  /// Sets one attribute; throws kiln::Error naming it.
  void set(cudnnBackendAttributeName_t name, cudnnBackendAttributeType_t type, int64_t count, const void* values);
  /// Finalizes; returns cuDNN's status (a refusal is an answer here, not an error).
  cudnnStatus_t finalize();

 private:
  cudnnBackendDescriptor_t d_ = nullptr;
};

/// A convolution's shape in cuDNN's terms: x NHWC [N, H, W, C] (already padded by the caller when
/// TensorFlow's padding is asymmetric), the filter KRSC [F, KH, KW, C], y NHWC [N, OH, OW, F].
struct ConvEngineShape {
  int64_t N, H, W, C, F, KH, KW, OH, OW, stride_h, stride_w, pad_h, pad_w;
};

/// Which engines may serve a plan: float32 stays float32 (no TF32 tensor cores unless `tf32`, no
/// down-conversion, no reduced-precision sums); `deterministic` keeps only deterministic engines.
struct EnginePolicy {
  bool tf32 = false;
  bool deterministic = false;
};

/// The operation graph of one direction in one layout, with the descriptors it refers to.
struct ConvGraph {
  BackendDescriptor x, w, y, conv, op, graph;
};

/// One direction of one geometry: built once, its engine chosen once, then run on any buffers.
class ConvEngine {
 public:
  /// Builds the operation graph; throws kiln::Error when cuDNN refuses the descriptors.
  ConvEngine(cudnnHandle_t handle, ConvDirection direction, const ConvEngineShape& shape);

  /// Chooses the engine configuration among cuDNN's heuristic and fallback lists and its engines'
  /// default configurations, keeping those `policy` allows and whose workspace fits
  /// `max_workspace`. With `measure`, each runs on x, w and y (the direction's output among them is
  /// overwritten) on `stream` and the fastest wins, NCHW FFT and Winograd engines competing with
  /// their transposes counted; an FFT or Winograd engine faster than every direct one wins only
  /// while its result stays within conv_accuracy.h's bound of the fastest direct engine's. Without
  /// `measure`, cuDNN's heuristic ranking of the NHWC engines decides, direct sums first.
  /// KILN_CUDNN_LAYOUT=nhwc leaves the NCHW route out, =nchw takes only it (any NCHW engine; for
  /// comparisons and tests). Throws kiln::Error naming `geometry` when no engine qualifies.
  /// KILN_CUDNN_LOG=1 prints every candidate.
  void choose(cudnnHandle_t handle, cudaStream_t stream, CudaAllocator& allocator, bool measure,
              const EnginePolicy& policy, std::size_t max_workspace, const void* x, const void* w, const void* y,
              const std::string& geometry);

  bool chosen() const { return plan_.get() != nullptr; }
  /// The scratch bytes run() takes: the engine's workspace, and the NCHW copies where it runs in NCHW.
  std::size_t workspace_size() const { return workspace_; }

  /// Runs the chosen plan on the handle's stream: reads two of x, w, y (NHWC, the filter KRSC) and
  /// writes the third.
  void run(cudnnHandle_t handle, const void* x, const void* w, const void* y, void* workspace) const;

 private:
  ConvDirection direction_;
  ConvEngineShape shape_;
  ConvGraph nhwc_, nchw_;  // nchw_ is made by choose() where the NCHW route may serve
  BackendDescriptor plan_;
  ConvLayout layout_ = ConvLayout::Nhwc;
  std::size_t engine_workspace_ = 0, workspace_ = 0;
};

}  // namespace kiln::backend
