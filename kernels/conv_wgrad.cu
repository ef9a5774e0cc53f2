// Convolution filter and bias gradients for small filters, NHWC:
//   dw[k, f] = sum_r patch(r, k) * dz(r, f),   db[f] = sum_r dz(r, f),
// r over the N*OH*OW output pixels, k = (kh*KW + kw)*C + c (the kernel layout [KH, KW, C, F]), and
// dz = dy, or dy * relu'(relu_y) when the layer's ReLU is fused in (its backward is applied here,
// on the fly, instead of by a pass that writes dz out).
// Why our own: cuDNN's deterministic filter-gradient algorithm is slow when few input channels make
// K small (the seed's first layer: K = 27, F = 32; 2.07 ms of a 4.0 ms step at batch 2048), and a
// separate ReLU backward and bias sum cost two more passes over the layer's output.
// How: each block takes a slice of rows. Per tile of rows it stages the patches [rows, KP] and dz
// [rows, FP] in shared memory (KP, FP: K + 1 for the bias column of ones, and F, rounded up to
// powers of two). A group of (KP/8)*(FP/8) threads covers the whole [KP, FP] product with an 8x8
// register tile per thread; the block's groups take interleaved rows of the tile, and at the end
// add their tiles in group order. Each block writes one partial per slice and sum_rows adds the
// slices in a fixed order: results are deterministic.
// Staging dz is the bandwidth-heavy part (dy and relu_y: two reads of the layer's output). Where
// they allow 16-byte copies (float32, F a power of two >= 8, aligned), they are copied into shared
// memory asynchronously (cp.async) one tile ahead, double-buffered, so the copies of the next tile
// overlap the products of this one and no registers hold them in flight; the ReLU mask is then
// applied as the products read the tile. Otherwise each thread stages a round of loads at a time.
// float32 and float64 only (conv_wgrad_direct_fits says no to the 16-bit types).
// Shape letters: N batch, H/W input, C channels, KH/KW kernel, F filters, OH/OW output, R rows.
#include <cuda_pipeline.h>

#include <cstdint>

#include "backend/cuda/check.h"
#include "backend/cuda/kernels.h"
#include "backend/dtype_dispatch.h"
#include "backend/elementwise_math.h"
#include "conv_wgrad_rows.cuh"
#include "device_math.cuh"

namespace kiln::backend::kernels {

namespace {

constexpr int kTile = 8;                          // a thread's register tile is kTile x kTile
constexpr int kMaxPadded = 64;                    // largest KP and FP
constexpr std::size_t kSharedBudget = 44 * 1024;  // under the 48 KiB default dynamic limit
constexpr int64_t kMaxSlices = 1024;
constexpr int kInFlight = 8;  // loads each thread issues before waiting

// The padded extents and the tile of rows staged at a time, for one geometry and dtype.
struct WgradShape {
  int K = 0, KB = 0, F = 0, kp_log = 0, fp_log = 0, tile_rows = 0;
  bool async = false;  // dz tiles copied by cp.async, double-buffered, with relu_y beside them
  __host__ __device__ int KP() const { return 1 << kp_log; }
  __host__ __device__ int FP() const { return 1 << fp_log; }
};

int log2_ceil(int v) {
  int l = 0;
  while ((1 << l) < v) ++l;
  return l;
}

std::size_t shared_bytes(const WgradShape& s, std::size_t element) {
  const std::size_t dz_tiles = s.async ? 4 : 1;  // async: dy and relu_y, two buffers each
  return static_cast<std::size_t>(s.tile_rows) * (s.KP() + dz_tiles * s.FP()) * element +
         static_cast<std::size_t>(s.KP()) * (sizeof(long long) + 2 * sizeof(int)) +
         static_cast<std::size_t>(s.tile_rows) * (sizeof(long long) + 2 * sizeof(int));
}

// tile_rows = 0 when the geometry does not fit this kernel. The bias column is always there: the
// shape then does not depend on whether the bias is wanted (an unwanted column costs its write).
WgradShape shape_of(const Conv2dGeometry& g, std::size_t element, bool async) {
  WgradShape s;
  s.K = static_cast<int>(g.KH * g.KW * g.C);
  s.KB = s.K + 1;
  s.F = static_cast<int>(g.F);
  s.async = async;
  if (g.KH * g.KW * g.C + 1 > kMaxPadded || g.F > kMaxPadded || s.K <= 0 || s.F <= 0) return s;
  s.kp_log = log2_ceil(s.KB < kTile ? kTile : s.KB);
  s.fp_log = log2_ceil(s.F < kTile ? kTile : s.F);
  for (int rows = 128; rows >= 32; rows /= 2) {
    s.tile_rows = rows;
    // The final reduction reuses the staging area for the [KP, FP] block sum.
    if (shared_bytes(s, element) <= kSharedBudget && rows * (s.KP() + s.FP()) >= s.KP() * s.FP()) return s;
  }
  s.tile_rows = 0;
  return s;
}

// Rows per block: a multiple of every tile size, so slices do not depend on the staging path.
constexpr int64_t kSliceGrain = 128;

int64_t rows_per_slice(const Conv2dGeometry& g) { return wgrad_rows_per_slice(g, kSliceGrain, kMaxSlices); }

// Eight consecutive shared-memory values (16-byte aligned) in two or four vector loads.
__device__ inline void load8(const float* p, float (&v)[kTile]) {
  const float4 a = *reinterpret_cast<const float4*>(p), b = *reinterpret_cast<const float4*>(p + 4);
  v[0] = a.x, v[1] = a.y, v[2] = a.z, v[3] = a.w, v[4] = b.x, v[5] = b.y, v[6] = b.z, v[7] = b.w;
}
__device__ inline void load8(const double* p, double (&v)[kTile]) {
#pragma unroll
  for (int i = 0; i < kTile; i += 2) {
    const double2 a = *reinterpret_cast<const double2*>(p + i);
    v[i] = a.x, v[i + 1] = a.y;
  }
}

// Column markers of the patch table: a real input tap has kh >= 0.
constexpr int kOnesColumn = -1;  // the bias column: every row contributes 1
constexpr int kZeroColumn = -2;  // padding up to KP

template <typename T, bool kAsync>
__global__ void __launch_bounds__(kBlock, sizeof(T) == 4 ? 2 : 1)
    conv_wgrad_kernel(Conv2dGeometry g, WgradShape s, const T* __restrict__ x, const T* __restrict__ dy,
                      const T* __restrict__ relu_y, int64_t rows_per_slice, T* __restrict__ partial_w,
                      T* __restrict__ partial_b) {
  extern __shared__ __align__(16) unsigned char smem[];
  const int KP = s.KP(), FP = s.FP(), TR = s.tile_rows;
  T* patch = reinterpret_cast<T*>(smem);                                             // [TR][KP]
  T* dzs = patch + TR * KP;                                                          // [TR][FP], async: [2][TR][FP]
  T* ys = dzs + (kAsync ? 2 : 1) * TR * FP;                                          // async: relu_y [2][TR][FP]
  long long* koff = reinterpret_cast<long long*>(dzs + (kAsync ? 4 : 1) * TR * FP);  // [KP] offset of tap k
  long long* rbase = koff + KP;                                                      // [TR] input offset of row rr
  int* tap_h = reinterpret_cast<int*>(rbase + TR);                                   // [KP] kh, or a column marker
  int* tap_w = tap_h + KP;                                                           // [KP] kw
  int* row_h = tap_w + KP;  // [TR] first input row of the window
  int* row_w = row_h + TR;  // [TR] first input column

  for (int k = threadIdx.x; k < KP; k += blockDim.x) {
    if (k < s.K) {
      const int c = k % int(g.C), kw = (k / int(g.C)) % int(g.KW), kh = k / int(g.C * g.KW);
      koff[k] = (static_cast<long long>(kh) * g.W + kw) * g.C + c;
      tap_h[k] = kh;
      tap_w[k] = kw;
    } else {
      koff[k] = 0;
      tap_h[k] = k < s.KB ? kOnesColumn : kZeroColumn;
      tap_w[k] = 0;
    }
  }

  const int tiles_f = FP / kTile, per_group = (KP / kTile) * tiles_f, groups = kBlock / per_group;
  const int group = threadIdx.x / per_group, lane = threadIdx.x % per_group;
  const int k0 = (lane / tiles_f) * kTile, f0 = (lane % tiles_f) * kTile;
  const bool computes = group < groups;  // threads past the last whole group only stage

  T acc[kTile][kTile];
#pragma unroll
  for (int i = 0; i < kTile; ++i)
#pragma unroll
    for (int j = 0; j < kTile; ++j) acc[i][j] = T(0);

  const int64_t R = g.N * g.OH * g.OW;
  const int64_t r0 = blockIdx.x * rows_per_slice, r1 = R < r0 + rows_per_slice ? R : r0 + rows_per_slice;
  // Async: queues the copies of the dy (and relu_y) rows [t, t + TR) into buffer `buf`, as one
  // commit group (an empty group past the slice's end keeps the group count per tile fixed).
  const auto issue = [&](int64_t t, int buf) {
    if (t < r1) {
      const int n4 = static_cast<int>((r1 - t < TR ? r1 - t : TR) * s.F / 4);
      for (int v = threadIdx.x; v < n4; v += kBlock) {
        __pipeline_memcpy_async(dzs + buf * TR * FP + 4 * v, dy + t * s.F + 4 * v, 16);
        if (relu_y) __pipeline_memcpy_async(ys + buf * TR * FP + 4 * v, relu_y + t * s.F + 4 * v, 16);
      }
    }
    __pipeline_commit();
  };
  if (kAsync) issue(r0, 0);
  int buf = 0;
  for (int64_t t0 = r0; t0 < r1; t0 += TR, buf ^= 1) {
    const int rows = static_cast<int>(r1 - t0 < TR ? r1 - t0 : TR);
    if (kAsync) issue(t0 + TR, buf ^ 1);  // the buffer the last tile used: every thread is past it
    wgrad_window_origins(g, t0, rows, row_h, row_w, rbase);
    __syncthreads();
    // Each thread stages kInFlight values per round: all loads of a round are issued before any
    // store, so their latencies overlap (one at a time, staging was latency-bound).
    for (int base = 0; base < TR * KP; base += kInFlight * kBlock) {
      T v[kInFlight];
#pragma unroll
      for (int u = 0; u < kInFlight; ++u) {
        const int i = base + u * kBlock + int(threadIdx.x), rr = i >> s.kp_log, k = i & (KP - 1);
        v[u] = T(0);
        if (rr < rows) {
          const int kh = tap_h[k];
          if (kh >= 0) {
            const int ih = row_h[rr] + kh, iw = row_w[rr] + tap_w[k];
            if (ih >= 0 && ih < g.H && iw >= 0 && iw < g.W) v[u] = x[rbase[rr] + koff[k]];
          } else if (kh == kOnesColumn) {
            v[u] = T(1);
          }
        }
      }
#pragma unroll
      for (int u = 0; u < kInFlight; ++u) {
        const int i = base + u * kBlock + int(threadIdx.x);
        if (i < TR * KP) patch[i] = v[u];
      }
    }
    for (int base = 0; !kAsync && base < TR * FP; base += kInFlight * kBlock) {
      T v[kInFlight], keep[kInFlight];
#pragma unroll
      for (int u = 0; u < kInFlight; ++u) {
        const int i = base + u * kBlock + int(threadIdx.x), rr = i >> s.fp_log, f = i & (FP - 1);
        v[u] = T(0);
        keep[u] = T(1);
        if (rr < rows && f < s.F) {
          const int64_t at = (t0 + rr) * s.F + f;
          v[u] = dy[at];
          if (relu_y) keep[u] = math::derivative<UnaryOp::Relu>(relu_y[at], relu_y[at]);  // unary_backward's rule
        }
      }
#pragma unroll
      for (int u = 0; u < kInFlight; ++u) {
        const int i = base + u * kBlock + int(threadIdx.x);
        if (i < TR * FP) dzs[i] = v[u] * keep[u];
      }
    }
    if (kAsync) __pipeline_wait_prior(1);  // this tile's copies (the next tile's may still run)
    __syncthreads();
    const T* dz_tile = dzs + (kAsync ? buf * TR * FP : 0);
    const T* y_tile = kAsync && relu_y ? ys + buf * TR * FP : nullptr;
    if (computes)
      for (int rr = group; rr < rows; rr += groups) {
        T a[kTile], b[kTile];
        load8(patch + rr * KP + k0, a);
        load8(dz_tile + rr * FP + f0, b);
        if (y_tile) {  // the ReLU backward, unary_backward's rule: dy * relu'(y)
          T m[kTile];
          load8(y_tile + rr * FP + f0, m);
#pragma unroll
          for (int j = 0; j < kTile; ++j) b[j] *= math::derivative<UnaryOp::Relu>(m[j], m[j]);
        }
#pragma unroll
        for (int i = 0; i < kTile; ++i)
#pragma unroll
          for (int j = 0; j < kTile; ++j) acc[i][j] += a[i] * b[j];
      }
    __syncthreads();
  }

  // The groups' tiles, added in group order into the staging area, then the block's partial.
  T* block_sum = patch;  // [KP][FP]
  for (int q = 0; q < groups; ++q) {
    if (computes && group == q)
#pragma unroll
      for (int i = 0; i < kTile; ++i)
#pragma unroll
        for (int j = 0; j < kTile; ++j) {
          T& cell = block_sum[(k0 + i) * FP + f0 + j];
          cell = q == 0 ? acc[i][j] : cell + acc[i][j];
        }
    __syncthreads();
  }
  const int64_t KF = int64_t(s.K) * s.F;
  for (int o = threadIdx.x; o < KF; o += blockDim.x)
    partial_w[blockIdx.x * KF + o] = block_sum[(o / s.F) * FP + o % s.F];
  if (partial_b)
    for (int f = threadIdx.x; f < s.F; f += blockDim.x)
      partial_b[blockIdx.x * int64_t(s.F) + f] = block_sum[s.K * FP + f];
}

}  // namespace

bool conv_wgrad_direct_fits(DType dtype, const Conv2dGeometry& g) {
  // float32 and float64 only: float16 and bfloat16 filter gradients go to conv_wgrad_mma.cu's
  // tensor-core kernel or to cuDNN, which sum 16-bit products in float (this kernel would stage and
  // multiply them as its own type, on the FMA units).
  if (dtype != DType::Float32 && dtype != DType::Float64) return false;
  return shape_of(g, dtype_size(dtype), false).tile_rows > 0;
}

int64_t conv_wgrad_blocks(DType, const Conv2dGeometry& g) {
  const int64_t R = g.N * g.OH * g.OW, rows = rows_per_slice(g);
  return (R + rows - 1) / rows;  // every block has rows
}

void conv_wgrad_partial(DType dtype, const Conv2dGeometry& g, const void* x, const void* dy, const void* relu_y,
                        void* partial_w, void* partial_b, cudaStream_t st) {
  const auto aligned16 = [](const void* p) { return reinterpret_cast<std::uintptr_t>(p) % 16 == 0; };
  // cp.async copies 16 bytes: float32 rows of a power-of-two F >= 8 fill the padded tile exactly.
  const bool async = dtype == DType::Float32 && g.F >= kTile && (g.F & (g.F - 1)) == 0 && aligned16(dy) &&
                     (!relu_y || aligned16(relu_y));
  WgradShape s = shape_of(g, dtype_size(dtype), async);
  if (async && s.tile_rows == 0) s = shape_of(g, dtype_size(dtype), false);
  if (s.tile_rows == 0)
    throw Error("conv2d_backward_filter",
                "the direct kernel got a geometry it does not serve; expected "
                "KH*KW*C + 1 and F of at most 64 (check conv_wgrad_direct_fits first)");
  const int64_t rows = rows_per_slice(g), blocks = conv_wgrad_blocks(dtype, g);
  const std::size_t shared = shared_bytes(s, dtype_size(dtype));
  with_float_type(dtype, "conv2d_backward_filter", [&](auto tag) {
    using T = decltype(tag);
    const auto args = [&](auto kernel) {
      kernel<<<static_cast<unsigned>(blocks), kBlock, shared, st>>>(
          g, s, static_cast<const T*>(x), static_cast<const T*>(dy), static_cast<const T*>(relu_y), rows,
          static_cast<T*>(partial_w), static_cast<T*>(partial_b));
    };
    if (s.async)
      args(conv_wgrad_kernel<T, true>);
    else
      args(conv_wgrad_kernel<T, false>);
  });
  KILN_LAUNCH_CHECK("conv_wgrad_kernel");
}

}  // namespace kiln::backend::kernels
