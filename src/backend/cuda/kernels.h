// Launchers of the kernels in kernels/*.cu. Each takes device pointers, sizes and the stream,
// dispatches on dtype, launches, and checks the launch. Shapes follow backend.h.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#include "backend/backend.h"
#include "kiln/error.h"

namespace kiln::backend::kernels {

/// Threads per block of the one-dimensional kernels.
constexpr int kBlock = 256;

/// Blocks for `n` elements at kBlock threads each; grid-stride loops cover the rest.
inline unsigned grid_for(int64_t n) {
  const int64_t blocks = (n + kBlock - 1) / kBlock;
  return static_cast<unsigned>(blocks < 1 ? 1 : (blocks > (1 << 20) ? (1 << 20) : blocks));
}

/// Calls f(T{}) with T = float or double for a floating `dtype`; throws for the others.
template <typename F>
void with_float(DType dtype, const char* op, F&& f) {
  switch (dtype) {
    case DType::Float32:
      f(float{});
      return;
    case DType::Float64:
      f(double{});
      return;
    default:
      throw Error(op, "no CUDA kernel for " + dtype_name(dtype) + "; expected float32 or float64");
  }
}

// ---- memory.cu ----
void fill(DType dtype, void* dst, int64_t n, double value, cudaStream_t s);
void cast(DType from, const void* src, DType to, void* dst, int64_t n, cudaStream_t s);
void gather_rows(const void* src, const int32_t* idx, void* dst, int64_t n_idx, std::size_t row_bytes, cudaStream_t s);
/// idx[i] = perm[*index * n + i].
void select_batch(const int32_t* perm, const int64_t* index, int32_t* idx, int64_t n, cudaStream_t s);
/// ++*counter.
void advance_counter(int64_t* counter, cudaStream_t s);
/// out[c, r] = in[r, c] for in [rows, cols].
void transpose(DType dtype, const void* in, void* out, int64_t rows, int64_t cols, cudaStream_t s);
/// xp [N, HP, WP, C] = x [N, H, W, C] placed at (top, left), zeros elsewhere (rows past HP dropped).
void pad_nhwc(DType dtype, const void* x, void* xp, int64_t N, int64_t H, int64_t W, int64_t C, int64_t HP, int64_t WP,
              int64_t top, int64_t left, cudaStream_t s);
/// dx [N, H, W, C] = dxp [N, HP, WP, C] at (top, left); cells outside dxp give 0.
void crop_nhwc(DType dtype, const void* dxp, void* dx, int64_t N, int64_t H, int64_t W, int64_t C, int64_t HP,
               int64_t WP, int64_t top, int64_t left, cudaStream_t s);

// ---- elementwise.cu ----
void unary(UnaryFn fn, DType dtype, const void* x, void* y, int64_t n, cudaStream_t s);
void unary_backward(UnaryFn fn, DType dtype, const void* x, const void* y, const void* dy, void* dx, int64_t n,
                    cudaStream_t s);
void binary(BinaryOp op, DType dtype, const void* a, int64_t na, const void* b, int64_t nb, void* out, int64_t n,
            cudaStream_t s);
void affine(DType dtype, const void* x, double alpha, double beta, void* y, int64_t n, cudaStream_t s);
void clip(DType dtype, const void* x, void* y, int64_t n, double lo, double hi, cudaStream_t s);
void clip_backward(DType dtype, const void* x, const void* dy, void* dx, int64_t n, double lo, double hi,
                   cudaStream_t s);
/// y[r, c] = y[r, c] + bias[c] (bias may be null), then max(., 0) when `relu`, for y [rows, cols]:
/// a convolution's bias and ReLU in one pass when cuDNN does not fuse them.
void bias_relu(DType dtype, void* y, const void* bias, bool relu, int64_t rows, int64_t cols, cudaStream_t s);

// ---- reduce.cu ----
/// Row slices sum_rows adds separately (a function of the shape alone); above 1 it needs `partial`,
/// scratch of slices * cols elements of dtype.
int64_t sum_rows_slices(int64_t rows, int64_t cols);
/// y[c] = sum_r x[r, c] (+ y[c]): the slices' sums into `partial`, then those in slice order.
void sum_rows(DType dtype, const void* x, void* y, int64_t rows, int64_t cols, bool accumulate, void* partial,
              cudaStream_t s);
void sum_cols(DType dtype, const void* x, void* y, int64_t rows, int64_t cols, cudaStream_t s);
void argmax_rows(DType dtype, const void* x, int32_t* y, int64_t rows, int64_t cols, cudaStream_t s);
void accuracy_sum(DType dtype, const void* x, const int32_t* labels, void* correct, int64_t rows, int64_t cols,
                  cudaStream_t s);

// ---- softmax.cu ----
void softmax(DType dtype, const void* x, void* y, int64_t rows, int64_t cols, bool log, cudaStream_t s);
void softmax_backward(DType dtype, const void* y, const void* dy, void* dx, int64_t rows, int64_t cols, bool log,
                      cudaStream_t s);
void sparse_softmax_xent(DType dtype, const void* logits, const int32_t* labels, void* loss, void* dlogits,
                         double grad_scale, int64_t rows, int64_t cols, cudaStream_t s);

// ---- conv_wgrad.cu ----
/// Whether the direct filter-and-bias gradient kernel serves this geometry (KH*KW*C + 1 and F of at
/// most 64).
bool conv_wgrad_direct_fits(DType dtype, const Conv2dGeometry& g);
/// The number of partial sums it writes (row slices of the N*OH*OW output pixels).
int64_t conv_wgrad_blocks(DType dtype, const Conv2dGeometry& g);
/// partial_w[b, k*F + f] = sum over slice b of patch(k) * dz(f), partial_b[b, f] = sum over slice b
/// of dz(f) (skipped when partial_b is null), dz = dy, times (relu_y > 0) when relu_y is not null.
/// sum_rows over the slices gives dw [KH, KW, C, F] and db [F].
void conv_wgrad_partial(DType dtype, const Conv2dGeometry& g, const void* x, const void* dy, const void* relu_y,
                        void* partial_w, void* partial_b, cudaStream_t s);

// ---- pool.cu ----
void max_pool2d_forward(DType dtype, const Pool2dGeometry& g, const void* x, void* y, cudaStream_t s);
void max_pool2d_backward(DType dtype, const Pool2dGeometry& g, const void* x, const void* dy, void* dx, cudaStream_t s);
void avg_pool2d_forward(DType dtype, const Pool2dGeometry& g, const void* x, void* y, cudaStream_t s);
void avg_pool2d_backward(DType dtype, const Pool2dGeometry& g, const void* dy, void* dx, cudaStream_t s);

// ---- random.cu ----
/// y[i] = element i's uniform number of Philox stream (seed, *counter, draw) (backend/philox.h).
void philox_uniform(DType dtype, void* y, int64_t n, uint64_t seed, const int64_t* counter, uint64_t draw,
                    cudaStream_t s);
/// y = x * keep / (1 - rate) with keep from the same stream.
void dropout(DType dtype, const void* x, void* y, int64_t n, double rate, uint64_t seed, const int64_t* counter,
             uint64_t draw, cudaStream_t s);

// ---- optimizer.cu ----
void sgd_step(DType dtype, void* w, const void* g, void* v, int64_t n, double lr, double momentum, bool nesterov,
              cudaStream_t s);
/// `alpha` is the bias-corrected step size, computed by the caller in the variable's precision.
void adam_step(DType dtype, void* w, const void* g, void* m, void* v, int64_t n, double alpha, double beta1,
               double beta2, double eps, cudaStream_t s);

/// Adam over `count` parameters in as few launches as fit the kernel's argument block; the step
/// size is alpha_table[*index] (in the parameters' dtype).
void adam_step_multi(DType dtype, const ParamSlots* params, int count, double beta1, double beta2, double eps,
                     const void* alpha_table, const int64_t* index, cudaStream_t s);

/// A do-nothing kernel: cudaFuncGetAttributes on it tells whether this build has code for a GPU.
const void* probe_kernel();

}  // namespace kiln::backend::kernels
