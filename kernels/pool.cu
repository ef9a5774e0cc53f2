// The pooling family, NHWC. Max pooling, forward: one thread per output cell. Backward, general:
// one thread per input cell, which visits the windows covering it and takes each window's gradient
// when it is that window's first maximal input (the CPU's and TensorFlow's rule). Gathering instead
// of scattering needs no atomics, so overlapping windows add in a fixed order (increasing oh, ow,
// as the CPU does). Backward, windows that do not overlap (stride >= window, the usual 2x2 stride
// 2): each input lies in at most one window, so one thread per output cell writes its whole window,
// with no race and no search of the neighbouring windows (the general kernel searches each covering
// window once per input cell). Index arithmetic is 32-bit when the tensors allow it: 64-bit
// division is many instructions on a GPU and bounded these kernels at large batches.
// A NaN beats every number and the first NaN of a window is its maximum (math::greater_or_nan, the
// CPU's rule): a window holding a NaN pools to NaN and its gradient goes to that NaN.
// cuDNN's pooling is not used: its tie rule is not specified.
// Average pooling: forward one thread per output cell, summing its window's cells inside the input
// in window order; backward one thread per input cell, gathering dy / count of the windows that
// cover it in increasing (oh, ow) order. These are the CPU's orders, so both give the same bits.
// Windows are walked with backend/window.h, as on the CPU: only their cells inside the input.
// float16 and bfloat16 are compared and summed in float (accumulate_t) and rounded once when stored;
// max pooling's outputs and gradients are copies of input elements, so they need no rounding.
// Shape letters: N batch, H/W input, C channels, KH/KW window, OH/OW output; I the index type.
#include <algorithm>
#include <cstdint>
#include <initializer_list>

#include "backend/cuda/check.h"
#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/kernels.h"
#include "backend/dtype_dispatch.h"
#include "backend/elementwise_math.h"
#include "backend/window.h"
#include "device_math.cuh"

namespace kiln::backend {

namespace {

using kernels::load_value;
using kernels::store_value;

// ---------------------------------------------------------------------------------------------
// kernels

// The geometry in the index type of the launch.
template <typename I>
struct PoolDims {
  I N, H, W, C, KH, KW, OH, OW, sh, sw, pt, pl;
  explicit PoolDims(const Pool2dGeometry& g)
      : N(I(g.N)),
        H(I(g.H)),
        W(I(g.W)),
        C(I(g.C)),
        KH(I(g.KH)),
        KW(I(g.KW)),
        OH(I(g.OH)),
        OW(I(g.OW)),
        sh(I(g.stride_h)),
        sw(I(g.stride_w)),
        pt(I(g.pad_top)),
        pl(I(g.pad_left)) {}
};

// Flat input index of the first maximum of window (n, oh, ow, c); -1 when it is all padding.
template <typename T, typename I>
__device__ I window_argmax(const PoolDims<I>& g, const T* x, I n, I oh, I ow, I c) {
  I best = -1;
  accumulate_t<T> best_value = 0;
  const auto hs = window::window_span(oh, g.sh, g.pt, g.KH, g.H);
  const auto ws = window::window_span(ow, g.sw, g.pl, g.KW, g.W);
  for (I ih = hs.begin; ih < hs.end; ++ih)
    for (I iw = ws.begin; iw < ws.end; ++iw) {
      const I i = ((n * g.H + ih) * g.W + iw) * g.C + c;
      const accumulate_t<T> v = load_value(x[i]);
      if (best < 0 || math::greater_or_nan(v, best_value)) {
        best = i;
        best_value = v;
      }
    }
  return best;
}

template <typename T, typename I>
__global__ void max_pool_forward_kernel(PoolDims<I> g, const T* x, T* y) {
  const I total = g.N * g.OH * g.OW * g.C;
  for (I o = I(blockIdx.x) * I(blockDim.x) + I(threadIdx.x); o < total; o += I(gridDim.x) * I(blockDim.x)) {
    const I c = o % g.C, ow = (o / g.C) % g.OW, oh = (o / (g.C * g.OW)) % g.OH, n = o / (g.C * g.OW * g.OH);
    const I i = window_argmax(g, x, n, oh, ow, c);
    y[o] = i < 0 ? store_value<T>(accumulate_t<T>(0)) : x[i];
  }
}

template <typename T, typename I>
__global__ void max_pool_backward_kernel(PoolDims<I> g, const T* x, const T* dy, T* dx) {
  const I total = g.N * g.H * g.W * g.C;
  for (I i = I(blockIdx.x) * I(blockDim.x) + I(threadIdx.x); i < total; i += I(gridDim.x) * I(blockDim.x)) {
    const I c = i % g.C, iw = (i / g.C) % g.W, ih = (i / (g.C * g.W)) % g.H, n = i / (g.C * g.W * g.H);
    const auto oh_range = window::covering_windows(ih, g.sh, g.pt, g.KH, g.OH);
    const auto ow_range = window::covering_windows(iw, g.sw, g.pl, g.KW, g.OW);
    accumulate_t<T> acc = 0;
    for (I oh = oh_range.begin; oh < oh_range.end; ++oh)
      for (I ow = ow_range.begin; ow < ow_range.end; ++ow)
        if (window_argmax(g, x, n, oh, ow, c) == i) acc += load_value(dy[((n * g.OH + oh) * g.OW + ow) * g.C + c]);
    dx[i] = store_value<T>(acc);
  }
}

// Non-overlapping windows: thread per output cell (n, oh, ow, c); dy to the window's first maximum,
// 0 to its other inputs. Inputs in no window are zeroed beforehand by the launcher.
template <typename T, typename I>
__global__ void max_pool_backward_disjoint_kernel(PoolDims<I> g, const T* x, const T* dy, T* dx) {
  const I total = g.N * g.OH * g.OW * g.C;
  for (I o = I(blockIdx.x) * I(blockDim.x) + I(threadIdx.x); o < total; o += I(gridDim.x) * I(blockDim.x)) {
    const I c = o % g.C, ow = (o / g.C) % g.OW, oh = (o / (g.C * g.OW)) % g.OH, n = o / (g.C * g.OW * g.OH);
    const I best = window_argmax(g, x, n, oh, ow, c);
    const T grad = dy[o];
    const auto hs = window::window_span(oh, g.sh, g.pt, g.KH, g.H);
    const auto ws = window::window_span(ow, g.sw, g.pl, g.KW, g.W);
    for (I ih = hs.begin; ih < hs.end; ++ih)
      for (I iw = ws.begin; iw < ws.end; ++iw) {
        const I i = ((n * g.H + ih) * g.W + iw) * g.C + c;
        dx[i] = i == best ? grad : store_value<T>(accumulate_t<T>(0));
      }
  }
}

// The same two kernels with a 16-byte pack of channels per thread (four float32 or eight 16-bit
// values; C a multiple of the pack, 16-byte aligned tensors): one 16-byte load per window cell
// instead of four or eight narrow ones. Why: at large batches pooling is bound by memory traffic,
// and narrow loads leave much of the bandwidth unused (bench/README.md has the figures). Each lane
// keeps its own first maximum, as window_argmax does, and outputs are copies of input elements.
template <typename T>
struct alignas(16) Pack {
  static constexpr int kLanes = 16 / int(sizeof(T));
  T lane[kLanes];
};

template <typename T, typename I>
__device__ void window_argmax_pack(const PoolDims<I>& g, const Pack<T>* x, I n, I oh, I ow, I cp,
                                   I (&best)[Pack<T>::kLanes], Pack<T>& best_value) {
  constexpr int L = Pack<T>::kLanes;
  const I CP = g.C / L;
  accumulate_t<T> best_key[L];
#pragma unroll
  for (int l = 0; l < L; ++l) {
    best[l] = -1;
    best_key[l] = 0;
    best_value.lane[l] = store_value<T>(accumulate_t<T>(0));
  }
  const auto hs = window::window_span(oh, g.sh, g.pt, g.KH, g.H);
  const auto ws = window::window_span(ow, g.sw, g.pl, g.KW, g.W);
  for (I ih = hs.begin; ih < hs.end; ++ih)
    for (I iw = ws.begin; iw < ws.end; ++iw) {
      const I i = ((n * g.H + ih) * g.W + iw) * CP + cp;
      const Pack<T> v = x[i];
#pragma unroll
      for (int l = 0; l < L; ++l) {
        const accumulate_t<T> key = load_value(v.lane[l]);
        if (best[l] < 0 || math::greater_or_nan(key, best_key[l])) {
          best[l] = i;
          best_key[l] = key;
          best_value.lane[l] = v.lane[l];
        }
      }
    }
}

template <typename T, typename I>
__global__ void max_pool_forward_pack_kernel(PoolDims<I> g, const Pack<T>* x, Pack<T>* y) {
  constexpr int L = Pack<T>::kLanes;
  const I CP = g.C / L, total = g.N * g.OH * g.OW * CP;
  for (I o = I(blockIdx.x) * I(blockDim.x) + I(threadIdx.x); o < total; o += I(gridDim.x) * I(blockDim.x)) {
    const I cp = o % CP, ow = (o / CP) % g.OW, oh = (o / (CP * g.OW)) % g.OH, n = o / (CP * g.OW * g.OH);
    I best[L];
    Pack<T> v;
    window_argmax_pack(g, x, n, oh, ow, cp, best, v);  // an all-padding window leaves 0, as the scalar kernel
    y[o] = v;
  }
}

template <typename T, typename I>
__global__ void max_pool_backward_disjoint_pack_kernel(PoolDims<I> g, const Pack<T>* x, const Pack<T>* dy,
                                                       Pack<T>* dx) {
  constexpr int L = Pack<T>::kLanes;
  const I CP = g.C / L, total = g.N * g.OH * g.OW * CP;
  for (I o = I(blockIdx.x) * I(blockDim.x) + I(threadIdx.x); o < total; o += I(gridDim.x) * I(blockDim.x)) {
    const I cp = o % CP, ow = (o / CP) % g.OW, oh = (o / (CP * g.OW)) % g.OH, n = o / (CP * g.OW * g.OH);
    I best[L];
    Pack<T> unused;
    window_argmax_pack(g, x, n, oh, ow, cp, best, unused);
    const Pack<T> grad = dy[o];
    const T zero = store_value<T>(accumulate_t<T>(0));
    const auto hs = window::window_span(oh, g.sh, g.pt, g.KH, g.H);
    const auto ws = window::window_span(ow, g.sw, g.pl, g.KW, g.W);
    for (I ih = hs.begin; ih < hs.end; ++ih)
      for (I iw = ws.begin; iw < ws.end; ++iw) {
        const I i = ((n * g.H + ih) * g.W + iw) * CP + cp;
        Pack<T> out;
#pragma unroll
        for (int l = 0; l < L; ++l) out.lane[l] = i == best[l] ? grad.lane[l] : zero;
        dx[i] = out;
      }
  }
}

// Zeroes the inputs of the disjoint backward that no window reads when windows start at 0 and step
// by their size: the bottom rows from `rows` on and, above them, the right columns from `cols` on
// (an odd size pooled by 2 leaves one of each). Thread per (n, strip cell, c).
template <typename T, typename I>
__global__ void zero_uncovered_strips_kernel(PoolDims<I> g, I rows, I cols, T* dx) {
  const I bottom = (g.H - rows) * g.W, per_image = bottom + rows * (g.W - cols);
  const I total = g.N * per_image * g.C;
  const T zero = store_value<T>(accumulate_t<T>(0));
  for (I o = I(blockIdx.x) * I(blockDim.x) + I(threadIdx.x); o < total; o += I(gridDim.x) * I(blockDim.x)) {
    const I c = o % g.C, p = (o / g.C) % per_image, n = o / (g.C * per_image);
    const I ih = p < bottom ? rows + p / g.W : (p - bottom) / (g.W - cols);
    const I iw = p < bottom ? p % g.W : cols + (p - bottom) % (g.W - cols);
    dx[((n * g.H + ih) * g.W + iw) * g.C + c] = zero;
  }
}

template <typename T, typename I>
__global__ void avg_pool_forward_kernel(PoolDims<I> g, const T* x, T* y) {
  const I total = g.N * g.OH * g.OW * g.C;
  for (I o = I(blockIdx.x) * I(blockDim.x) + I(threadIdx.x); o < total; o += I(gridDim.x) * I(blockDim.x)) {
    const I c = o % g.C, ow = (o / g.C) % g.OW, oh = (o / (g.C * g.OW)) % g.OH, n = o / (g.C * g.OW * g.OH);
    const auto hs = window::window_span(oh, g.sh, g.pt, g.KH, g.H);
    const auto ws = window::window_span(ow, g.sw, g.pl, g.KW, g.W);
    using A = accumulate_t<T>;
    A acc = A(0);
    for (I ih = hs.begin; ih < hs.end; ++ih)
      for (I iw = ws.begin; iw < ws.end; ++iw) acc += load_value(x[((n * g.H + ih) * g.W + iw) * g.C + c]);
    const I count = hs.size() * ws.size();
    y[o] = store_value<T>(count > 0 ? acc / A(count) : A(0));  // a window wholly in the padding gives 0, as on the CPU
  }
}

template <typename T, typename I>
__global__ void avg_pool_backward_kernel(PoolDims<I> g, const T* dy, T* dx) {
  const I total = g.N * g.H * g.W * g.C;
  for (I i = I(blockIdx.x) * I(blockDim.x) + I(threadIdx.x); i < total; i += I(gridDim.x) * I(blockDim.x)) {
    const I c = i % g.C, iw = (i / g.C) % g.W, ih = (i / (g.C * g.W)) % g.H, n = i / (g.C * g.W * g.H);
    const auto oh_range = window::covering_windows(ih, g.sh, g.pt, g.KH, g.OH);
    const auto ow_range = window::covering_windows(iw, g.sw, g.pl, g.KW, g.OW);
    using A = accumulate_t<T>;
    A acc = A(0);
    for (I oh = oh_range.begin; oh < oh_range.end; ++oh) {
      const I rows = window::window_span(oh, g.sh, g.pt, g.KH, g.H).size();
      for (I ow = ow_range.begin; ow < ow_range.end; ++ow) {
        const I count = rows * window::window_span(ow, g.sw, g.pl, g.KW, g.W).size();
        acc += load_value(dy[((n * g.OH + oh) * g.OW + ow) * g.C + c]) / A(count);
      }
    }
    dx[i] = store_value<T>(acc);
  }
}

// Whether every index of the input and output fits in int32 (with room for the loop's last step).
bool fits_int32(const Pool2dGeometry& g) {
  const int64_t limit = INT32_MAX / 2;
  return g.N * g.H * g.W * g.C < limit && g.N * g.OH * g.OW * g.C < limit;
}

// Whether the pack kernels apply: a type of at most four bytes (float64 keeps the scalar kernels),
// whole packs of channels and 16-byte aligned tensors.
template <typename T>
bool packable(const Pool2dGeometry& g, std::initializer_list<const void*> ptrs) {
  if constexpr (sizeof(T) > 4) {
    return false;
  } else {
    if (g.C % Pack<T>::kLanes != 0) return false;
    for (const void* p : ptrs)
      if (reinterpret_cast<std::uintptr_t>(p) % 16 != 0) return false;
    return true;
  }
}

template <typename F>
void with_index(const Pool2dGeometry& g, F&& f) {
  if (fits_int32(g))
    f(PoolDims<int32_t>(g));
  else
    f(PoolDims<int64_t>(g));
}
}  // namespace

// ---------------------------------------------------------------------------------------------
// the backend's entries

void CudaBackend::max_pool2d_forward(DType dtype, const Pool2dGeometry& g, const void* x, void* y) {
  DeviceGuard guard(device_);
  const int64_t total = g.N * g.OH * g.OW * g.C;
  if (total <= 0) return;
  kernels::with_cuda_compute_type(dtype, "max_pool2d", [&](auto tag) {
    using T = decltype(tag);
    with_index(g, [&](auto dims) {
      if (packable<T>(g, {x, y}))
        max_pool_forward_pack_kernel<<<grid_for(total / Pack<T>::kLanes), kBlock, 0, stream_>>>(
            dims, static_cast<const Pack<T>*>(x), static_cast<Pack<T>*>(y));
      else
        max_pool_forward_kernel<<<grid_for(total), kBlock, 0, stream_>>>(dims, static_cast<const T*>(x),
                                                                         static_cast<T*>(y));
    });
  });
  KILN_LAUNCH_CHECK("max_pool_forward_kernel");
}

void CudaBackend::max_pool2d_backward(DType dtype, const Pool2dGeometry& g, const void* x, const void*, const void* dy,
                                      void* dx) {
  DeviceGuard guard(device_);
  const int64_t total_in = g.N * g.H * g.W * g.C, total_out = g.N * g.OH * g.OW * g.C;
  if (total_in <= 0) return;
  const bool disjoint = g.stride_h >= g.KH && g.stride_w >= g.KW;
  // Windows from the corner, each the next one's neighbour: they cover all inputs but the bottom
  // rows and right columns past the last window, so only those need zeros; other disjoint windows
  // (gaps between them, padding before them) get the whole of dx zeroed first.
  const bool adjacent = window::adjacent(g.stride_h, g.pad_top, g.KH) && window::adjacent(g.stride_w, g.pad_left, g.KW);
  const int64_t rows = std::min(g.H, g.OH * g.KH), cols = std::min(g.W, g.OW * g.KW);
  if (disjoint && !adjacent) fill(dtype, dx, total_in, 0.0);
  if (disjoint && total_out <= 0) return;
  kernels::with_cuda_compute_type(dtype, "max_pool2d_backward", [&](auto tag) {
    using T = decltype(tag);
    with_index(g, [&](auto dims) {
      const T* xt = static_cast<const T*>(x);
      const T* dyt = static_cast<const T*>(dy);
      if (adjacent && (rows < g.H || cols < g.W))
        zero_uncovered_strips_kernel<<<grid_for(g.N * (g.H * g.W - rows * cols) * g.C), kBlock, 0, stream_>>>(
            dims, static_cast<decltype(dims.H)>(rows), static_cast<decltype(dims.H)>(cols), static_cast<T*>(dx));
      if (disjoint && packable<T>(g, {x, dy, dx}))
        max_pool_backward_disjoint_pack_kernel<<<grid_for(total_out / Pack<T>::kLanes), kBlock, 0, stream_>>>(
            dims, static_cast<const Pack<T>*>(x), static_cast<const Pack<T>*>(dy), static_cast<Pack<T>*>(dx));
      else if (disjoint)
        max_pool_backward_disjoint_kernel<<<grid_for(total_out), kBlock, 0, stream_>>>(dims, xt, dyt,
                                                                                       static_cast<T*>(dx));
      else
        max_pool_backward_kernel<<<grid_for(total_in), kBlock, 0, stream_>>>(dims, xt, dyt, static_cast<T*>(dx));
    });
  });
  KILN_LAUNCH_CHECK("max_pool_backward_kernel");
}

void CudaBackend::avg_pool2d_forward(DType dtype, const Pool2dGeometry& g, const void* x, void* y) {
  DeviceGuard guard(device_);
  const int64_t total = g.N * g.OH * g.OW * g.C;
  if (total <= 0) return;
  kernels::with_cuda_compute_type(dtype, "avg_pool2d", [&](auto tag) {
    using T = decltype(tag);
    with_index(g, [&](auto dims) {
      avg_pool_forward_kernel<<<grid_for(total), kBlock, 0, stream_>>>(dims, static_cast<const T*>(x),
                                                                       static_cast<T*>(y));
    });
  });
  KILN_LAUNCH_CHECK("avg_pool_forward_kernel");
}

void CudaBackend::avg_pool2d_backward(DType dtype, const Pool2dGeometry& g, const void* dy, void* dx) {
  DeviceGuard guard(device_);
  const int64_t total = g.N * g.H * g.W * g.C;
  if (total <= 0) return;
  kernels::with_cuda_compute_type(dtype, "avg_pool2d_backward", [&](auto tag) {
    using T = decltype(tag);
    with_index(g, [&](auto dims) {
      avg_pool_backward_kernel<<<grid_for(total), kBlock, 0, stream_>>>(dims, static_cast<const T*>(dy),
                                                                        static_cast<T*>(dx));
    });
  });
  KILN_LAUNCH_CHECK("avg_pool_backward_kernel");
}

}  // namespace kiln::backend
