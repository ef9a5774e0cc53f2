// Launch shapes of the kernels in kernels/*.cu, and the few launchers that host files of the CUDA
// backend call besides the backend's own entries: the cuDNN convolution's layout helpers, the
// direct filter-gradient kernel and the module's probe. The backend's ops are CudaBackend's members,
// declared from backend/backend_ops.h and defined beside their kernels.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#include "backend/backend.h"

namespace kiln::backend {

/// Threads per block of the one-dimensional kernels.
constexpr int kBlock = 256;

/// Blocks for `n` elements at kBlock threads each; grid-stride loops cover the rest.
inline unsigned grid_for(int64_t n) {
  const int64_t blocks = (n + kBlock - 1) / kBlock;
  return static_cast<unsigned>(blocks < 1 ? 1 : (blocks > (1 << 20) ? (1 << 20) : blocks));
}

namespace kernels {

// ---- memory.cu ----
/// out[c, r] = in[r, c] for in [rows, cols].
void transpose(DType dtype, const void* in, void* out, int64_t rows, int64_t cols, cudaStream_t s);
/// out[b, c, r] = in[b, r, c] for in [batch, rows, cols]: NHWC [N, H*W, C] <-> NCHW [N, C, H*W].
void transpose_batch(DType dtype, const void* in, void* out, int64_t batch, int64_t rows, int64_t cols, cudaStream_t s);
/// xp [N, HP, WP, C] = x [N, H, W, C] placed at (top, left), zeros elsewhere (rows past HP dropped).
void pad_nhwc(DType dtype, const void* x, void* xp, int64_t N, int64_t H, int64_t W, int64_t C, int64_t HP, int64_t WP,
              int64_t top, int64_t left, cudaStream_t s);
/// dx [N, H, W, C] = dxp [N, HP, WP, C] at (top, left); cells outside dxp give 0.
void crop_nhwc(DType dtype, const void* dxp, void* dx, int64_t N, int64_t H, int64_t W, int64_t C, int64_t HP,
               int64_t WP, int64_t top, int64_t left, cudaStream_t s);
/// A do-nothing kernel: cudaFuncGetAttributes on it tells whether this build has code for a GPU.
const void* probe_kernel();

// ---- elementwise.cu ----
/// y[r, c] = y[r, c] + bias[c] (bias may be null), then max(., 0) when `relu`, for y [rows, cols]:
/// a convolution's bias and ReLU in one pass when cuDNN does not fuse them.
void bias_relu(DType dtype, void* y, const void* bias, bool relu, int64_t rows, int64_t cols, cudaStream_t s);

// ---- conv_direct.cu ----
/// Whether the direct forward kernel serves this geometry (float32 or 16-bit, C < 8, KH*KW*C of at
/// most 64).
bool conv_direct_forward_fits(DType dtype, const Conv2dGeometry& g);
/// y [N, OH, OW, F] = relu?(conv(x, w) + bias) (bias may be null), w in our [KH, KW, C, F] layout.
void conv_direct_forward(DType dtype, const Conv2dGeometry& g, const void* x, const void* w, const void* bias,
                         bool relu, void* y, cudaStream_t s);

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

// ---- conv_wgrad_mma.cu ----
/// Whether the tensor-core filter-and-bias gradient kernel serves this dtype, geometry and the
/// current device (float16 or bfloat16, KH*KW*C + 1 of at most 32, F of at most 64, compute
/// capability 8.0 or newer).
bool conv_wgrad_mma_fits(DType dtype, const Conv2dGeometry& g);
/// The number of partial sums it writes (row slices of the N*OH*OW output pixels).
int64_t conv_wgrad_mma_blocks(const Conv2dGeometry& g);
/// As conv_wgrad_partial, for float16 and bfloat16 inputs, with float partials (products summed in
/// float on tensor cores).
void conv_wgrad_mma_partial(DType dtype, const Conv2dGeometry& g, const void* x, const void* dy, const void* relu_y,
                            float* partial_w, float* partial_b, cudaStream_t s);

}  // namespace kernels
}  // namespace kiln::backend
