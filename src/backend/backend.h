// The narrow kernel interface every device implements, and the types its functions take. The
// functions themselves are listed once, in backend/backend_ops.h. Kernels take raw pointers,
// element counts and shapes; they know nothing of Tensor or autograd.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

#include "backend/allocator.h"
#include "kiln/device.h"
#include "kiln/dtype.h"
#include "kiln/error.h"

namespace kiln::backend {

enum class UnaryOp { Neg, Relu, Sigmoid, Tanh, Exp, Log, Square, Sqrt, Gelu, GeluTanh, Silu, Elu, LeakyRelu };
enum class BinaryOp { Add, Sub, Mul, Div };

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

/// A device's kernels: the functions of backend/backend_ops.h, documented there.
class Backend {
 public:
  virtual ~Backend() = default;

#define KILN_BACKEND_OP(ret, name, params) virtual ret name params = 0;
#define KILN_BACKEND_HOOK(ret, name, params) virtual ret name params;
#include "backend/backend_ops.h"
};

// The hooks' defaults: a device without recording or TF32.
inline bool Backend::can_capture() const { return false; }
inline void Backend::abort_capture() noexcept {}
inline void Backend::set_tensor_float_32(bool enabled) { (void)enabled; }
inline void Backend::begin_capture() {
  throw Error("capture", "this device cannot record work; expected a CUDA device (check can_capture() first)");
}
inline std::unique_ptr<CapturedWork> Backend::end_capture() {
  throw Error("capture", "no recording is under way; expected begin_capture() first");
}

/// The backend of `device`: the one place that dispatches on the device type.
Backend& get(Device device);

/// The CPU backend (always present).
Backend& cpu();
/// The CUDA backend for GPU `index`; throws when kiln was built without CUDA or the GPU is unusable.
Backend& cuda(int index);

}  // namespace kiln::backend
