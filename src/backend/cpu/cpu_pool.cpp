// CPU max and average pooling, NHWC. Loops run over a window's cells with the channels innermost,
// so each step reads C contiguous floats (vectorised) rather than striding by C per channel.
// Max: padded cells never win; a NaN beats every number (a window holding one pools to NaN, as in
// PyTorch and NumPy's max); backward sends each gradient to the first maximal input of its window
// (as TensorFlow does), the first NaN where there is one.
// Average: over the window's cells inside the input (Keras' "same" rule); cells are summed in
// window order and gradient shares added in (oh, ow) order, the CUDA kernels' orders, so both
// devices give the same bits.
// 16-bit tensors are staged into float (cpu_staging.h), pooled by the float32 path and rounded once,
// so gradient shares that meet in one input cell are summed in float.
#include <limits>
#include <type_traits>
#include <utility>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/cpu_staging.h"
#include "backend/elementwise_math.h"
#include "backend/window.h"

namespace kiln::backend {

namespace {

// Calls f(ih, iw) for every in-bounds cell of window (oh, ow), in row-major window order.
template <typename F>
void for_each_cell(const Pool2dGeometry& g, int64_t oh, int64_t ow, F&& f) {
  const auto hs = window::window_span(oh, g.stride_h, g.pad_top, g.KH, g.H);
  const auto ws = window::window_span(ow, g.stride_w, g.pad_left, g.KW, g.W);
  for (int64_t ih = hs.begin; ih < hs.end; ++ih)
    for (int64_t iw = ws.begin; iw < ws.end; ++iw) f(ih, iw);
}

template <typename T>
void max_pool2d_forward_typed(const Pool2dGeometry& g, const void* x, void* y) {
  const T* xs = static_cast<const T*>(x);
  T* ys = static_cast<T*>(y);
  parallel_for_work(g.N * g.OH, g.N * g.OH * g.OW * g.C, [&](int64_t row0, int64_t row1) {
    for (int64_t row = row0; row < row1; ++row) {
      const int64_t n = row / g.OH, oh = row % g.OH;
      for (int64_t ow = 0; ow < g.OW; ++ow) {
        T* out = ys + ((n * g.OH + oh) * g.OW + ow) * g.C;
        for (int64_t c = 0; c < g.C; ++c) out[c] = -std::numeric_limits<T>::infinity();
        bool any = false;
        for_each_cell(g, oh, ow, [&](int64_t ih, int64_t iw) {
          const T* in = xs + ((n * g.H + ih) * g.W + iw) * g.C;
          for (int64_t c = 0; c < g.C; ++c) out[c] = math::greater_or_nan(in[c], out[c]) ? in[c] : out[c];
          any = true;
        });
        if (!any)  // a window entirely in the padding (possible only for odd geometries)
          for (int64_t c = 0; c < g.C; ++c) out[c] = T(0);
      }
    }
  });
}

template <typename T>
void max_pool2d_backward_typed(Backend& backend, const Pool2dGeometry& g, const void* x, const void* y, const void* dy,
                               void* dx) {
  const T* xs = static_cast<const T*>(x);
  const T* ys = static_cast<const T*>(y);
  const T* dys = static_cast<const T*>(dy);
  T* dxs = static_cast<T*>(dx);
  backend.fill(dtype_of<T>(), dx, g.N * g.H * g.W * g.C, 0.0);
  // Windows of one image may overlap, so threads split images, never one image.
  parallel_for_work(g.N, g.N * g.H * g.W * g.C, [&](int64_t n0, int64_t n1) {
    std::vector<T> routed_buf(static_cast<std::size_t>(g.C));
    T* __restrict routed = routed_buf.data();  // 1 once channel c's gradient has found its input
    for (int64_t n = n0; n < n1; ++n)
      for (int64_t oh = 0; oh < g.OH; ++oh)
        for (int64_t ow = 0; ow < g.OW; ++ow) {
          const int64_t o = ((n * g.OH + oh) * g.OW + ow) * g.C;
          const T* __restrict y_o = ys + o;
          const T* __restrict dy_o = dys + o;
          for (int64_t c = 0; c < g.C; ++c) routed[c] = T(0);
          // The first cell (in window order) equal to the output (NaN to a NaN output) is the maximum
          // that forward kept.
          for_each_cell(g, oh, ow, [&](int64_t ih, int64_t iw) {
            const int64_t i = ((n * g.H + ih) * g.W + iw) * g.C;
            const T* __restrict x_i = xs + i;
            T* __restrict dx_i = dxs + i;
#pragma omp simd
            for (int64_t c = 0; c < g.C; ++c) {
              const T hit = (math::same_max(x_i[c], y_o[c]) && routed[c] == T(0)) ? T(1) : T(0);
              dx_i[c] += hit != T(0) ? dy_o[c] : T(0);  // a select, so a NaN gradient stays put
              routed[c] += hit;
            }
          });
        }
  });
}

// f(integral_constant<channels>) where channels is one of 1..sizeof...(Known); false otherwise.
template <typename F, int64_t... Known>
bool call_with_known_count(int64_t channels, F& f, std::integer_sequence<int64_t, Known...> /*unused*/) {
  return ((channels == Known + 1 && (f(std::integral_constant<int64_t, Known + 1>{}), true)) || ...);
}

// Calls f(channels): for float, the channel count as a compile-time constant where it is at most 8,
// else (and for double, which gradient checks use) as the runtime value. Few channels (LeNet-5's
// first pooling has 6) make the per-cell channel loop so short that its set-up costs more than its
// adds; a known count lets the compiler unroll it and keep a window's sums in registers
// (bench/README.md has the measurement).
template <typename T, typename F>
void with_channel_count(int64_t channels, F&& f) {
  constexpr int64_t kMaxKnown = 8;
  if constexpr (std::is_same_v<T, float>)
    if (call_with_known_count(channels, f, std::make_integer_sequence<int64_t, kMaxKnown>{})) return;
  f(channels);
}

template <typename T>
void avg_pool2d_forward_typed(const Pool2dGeometry& g, const void* x, void* y) {
  const T* xs = static_cast<const T*>(x);
  T* ys = static_cast<T*>(y);
  with_channel_count<T>(g.C, [&](auto channels) {
    const int64_t C = channels;
    parallel_for_work(g.N * g.OH, g.N * g.OH * g.OW * C, [&](int64_t row0, int64_t row1) {
      for (int64_t row = row0; row < row1; ++row) {
        const int64_t n = row / g.OH, oh = row % g.OH;
        const auto hs = window::window_span(oh, g.stride_h, g.pad_top, g.KH, g.H);
        for (int64_t ow = 0; ow < g.OW; ++ow) {
          const auto ws = window::window_span(ow, g.stride_w, g.pad_left, g.KW, g.W);
          T* __restrict out = ys + ((n * g.OH + oh) * g.OW + ow) * C;
          for (int64_t c = 0; c < C; ++c) out[c] = T(0);
          for (int64_t ih = hs.begin; ih < hs.end; ++ih)
            for (int64_t iw = ws.begin; iw < ws.end; ++iw) {
              const T* __restrict in = xs + ((n * g.H + ih) * g.W + iw) * C;
              for (int64_t c = 0; c < C; ++c) out[c] += in[c];
            }
          const int64_t count = hs.size() * ws.size();
          if (count > 0)  // a window wholly in the padding (odd geometries only) stays 0
            for (int64_t c = 0; c < C; ++c) out[c] /= static_cast<T>(count);
        }
      }
    });
  });
}

template <typename T>
void avg_pool2d_backward_typed(Backend& backend, const Pool2dGeometry& g, const void* dy, void* dx) {
  const T* dys = static_cast<const T*>(dy);
  T* dxs = static_cast<T*>(dx);
  // Windows that tile the input (stride = window, no padding, no cell left over) give every input
  // cell exactly one share: it is written as 0 + share, the bits of the sum from a zeroed gradient,
  // without the pass that zeroes it.
  const bool tiles = window::adjacent(g.stride_h, g.pad_top, g.KH) && window::adjacent(g.stride_w, g.pad_left, g.KW) &&
                     g.OH * g.KH == g.H && g.OW * g.KW == g.W;
  if (!tiles) backend.fill(dtype_of<T>(), dx, g.N * g.H * g.W * g.C, 0.0);
  const auto run = [&](auto channels, auto tiled) {
    const int64_t C = channels;
    // Windows of one image may overlap, so threads split images, never one image.
    parallel_for_work(g.N, g.N * g.H * g.W * C, [&](int64_t n0, int64_t n1) {
      std::vector<T> share_buf(static_cast<std::size_t>(C));
      T* __restrict share = share_buf.data();
      for (int64_t n = n0; n < n1; ++n)
        for (int64_t oh = 0; oh < g.OH; ++oh) {
          const auto hs = window::window_span(oh, g.stride_h, g.pad_top, g.KH, g.H);
          for (int64_t ow = 0; ow < g.OW; ++ow) {
            const auto ws = window::window_span(ow, g.stride_w, g.pad_left, g.KW, g.W);
            const int64_t count = hs.size() * ws.size();
            if (count == 0) continue;
            const T* __restrict dy_o = dys + ((n * g.OH + oh) * g.OW + ow) * C;
            for (int64_t c = 0; c < C; ++c) share[c] = dy_o[c] / static_cast<T>(count);
            for (int64_t ih = hs.begin; ih < hs.end; ++ih)
              for (int64_t iw = ws.begin; iw < ws.end; ++iw) {
                T* __restrict dx_i = dxs + ((n * g.H + ih) * g.W + iw) * C;
                for (int64_t c = 0; c < C; ++c) dx_i[c] = (tiled ? T(0) : dx_i[c]) + share[c];
              }
          }
        }
    });
  };
  with_channel_count<T>(g.C, [&](auto channels) {
    if (tiles)
      run(channels, std::true_type{});
    else
      run(channels, std::false_type{});
  });
}

}  // namespace

void CpuBackend::max_pool2d_forward(DType dtype, const Pool2dGeometry& g, const void* x, void* y) {
  with_cpu_compute_type(dtype, "max_pool2d", [&](auto tag) {
    using T = decltype(tag);
    if constexpr (is_cpu_half_v<T>) {
      const std::vector<float> xs = widened<T>(x, g.N * g.H * g.W * g.C);
      std::vector<float> ys(static_cast<std::size_t>(g.N * g.OH * g.OW * g.C));
      max_pool2d_forward_typed<float>(g, xs.data(), ys.data());
      store_rounded<T>(ys.data(), y, g.N * g.OH * g.OW * g.C);
    } else {
      max_pool2d_forward_typed<T>(g, x, y);
    }
  });
}

void CpuBackend::max_pool2d_backward(DType dtype, const Pool2dGeometry& g, const void* x, const void* y, const void* dy,
                                     void* dx) {
  with_cpu_compute_type(dtype, "max_pool2d_backward", [&](auto tag) {
    using T = decltype(tag);
    if constexpr (is_cpu_half_v<T>) {
      const int64_t nx = g.N * g.H * g.W * g.C, ny = g.N * g.OH * g.OW * g.C;
      const std::vector<float> xs = widened<T>(x, nx), ys = widened<T>(y, ny), dys = widened<T>(dy, ny);
      std::vector<float> dxs(static_cast<std::size_t>(nx));
      max_pool2d_backward_typed<float>(*this, g, xs.data(), ys.data(), dys.data(), dxs.data());
      store_rounded<T>(dxs.data(), dx, nx);
    } else {
      max_pool2d_backward_typed<T>(*this, g, x, y, dy, dx);
    }
  });
}

void CpuBackend::avg_pool2d_forward(DType dtype, const Pool2dGeometry& g, const void* x, void* y) {
  with_cpu_compute_type(dtype, "avg_pool2d", [&](auto tag) {
    using T = decltype(tag);
    if constexpr (is_cpu_half_v<T>) {
      const std::vector<float> xs = widened<T>(x, g.N * g.H * g.W * g.C);
      std::vector<float> ys(static_cast<std::size_t>(g.N * g.OH * g.OW * g.C));
      avg_pool2d_forward_typed<float>(g, xs.data(), ys.data());
      store_rounded<T>(ys.data(), y, g.N * g.OH * g.OW * g.C);
    } else {
      avg_pool2d_forward_typed<T>(g, x, y);
    }
  });
}

void CpuBackend::avg_pool2d_backward(DType dtype, const Pool2dGeometry& g, const void* dy, void* dx) {
  with_cpu_compute_type(dtype, "avg_pool2d_backward", [&](auto tag) {
    using T = decltype(tag);
    if constexpr (is_cpu_half_v<T>) {
      const int64_t nx = g.N * g.H * g.W * g.C;
      const std::vector<float> dys = widened<T>(dy, g.N * g.OH * g.OW * g.C);
      std::vector<float> dxs(static_cast<std::size_t>(nx));
      avg_pool2d_backward_typed<float>(*this, g, dys.data(), dxs.data());
      store_rounded<T>(dxs.data(), dx, nx);
    } else {
      avg_pool2d_backward_typed<T>(*this, g, dy, dx);
    }
  });
}

}  // namespace kiln::backend
