// Convolution filter and bias gradients of few-channel layers in float16 and bfloat16, on tensor
// cores, NHWC:
//   dw[k, f] = sum_r patch(r, k) * dz(r, f),   db[f] = sum_r dz(r, f),
// r over the N*OH*OW output pixels, k = (kh*KW + kw)*C + c (the kernel layout [KH, KW, C, F]), and
// dz = dy, or dy * relu'(relu_y) when the layer's ReLU is fused in.
// Why our own: for a first layer (C = 3: K = 27) cuDNN's 16-bit filter gradient needs the ReLU
// backward written out first and the bias sum in a pass of its own, three passes over the layer's
// output where this kernel makes one; the float32 twin (conv_wgrad.cu) computes on the FMA units,
// slower than cuDNN's tensor cores for 16-bit inputs.
// How: each block takes a slice of rows. Per tile of kTileRows rows it stages the patches [rows, KP]
// and dz [rows, FP] in shared memory as 16-bit values (exact: dz is dy times 0 or 1); the patch
// columns past the taps (ones at k = K for the bias, zeros up to KP, a multiple of 16) are written
// once, and dz's columns past F are zeros. Staging is what the kernel's time goes to (the products
// are a few tensor-core instructions per tile), so it moves whole runs: a window's kernel row is
// KW*C consecutive values of x in NHWC, and dz goes eight filters at a time (one 16-byte load of dy
// and of relu_y). Warp w multiplies its 16 rows of the tile, patch^T [KP, 16] x dz [16, FP], into
// (KP/16) x (FP/16) float accumulator fragments (wmma, 16x16x16, products summed in float). At the
// end the warps' sums are added in warp order and each block writes one float partial; sum_rows
// adds the slices in a fixed order: results are deterministic.
// Needs compute capability 8.0 (bfloat16 tensor cores); conv_wgrad_mma_fits says no below it.
// Shape letters: N batch, H/W input, C channels, KH/KW kernel, F filters, OH/OW output, R rows.
#include <mma.h>

#include <atomic>
#include <cstdint>

#include "backend/cuda/check.h"
#include "backend/cuda/kernels.h"
#include "backend/elementwise_math.h"
#include "conv_wgrad_rows.cuh"
#include "device_math.cuh"

namespace kiln::backend::kernels {

namespace {

constexpr int kFrag = 16;                   // wmma's m = n = k
constexpr int kWarps = kBlock / 32;         // each takes kFrag rows of a tile
constexpr int kTileRows = kWarps * kFrag;   // rows staged at a time
constexpr int kMaxKB = 2, kMaxFB = 4;       // KP <= 32, FP <= 64: at most 8 accumulators a warp
constexpr int64_t kSliceGrain = kTileRows;  // rows per block: a multiple of the tile
constexpr int64_t kMaxSlices = 1024;

int round16(int64_t v) { return static_cast<int>((v + kFrag - 1) / kFrag * kFrag); }

int64_t rows_per_slice(const Conv2dGeometry& g) { return wgrad_rows_per_slice(g, kSliceGrain, kMaxSlices); }

// Shared memory of a block: the two staged tiles, whose bytes the warps' final sum [KP, FP] in float
// reuses, then the row tables.
__host__ __device__ constexpr std::size_t tiles_bytes(int KP, int FP) {
  const std::size_t staged = std::size_t(kTileRows) * (KP + FP) * 2, sum = std::size_t(KP) * FP * sizeof(float);
  return staged > sum ? staged : sum;
}
std::size_t shared_bytes(int KP, int FP) {
  return tiles_bytes(KP, FP) + std::size_t(kTileRows) * (sizeof(long long) + 2 * sizeof(int));
}

template <typename T, int KB, int FB>
__global__ void __launch_bounds__(kBlock)
    conv_wgrad_mma_kernel(Conv2dGeometry g, int K, int F, const T* __restrict__ x, const T* __restrict__ dy,
                          const T* __restrict__ relu_y, bool vectors, int64_t rows_per_slice,
                          float* __restrict__ partial_w, float* __restrict__ partial_b) {
#if __CUDA_ARCH__ >= 800
  using namespace nvcuda;
  constexpr int KP = KB * kFrag, FP = FB * kFrag;
  extern __shared__ __align__(32) unsigned char smem[];
  T* patch = reinterpret_cast<T*>(smem);                                        // [kTileRows][KP]
  T* dz = patch + kTileRows * KP;                                               // [kTileRows][FP]
  long long* rbase = reinterpret_cast<long long*>(smem + tiles_bytes(KP, FP));  // [kTileRows] input offset of row rr
  int* row_h = reinterpret_cast<int*>(rbase + kTileRows);  // [kTileRows] first input row of the window
  int* row_w = row_h + kTileRows;                          // [kTileRows] first input column
  const T zero = convert_element<T>(0.0f);

  // The columns past the taps never change: the bias column of ones, then zeros up to KP.
  for (int i = threadIdx.x; i < kTileRows * (KP - K); i += blockDim.x) {
    const int rr = i / (KP - K), k = K + i % (KP - K);
    patch[rr * KP + k] = k == K ? convert_element<T>(1.0f) : zero;
  }

  wmma::fragment<wmma::accumulator, kFrag, kFrag, kFrag, float> acc[KB][FB];
#pragma unroll
  for (int i = 0; i < KB; ++i)
#pragma unroll
    for (int j = 0; j < FB; ++j) wmma::fill_fragment(acc[i][j], 0.0f);

  const int warp = threadIdx.x / 32, C = static_cast<int>(g.C), KW = static_cast<int>(g.KW);
  const int run = KW * C;  // one kernel row of a window: KW*C consecutive values of x in NHWC
  const int64_t R = g.N * g.OH * g.OW;
  const int64_t r0 = blockIdx.x * rows_per_slice, r1 = R < r0 + rows_per_slice ? R : r0 + rows_per_slice;
  for (int64_t t0 = r0; t0 < r1; t0 += kTileRows) {
    const int rows = static_cast<int>(r1 - t0 < kTileRows ? r1 - t0 : kTileRows);
    wgrad_window_origins(g, t0, kTileRows, row_h, row_w, rbase);
    __syncthreads();
    // Patches, one kernel row (kh) of one window per item: taps outside the input and rows past the
    // slice's end are 0 (their dz is 0 too, but a stale inf or NaN times 0 would not be).
    for (int item = threadIdx.x; item < kTileRows * int(g.KH); item += blockDim.x) {
      const int rr = item / int(g.KH), kh = item - rr * int(g.KH), ih = row_h[rr] + kh;
      T* out = patch + rr * KP + kh * run;
      const bool row_in = rr < rows && ih >= 0 && ih < g.H;
      const T* in = x + rbase[rr] + static_cast<long long>(kh) * g.W * g.C;
      for (int kw = 0; kw < KW; ++kw) {
        const int iw = row_w[rr] + kw;
        const bool in_range = row_in && iw >= 0 && iw < g.W;
        for (int c = 0; c < C; ++c) out[kw * C + c] = in_range ? in[kw * C + c] : zero;
      }
    }
    // dz = dy * relu'(relu_y), unary_backward's rule, exact in T (a factor of 0 or 1); eight
    // filters per item, in one 16-byte load of each operand where `vectors` says they allow it.
    for (int item = threadIdx.x; item < kTileRows * (FP / 8); item += blockDim.x) {
      const int rr = item / (FP / 8), f0 = (item - rr * (FP / 8)) * 8;
      T v[8], y[8];
      const int64_t at = (t0 + rr) * F + f0;
      if (vectors && rr < rows && f0 < F) {
        *reinterpret_cast<uint4*>(v) = *reinterpret_cast<const uint4*>(dy + at);
        if (relu_y) *reinterpret_cast<uint4*>(y) = *reinterpret_cast<const uint4*>(relu_y + at);
      } else {
#pragma unroll
        for (int e = 0; e < 8; ++e) {
          const bool in = rr < rows && f0 + e < F;
          v[e] = in ? dy[at + e] : zero;
          if (relu_y) y[e] = in ? relu_y[at + e] : zero;
        }
      }
      if (relu_y)
#pragma unroll
        for (int e = 0; e < 8; ++e) {
          const float ye = load_value(y[e]);
          v[e] = store_value<T>(load_value(v[e]) * math::derivative<UnaryOp::Relu>(ye, ye));
        }
      *reinterpret_cast<uint4*>(dz + rr * FP + f0) = *reinterpret_cast<const uint4*>(v);
    }
    __syncthreads();
    // Rows of this warp past the slice's end are zeros: they add nothing.
    const int wr = warp * kFrag;
#pragma unroll
    for (int i = 0; i < KB; ++i) {
      wmma::fragment<wmma::matrix_a, kFrag, kFrag, kFrag, T, wmma::col_major> a;  // patch^T rows k, cols r
      wmma::load_matrix_sync(a, patch + wr * KP + i * kFrag, KP);
#pragma unroll
      for (int j = 0; j < FB; ++j) {
        wmma::fragment<wmma::matrix_b, kFrag, kFrag, kFrag, T, wmma::row_major> b;  // dz rows r, cols f
        wmma::load_matrix_sync(b, dz + wr * FP + j * kFrag, FP);
        wmma::mma_sync(acc[i][j], a, b, acc[i][j]);
      }
    }
    __syncthreads();
  }

  // The warps' sums, added in warp order into the staging area, then the block's partial.
  float* block_sum = reinterpret_cast<float*>(smem);  // [KP][FP]
  for (int q = 0; q < kWarps; ++q) {
    if (warp == q)
#pragma unroll
      for (int i = 0; i < KB; ++i)
#pragma unroll
        for (int j = 0; j < FB; ++j) {
          float* cell = block_sum + i * kFrag * FP + j * kFrag;
          if (q > 0) {
            wmma::fragment<wmma::accumulator, kFrag, kFrag, kFrag, float> sum;
            wmma::load_matrix_sync(sum, cell, FP, wmma::mem_row_major);
            for (int e = 0; e < sum.num_elements; ++e) acc[i][j].x[e] = sum.x[e] + acc[i][j].x[e];
          }
          wmma::store_matrix_sync(cell, acc[i][j], FP, wmma::mem_row_major);
        }
    __syncthreads();
  }
  const int64_t KF = int64_t(K) * F;
  for (int o = threadIdx.x; o < KF; o += blockDim.x) partial_w[blockIdx.x * KF + o] = block_sum[(o / F) * FP + o % F];
  if (partial_b)
    for (int f = threadIdx.x; f < F; f += blockDim.x) partial_b[blockIdx.x * int64_t(F) + f] = block_sum[K * FP + f];
#else
  __trap();  // conv_wgrad_mma_fits keeps devices below compute capability 8.0 away
#endif
}

// The compute capability's major number of the current device, read once per device.
int device_major() {
  int device = 0;
  KILN_CUDA_CHECK(cudaGetDevice(&device));
  constexpr int kDevices = 64;
  static std::atomic<int> majors[kDevices] = {};
  int major = device < kDevices ? majors[device].load(std::memory_order_relaxed) : 0;
  if (major == 0) {
    KILN_CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device));
    if (device < kDevices) majors[device].store(major, std::memory_order_relaxed);
  }
  return major;
}

}  // namespace

bool conv_wgrad_mma_fits(DType dtype, const Conv2dGeometry& g) {
  if (dtype != DType::Float16 && dtype != DType::BFloat16) return false;
  const int64_t K = g.KH * g.KW * g.C;
  return K > 0 && g.F > 0 && K + 1 <= kMaxKB * kFrag && g.F <= kMaxFB * kFrag && device_major() >= 8;
}

int64_t conv_wgrad_mma_blocks(const Conv2dGeometry& g) {
  const int64_t R = g.N * g.OH * g.OW, rows = rows_per_slice(g);
  return (R + rows - 1) / rows;  // every block has rows
}

void conv_wgrad_mma_partial(DType dtype, const Conv2dGeometry& g, const void* x, const void* dy, const void* relu_y,
                            float* partial_w, float* partial_b, cudaStream_t st) {
  if (!conv_wgrad_mma_fits(dtype, g))
    throw Error("conv2d_backward_filter",
                "the tensor-core kernel got a geometry or dtype it does not serve; expected float16 or bfloat16, "
                "KH*KW*C + 1 of at most 32 and F of at most 64 on compute capability 8.0 or newer (check "
                "conv_wgrad_mma_fits first)");
  const int K = static_cast<int>(g.KH * g.KW * g.C), F = static_cast<int>(g.F);
  const int KB = round16(K + 1) / kFrag, FB = round16(F) / kFrag;
  const int64_t rows = rows_per_slice(g), blocks = conv_wgrad_mma_blocks(g);
  const auto aligned16 = [](const void* p) { return reinterpret_cast<std::uintptr_t>(p) % 16 == 0; };
  const bool vectors = F % 8 == 0 && aligned16(dy) && (!relu_y || aligned16(relu_y));
  const std::size_t shared = shared_bytes(KB * kFrag, FB * kFrag);
  with_cuda_type(dtype, [&](auto tag) {
    using T = decltype(tag);
    if constexpr (is_half_v<T>) {
      const auto launch = [&](auto kernel) {
        kernel<<<static_cast<unsigned>(blocks), kBlock, shared, st>>>(
            g, K, F, static_cast<const T*>(x), static_cast<const T*>(dy), static_cast<const T*>(relu_y), vectors, rows,
            partial_w, partial_b);
      };
      // Each (KB, FB) its own kernel, so the accumulators stay in registers.
      switch (KB * 10 + FB) {
        case 11:
          return launch(conv_wgrad_mma_kernel<T, 1, 1>);
        case 12:
          return launch(conv_wgrad_mma_kernel<T, 1, 2>);
        case 13:
          return launch(conv_wgrad_mma_kernel<T, 1, 3>);
        case 14:
          return launch(conv_wgrad_mma_kernel<T, 1, 4>);
        case 21:
          return launch(conv_wgrad_mma_kernel<T, 2, 1>);
        case 22:
          return launch(conv_wgrad_mma_kernel<T, 2, 2>);
        case 23:
          return launch(conv_wgrad_mma_kernel<T, 2, 3>);
        default:
          return launch(conv_wgrad_mma_kernel<T, 2, 4>);
      }
    }
  });
  KILN_LAUNCH_CHECK("conv_wgrad_mma_kernel");
}

}  // namespace kiln::backend::kernels
