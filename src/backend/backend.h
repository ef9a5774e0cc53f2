// The narrow kernel interface every device implements. Kernels take raw pointers, element counts
// and shapes; they know nothing of Tensor or autograd. Arrays are contiguous and row-major.
// All work is queued on the device's stream; only the copy_to_host family and synchronize()
// wait for it.
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

class Backend {
 public:
  virtual ~Backend() = default;
  virtual Allocator& allocator() = 0;

  // ---- memory ----
  /// Device-to-device copy.
  virtual void copy(void* dst, const void* src, std::size_t bytes) = 0;
  /// Device-to-host copy; returns when the bytes are on the host.
  virtual void copy_to_host(void* host_dst, const void* src, std::size_t bytes) = 0;
  /// Host-to-device copy; the host buffer may be reused on return.
  virtual void copy_from_host(void* dst, const void* host_src, std::size_t bytes) = 0;
  virtual void fill(DType dtype, void* dst, int64_t n, double value) = 0;
  /// dst[i] = (to) src[i].
  virtual void cast(DType from, const void* src, DType to, void* dst, int64_t n) = 0;
  /// Waits for all queued work.
  virtual void synchronize() = 0;

  // ---- elementwise (floating dtypes) ----
  /// y = fn(x); y may alias x.
  virtual void unary(UnaryFn fn, DType dtype, const void* x, void* y, int64_t n) = 0;
  /// dx = dy * fn'(x), given y = fn(x) (some rules use y). dx may alias dy.
  virtual void unary_backward(UnaryFn fn, DType dtype, const void* x, const void* y, const void* dy, void* dx,
                              int64_t n) = 0;
  /// out[i] = a[i % na] op b[i % nb]; na and nb divide n. out may alias a or b.
  virtual void binary(BinaryOp op, DType dtype, const void* a, int64_t na, const void* b, int64_t nb, void* out,
                      int64_t n) = 0;
  /// y = alpha * x + beta; y may alias x.
  virtual void affine(DType dtype, const void* x, double alpha, double beta, void* y, int64_t n) = 0;
  /// y = min(max(x, lo), hi).
  virtual void clip(DType dtype, const void* x, void* y, int64_t n, double lo, double hi) = 0;
  /// dx = dy where lo <= x <= hi, else 0 (TensorFlow's clip_by_value gradient).
  virtual void clip_backward(DType dtype, const void* x, const void* dy, void* dx, int64_t n, double lo, double hi) = 0;

  // ---- reductions over x [rows, cols] ----
  /// y[c] = sum_r x[r, c] (+ y[c] when accumulate).
  virtual void sum_rows(DType dtype, const void* x, void* y, int64_t rows, int64_t cols, bool accumulate) = 0;
  /// y[r] = sum_c x[r, c].
  virtual void sum_cols(DType dtype, const void* x, void* y, int64_t rows, int64_t cols) = 0;
  /// y[r] = argmax_c x[r, c] as int32 (first of equal maxima).
  virtual void argmax_rows(DType dtype, const void* x, int32_t* y, int64_t rows, int64_t cols) = 0;
  /// *correct += number of rows r with argmax_c x[r, c] == labels[r]; `correct` is one element of
  /// `dtype` on the device, so accuracy accumulates without a host read.
  virtual void accuracy_sum(DType dtype, const void* x, const int32_t* labels, void* correct, int64_t rows,
                            int64_t cols) = 0;

  // ---- matrix product ----
  /// C[m, n] = alpha * op(A) op(B) + beta * C, row-major; op(A) is [m, k], op(B) is [k, n].
  virtual void gemm(DType dtype, bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, double alpha,
                    const void* a, const void* b, double beta, void* c) = 0;
  /// C[m, n] = act(A B + bias), row-major, A [m, k], B [k, n]; bias [n] is added to every row and
  /// may be null; act is max(., 0) when `relu`, else the identity. A dense layer's forward in one
  /// pass where the device can fuse it: gemm, then binary Add, then unary Relu, up to the order in
  /// which the product is summed (on the CPU, bit for bit).
  virtual void gemm_bias_act(DType dtype, int64_t m, int64_t n, int64_t k, const void* a, const void* b,
                             const void* bias, bool relu, void* c) = 0;
  /// dw[k, n] = X^T dZ for X [m, k] and dZ [m, n] and, when db is not null, db[n] = sum_r dZ[r, :]:
  /// a dense layer's weight and bias gradients in one pass where the device can fuse them: gemm
  /// with X transposed, then sum_rows, up to summation order (on the CPU, bit for bit).
  virtual void gemm_wgrad_bias(DType dtype, int64_t m, int64_t n, int64_t k, const void* x, const void* dz, void* dw,
                               void* db) = 0;

  // ---- softmax family over the last axis of [rows, cols] ----
  /// y = softmax(x), or log_softmax(x) when `log`.
  virtual void softmax(DType dtype, const void* x, void* y, int64_t rows, int64_t cols, bool log) = 0;
  /// dx from the output y and dy (of softmax, or of log_softmax when `log`).
  virtual void softmax_backward(DType dtype, const void* y, const void* dy, void* dx, int64_t rows, int64_t cols,
                                bool log) = 0;
  /// loss[r] = -log_softmax(logits)[r, labels[r]]; when dlogits is not null it receives
  /// (softmax(logits) - onehot(labels)) * grad_scale. A label outside [0, cols) gives a NaN loss
  /// (callers validate labels before they reach the device).
  virtual void sparse_softmax_xent(DType dtype, const void* logits, const int32_t* labels, void* loss, void* dlogits,
                                   double grad_scale, int64_t rows, int64_t cols) = 0;

  // ---- convolution and pooling (NHWC) ----
  /// y = conv2d(x, w) + bias, then max(y, 0) when `relu`; `bias` ([F]) may be null. Why fused: the
  /// bias and the ReLU ride on the convolution's own pass over y instead of two more passes.
  virtual void conv2d_forward(DType dtype, const Conv2dGeometry& g, const void* x, const void* w, const void* bias,
                              bool relu, void* y) = 0;
  /// dx = dL/dx (overwritten).
  virtual void conv2d_backward_data(DType dtype, const Conv2dGeometry& g, const void* dy, const void* w, void* dx) = 0;
  /// dw = dL/dw and, when `db` is not null, db = dL/dbias (both overwritten), from the gradient of
  /// the convolution's output. When `relu_y` is not null the layer's output was y = relu(z) and dy
  /// is dL/dy: the gradient of z is dy where relu_y > 0, else 0, applied on the fly (the ReLU
  /// backward, fused) without writing it out.
  virtual void conv2d_backward_filter(DType dtype, const Conv2dGeometry& g, const void* x, const void* dy,
                                      const void* relu_y, void* dw, void* db) = 0;
  virtual void max_pool2d_forward(DType dtype, const Pool2dGeometry& g, const void* x, void* y) = 0;
  /// dx (overwritten): each dy goes to the first maximal input of its window.
  virtual void max_pool2d_backward(DType dtype, const Pool2dGeometry& g, const void* x, const void* y, const void* dy,
                                   void* dx) = 0;
  /// y = the mean of each window's cells inside the input (0 for a window wholly in the padding).
  virtual void avg_pool2d_forward(DType dtype, const Pool2dGeometry& g, const void* x, void* y) = 0;
  /// dx (overwritten): each dy divided equally among its window's cells inside the input; a cell's
  /// shares added in increasing (oh, ow) order.
  virtual void avg_pool2d_backward(DType dtype, const Pool2dGeometry& g, const void* dy, void* dx) = 0;

  // ---- counter-based randomness (Philox-4x32-10, the stream of backend/philox.h) ----
  // `counter` is the one int64 on the device that names the step; kernels read it there, so a
  // recorded step draws new numbers each replay once the counter has advanced.
  /// y[i] = the uniform [0, 1) number of element i of stream (seed, *counter, draw), as `dtype`.
  virtual void philox_uniform(DType dtype, void* y, int64_t n, uint64_t seed, const int64_t* counter,
                              uint64_t draw) = 0;
  /// y = x * keep / (1 - rate), keep = (u >= rate) for u element i's number of stream (seed, *counter,
  /// draw). Run on dy it gives the backward, dx. y may alias x; 0 <= rate < 1.
  virtual void dropout(DType dtype, const void* x, void* y, int64_t n, double rate, uint64_t seed,
                       const int64_t* counter, uint64_t draw) = 0;

  // ---- optimizer updates (Keras' rules) ----
  /// momentum == 0: w -= lr g. Else v = m v - lr g; w += v (nesterov: w += m v - lr g).
  virtual void sgd_step(DType dtype, void* w, const void* g, void* v, int64_t n, double lr, double momentum,
                        bool nesterov) = 0;
  /// m += (g - m)(1 - b1); v += (g^2 - v)(1 - b2); w -= alpha m / (sqrt(v) + eps), where
  /// alpha = lr sqrt(1 - b2^step) / (1 - b1^step) and step counts from 1.
  virtual void adam_step(DType dtype, void* w, const void* g, void* m, void* v, int64_t n, double lr, double beta1,
                         double beta2, double eps, int64_t step) = 0;

  /// adam_step over every entry of `params` (one launch on a GPU), the step size read from the
  /// device: alpha = alpha_table[*index] (`dtype` elements; the caller fills the table with the
  /// bias-corrected step sizes). A recorded training step thus needs no host argument per replay.
  virtual void adam_step_multi(DType dtype, const ParamSlots* params, int count, double beta1, double beta2, double eps,
                               const void* alpha_table, const int64_t* index) = 0;

  // ---- data movement ----
  /// dst[i, :] = src[idx[i], :] for i < n_idx, rows of `row_bytes` bytes.
  virtual void gather_rows(const void* src, const int32_t* idx, void* dst, int64_t n_idx, std::size_t row_bytes) = 0;
  /// idx[i] = perm[*index * n + i] for i < n: the batch of the step the device counter names.
  virtual void select_batch(const int32_t* perm, const int64_t* index, int32_t* idx, int64_t n) = 0;
  /// ++*counter on the device (the step counter a recorded step advances).
  virtual void advance_counter(int64_t* counter) = 0;

  // ---- recording (CUDA graphs) ----
  // Why here: per-op host overhead and launches bound a small-batch step on a GPU; recording the
  // whole step once and replaying it removes both. Only the backend knows its stream and allocator.
  /// Whether begin_capture() works on this device (the CPU backend: no; fit then stays eager).
  virtual bool can_capture() const { return false; }
  /// Starts recording this device's work instead of running it. Until end_capture() or
  /// abort_capture(), allocations come from a pool owned by the recording and freed blocks go back
  /// to it, so nothing else ever gets them and replays see the same addresses. Nothing may read the
  /// device back while recording.
  virtual void begin_capture();
  /// Stops recording and returns the replayable work; throws kiln::Error if the recorded work broke
  /// the recording's rules (the pool is then given back).
  virtual std::unique_ptr<CapturedWork> end_capture();
  /// Stops a recording after an error and gives its pool back; never throws.
  virtual void abort_capture() noexcept {}

  // ---- float32 math mode (kiln::config::enable_tensor_float_32_execution) ----
  // Why a switch: tensor cores multiply float32 much faster as TF32 (10 mantissa bits, ~1e-3
  // relative error) than the plain FMA units do in float32; kiln's default is exact float32, so the
  // faster math runs only where a caller asks for it. Backends without TF32 (the CPU) ignore it.
  /// Lets float32 products and convolutions use TF32 tensor-core math (`enabled`), or not; float64
  /// is never affected. Applies to work issued afterwards (plans made for the other mode are not
  /// reused); throws kiln::Error while a recording is under way.
  virtual void set_tensor_float_32(bool enabled) { (void)enabled; }
};

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
