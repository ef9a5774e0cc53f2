// The narrow kernel interface every device implements, and the types its functions take. The
// functions themselves are listed once, in backend/backend_ops.h. Kernels take raw pointers,
// element counts and shapes; they know nothing of Tensor or autograd.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "backend/allocator.h"
#include "backend/optimizer_update.h"
#include "kiln/device.h"
#include "kiln/dtype.h"
#include "kiln/error.h"

namespace kiln::backend {

enum class UnaryOp { Neg, Relu, Sigmoid, Tanh, Exp, Log, Square, Sqrt, Gelu, GeluTanh, Silu, Elu, LeakyRelu, Abs };
/// Maximum: a NaN in either operand gives NaN (TensorFlow's maximum). GreaterEqual: 1 where
/// a >= b, else 0 (so 0 where either is NaN), the mask of maximum's gradient.
enum class BinaryOp { Add, Sub, Mul, Div, Maximum, GreaterEqual };

/// A unary function and its scalar parameter: Elu's alpha, LeakyRelu's negative slope, unused (0)
/// by the other ops. Implicit from a bare UnaryOp, so a parameterless function is named by its op.
struct UnaryFn {
  UnaryFn(UnaryOp op, double param = 0.0) : op(op), param(param) {}
  UnaryOp op;
  double param;
};

/// Geometry of a 2-D convolution, NHWC input [N, H, W, C], kernel [KH, KW, C, F],
/// output [N, OH, OW, F]. pad_top/pad_left are the zero rows/columns before the input.
struct Conv2dGeometry {
  int64_t N, H, W, C, KH, KW, F, OH, OW, stride_h, stride_w, pad_top, pad_left;
};

/// Geometry of 2-D pooling, NHWC input [N, H, W, C], output [N, OH, OW, C]. Padded cells are
/// ignored, as Keras' "same" pooling does: they never win a max and are not counted in an average.
struct Pool2dGeometry {
  int64_t N, H, W, C, KH, KW, OH, OW, stride_h, stride_w, pad_top, pad_left;
};

/// A box of `extent` elements copied between two arrays of one dtype, each addressed by its own
/// offset and strides (in elements): for every index i < extent, dst[dst_offset + sum_k i_k
/// dst_stride[k]] = src[src_offset + sum_k i_k src_stride[k]]. One description serves padding,
/// cropping, slicing, concatenation and permutation, forward and backward. Dimensions beyond
/// `ndim` are unused; callers merge dimensions that are contiguous in both arrays first.
struct StridedCopy {
  static constexpr int kMaxDims = 8;  ///< the most dimensions a box may have
  int ndim = 0;                       ///< dimensions used, 1..kMaxDims
  int64_t extent[kMaxDims] = {};      ///< the box's size in each dimension
  int64_t src_stride[kMaxDims] = {};  ///< src's step per index of each dimension
  int64_t dst_stride[kMaxDims] = {};  ///< dst's step per index of each dimension
  int64_t src_offset = 0;             ///< src's element of index 0
  int64_t dst_offset = 0;             ///< dst's element of index 0
};

/// How an image resampling reads a point outside its input (Keras' fill_mode): Constant gives
/// fill_value; Reflect mirrors about the edge (d c b a | a b c d | d c b a); Wrap repeats the
/// image (a b c d | a b c d | a b c d); Nearest repeats the edge pixel (a a | a b c d | d d).
enum class ImageFill { Constant, Reflect, Wrap, Nearest };

/// Geometry of a per-sample axis-aligned image resampling, NHWC: x [N, H, W, C] -> y [N, OH, OW,
/// C]. Each sample n has a transform t[n] = (ay, by, ax, bx): output pixel (i, j) samples x at
/// (ay i + by, ax j + bx), bilinearly or at the nearest pixel, reading points outside x by `fill`.
/// backend/image_map.h holds the per-axis arithmetic both devices share.
struct ImageTransformGeometry {
  int64_t N, H, W, C, OH, OW;
  bool bilinear;      ///< bilinear interpolation, else the nearest pixel (ties away from zero)
  ImageFill fill;     ///< how points outside x are read
  double fill_value;  ///< the value of points outside x under ImageFill::Constant
};

/// How random_image_transforms makes one axis of each sample's transform (see image_map.h).
enum class ImageAxisKind {
  Fixed,  ///< a = scale, b = offset, the same for every sample
  Flip,   ///< a = -1, b = size - 1 when the sample's first number u0 <= 1/2, else a = 1, b = 0
  Shift,  ///< a = 1, b = -(lo + (hi - lo) u) size: a translation by a fraction of the size
  Crop    ///< a = 1, b = min(floor(u (range + 1)), range): a crop window's integer start
};

/// One axis of random_image_transforms (0: height, 1: width).
struct ImageAxisSpec {
  ImageAxisKind kind = ImageAxisKind::Fixed;
  double scale = 1.0, offset = 0.0;  ///< Fixed
  double lo = 0.0, hi = 0.0;         ///< Shift, in fractions of `size`
  int64_t range = 0;                 ///< Crop: the largest start
  int64_t size = 1;                  ///< the input's extent along the axis
};

/// One parameter of a multi-tensor optimizer update: weights, gradient and the two slots, n elements.
struct ParamSlots {
  void* w;
  const void* g;
  void* m;
  void* v;
  int64_t n;
};

/// Device work recorded once and replayed as a whole (a CUDA graph). It owns the memory its work
/// uses, so every replay sees the addresses the recording saw.
class CapturedWork {
 public:
  virtual ~CapturedWork() = default;
  /// Queues one replay on the device's stream.
  virtual void launch() = 0;
};

/// One part of Backend::scaled_copy_multi: dst[0..n) = scale * src[0..n) (scale 1: an exact copy),
/// or zeros when src is null.
struct ScaledCopy {
  const void* src = nullptr;
  void* dst = nullptr;
  int64_t n = 0;
  double scale = 1.0;
};

/// A group of processes, one device each, that combine device buffers (NCCL on GPUs): made by
/// Backend::join_collectives. Its calls queue on the device's stream, in order with the kernels,
/// and may be recorded.
class DeviceCollectives {
 public:
  virtual ~DeviceCollectives() = default;
  /// Queues the in-place sum (or maximum: `max`) over the group of `n` elements of `dtype` at
  /// `data` (float32, float64 or int64).
  virtual void all_reduce(DType dtype, void* data, int64_t n, bool max) = 0;
  /// Queues a copy of `bytes` bytes at `data` from rank `root` to every rank.
  virtual void broadcast(void* data, std::size_t bytes, int root) = 0;
  /// Waits up to `timeout_seconds` for everything queued on the device's stream so far: true when
  /// it completed, false when not (the group is then aborted, so that no kernel waits for a peer
  /// forever, and unusable). Throws kiln::Error when the library reports a failure.
  virtual bool wait(double timeout_seconds) = 0;
};

/// A device's kernels: the functions of backend/backend_ops.h, documented there.
class Backend {
 public:
  virtual ~Backend() = default;

#define KILN_BACKEND_OP(ret, name, params) virtual ret name params = 0;
#define KILN_BACKEND_HOOK(ret, name, params) virtual ret name params;
#include "backend/backend_ops.h"
};

// The hooks' defaults: a device without recording, TF32 or nondeterministic algorithms.
inline bool Backend::can_capture() const { return false; }
inline void Backend::abort_capture() noexcept {}
inline void Backend::set_tensor_float_32(bool enabled) { (void)enabled; }
inline void Backend::set_op_determinism(bool enabled) { (void)enabled; }
inline void Backend::begin_capture() {
  throw Error("capture", "this device cannot record work; expected a CUDA device (check can_capture() first)");
}
inline std::unique_ptr<CapturedWork> Backend::end_capture() {
  throw Error("capture", "no recording is under way; expected begin_capture() first");
}
inline std::string Backend::make_collectives_key() {
  throw Error("collectives", "this device has no collectives across processes; expected a CUDA device");
}
inline std::unique_ptr<DeviceCollectives> Backend::join_collectives(const std::string& key, int rank, int size,
                                                                    double timeout_seconds) {
  (void)key, (void)rank, (void)size, (void)timeout_seconds;
  return nullptr;  // never reached: make_collectives_key threw
}

/// The backend of `device`: the one place that dispatches on the device type.
Backend& get(Device device);

/// The CPU backend (always present).
Backend& cpu();
/// The CUDA backend for GPU `index`; throws when kiln was built without CUDA or the GPU is unusable.
Backend& cuda(int index);

}  // namespace kiln::backend
