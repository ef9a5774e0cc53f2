// Convolution forward for layers with few input channels and taps (C < 8, K = KH*KW*C of at most
// 64: the first layer on RGB images), NHWC, with the bias and the ReLU fused in:
//   y[r, f] = relu?(sum_k patch(r, k) * w[k, f] + b[f]),
// r over the N*OH*OW output pixels, k = (kh*KW + kw)*C + c (the kernel layout [KH, KW, C, F]).
// Why our own: cuDNN runs such layers on a kernel without tensor cores (the taps do not fill its
// tiles) that was the largest kernel of the seed model's mixed-precision step, in float32 as slow,
// and zero channels to reach its tensor-core kernels made it slower (bench/README.md).
// How: one thread per four output pixels and chunk of FT filters. The chunk's weights ([K][FT], in
// accumulate_t) sit in shared memory and every thread of a warp reads the same one at a time (a
// broadcast), each read serving four pixels' products. Taps are summed in k order, the bias added
// last, each output rounded once; a tap in the padding reads 0 (TensorFlow's asymmetric "same"
// padding needs no padded copy). One thread writes each output: deterministic. float32 and the
// 16-bit types; float64 stays with cuDNN.
// Shape letters: N batch, H/W input, C channels, KH/KW kernel, F filters, OH/OW output, R rows.
#include <cstdint>
#include <string>

#include "backend/cuda/check.h"
#include "backend/cuda/kernels.h"
#include "backend/elementwise_math.h"
#include "device_math.cuh"
#include "half_types.cuh"

namespace kiln::backend::kernels {

namespace {

constexpr int64_t kMaxTaps = 64;
constexpr int kPixels = 4;  // output pixels per thread: each weight read from shared memory serves four

template <typename T, int FT>
__global__ void __launch_bounds__(kBlock)
    conv_direct_forward_kernel(Conv2dGeometry g, const T* __restrict__ x, const T* __restrict__ w,
                               const T* __restrict__ bias, bool relu, T* __restrict__ y) {
  using A = accumulate_t<T>;
  __shared__ __align__(16) A ws[kMaxTaps * FT];
  __shared__ A bs[FT];
  const int K = static_cast<int>(g.KH * g.KW * g.C), F = static_cast<int>(g.F), f0 = static_cast<int>(blockIdx.y) * FT;
  for (int i = threadIdx.x; i < K * FT; i += blockDim.x) {
    const int k = i / FT, f = f0 + i % FT;
    ws[i] = f < F ? load_value(w[static_cast<int64_t>(k) * F + f]) : A(0);
  }
  for (int f = threadIdx.x; f < FT; f += blockDim.x) bs[f] = bias && f0 + f < F ? load_value(bias[f0 + f]) : A(0);
  __syncthreads();

  const int fn = F - f0 < FT ? F - f0 : FT;
  const int64_t R = g.N * g.OH * g.OW, OHW = g.OH * g.OW;
  // A thread's kPixels pixels are a block's width apart, so a warp's stores of one pixel slot cover
  // consecutive pixels.
  for (int64_t base = blockIdx.x * int64_t(kBlock) * kPixels; base < R; base += int64_t(gridDim.x) * kBlock * kPixels) {
    int64_t row[kPixels];  // input offset of the pixel's image (n * H * W * C)
    int ih0[kPixels], iw0[kPixels];
    bool live[kPixels];
#pragma unroll
    for (int p = 0; p < kPixels; ++p) {
      const int64_t r = base + p * kBlock + threadIdx.x, n = r / OHW, rem = r - n * OHW, oh = rem / g.OW,
                    ow = rem - oh * g.OW;
      live[p] = r < R;
      row[p] = n * g.H * g.W * g.C;
      ih0[p] = static_cast<int>(oh * g.stride_h - g.pad_top);
      iw0[p] = static_cast<int>(ow * g.stride_w - g.pad_left);
    }
    A acc[kPixels][FT];
#pragma unroll
    for (int p = 0; p < kPixels; ++p)
#pragma unroll
      for (int f = 0; f < FT; ++f) acc[p][f] = A(0);
    const A* wk = ws;
    for (int kh = 0; kh < g.KH; ++kh)
      for (int kw = 0; kw < g.KW; ++kw) {
        const T* px[kPixels];
        bool in[kPixels];
#pragma unroll
        for (int p = 0; p < kPixels; ++p) {
          const int ih = ih0[p] + kh, iw = iw0[p] + kw;
          in[p] = live[p] && ih >= 0 && ih < g.H && iw >= 0 && iw < g.W;
          px[p] = x + row[p] + (static_cast<int64_t>(ih) * g.W + iw) * g.C;
        }
        for (int c = 0; c < g.C; ++c, wk += FT) {
          // A tap in the padding reads 0, as the CPU's patches hold (0 * w is added).
          A v[kPixels];
#pragma unroll
          for (int p = 0; p < kPixels; ++p) v[p] = in[p] ? load_value(px[p][c]) : A(0);
#pragma unroll
          for (int f = 0; f < FT; ++f) {
            const A wf = wk[f];
#pragma unroll
            for (int p = 0; p < kPixels; ++p) acc[p][f] += v[p] * wf;
          }
        }
      }
#pragma unroll
    for (int p = 0; p < kPixels; ++p) {
      if (!live[p]) continue;
      alignas(16) T out[FT];
#pragma unroll
      for (int f = 0; f < FT; ++f) {
        const A v = acc[p][f] + bs[f];
        out[f] = store_value<T>(relu ? math::apply_unary<UnaryOp::Relu>(v) : v);
      }
      T* dst = y + (base + p * kBlock + threadIdx.x) * F + f0;
      // Whole 16-byte stores where the chunk is full and aligned, else one element at a time.
      if (fn == FT && reinterpret_cast<std::uintptr_t>(dst) % 16 == 0) {
#pragma unroll
        for (int i = 0; i < int(FT * sizeof(T) / 16); ++i)
          reinterpret_cast<uint4*>(dst)[i] = reinterpret_cast<const uint4*>(out)[i];
      } else {
        for (int f = 0; f < fn; ++f) dst[f] = out[f];
      }
    }
  }
}

template <typename T, int FT>
void launch(const Conv2dGeometry& g, const void* x, const void* w, const void* bias, bool relu, void* y,
            cudaStream_t s) {
  const int64_t R = g.N * g.OH * g.OW;
  const dim3 grid(grid_for((R + kPixels - 1) / kPixels), static_cast<unsigned>((g.F + FT - 1) / FT));
  conv_direct_forward_kernel<T, FT><<<grid, kBlock, 0, s>>>(g, static_cast<const T*>(x), static_cast<const T*>(w),
                                                            static_cast<const T*>(bias), relu, static_cast<T*>(y));
}

}  // namespace

// Fewer than 8 channels: fewer than a 16-byte vector of 16-bit values, where cuDNN has no
// tensor-core kernel; wider layers (1x1 convolutions over 8 to 64 channels also have few taps) stay
// with cuDNN's products.
bool conv_direct_forward_fits(DType dtype, const Conv2dGeometry& g) {
  const bool type_ok = dtype == DType::Float32 || dtype == DType::Float16 || dtype == DType::BFloat16;
  return type_ok && g.C < 8 && g.KH * g.KW * g.C <= kMaxTaps && g.KH * g.KW * g.C > 0 && g.F > 0;
}

void conv_direct_forward(DType dtype, const Conv2dGeometry& g, const void* x, const void* w, const void* bias,
                         bool relu, void* y, cudaStream_t s) {
  if (!conv_direct_forward_fits(dtype, g))
    throw Error("conv2d",
                "the direct forward kernel takes float32, float16 or bfloat16, fewer than 8 channels and "
                "KH*KW*C of at most " +
                    std::to_string(kMaxTaps) + " (check conv_direct_forward_fits first)");
  if (g.N * g.OH * g.OW == 0) return;
  with_cuda_compute_type(dtype, "conv2d", [&](auto tag) {
    using T = decltype(tag);
    if constexpr (sizeof(T) <= 4) {
      // Chunks of 16 filters (8 where F is at most 8: fewer leave no accumulators idle).
      if (g.F <= 8)
        launch<T, 8>(g, x, w, bias, relu, y, s);
      else
        launch<T, 16>(g, x, w, bias, relu, y, s);
    }
  });
  KILN_LAUNCH_CHECK("conv_direct_forward_kernel");
}

}  // namespace kiln::backend::kernels
