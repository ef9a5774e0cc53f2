// CPU 2-D convolution, NHWC, by im2col + GEMM (Eigen); bench/README.md has the measurement that
// chose it over Eigen's tensor contraction with extracted patches. 3x3 stride-1 layers of enough
// channels take Winograd's F(4x4, 3x3) instead, in all three passes (cpu_winograd.h), and float32
// stride-1 layers of few channels direct summation (cpu_direct_conv.h). Patches are unrolled
// into rows [OH*OW per image, KH*KW*C] whose column order matches the kernel layout [KH, KW, C, F], so the forward pass
// is a GEMM whose output is already NHWC. The batch is split into chunks of whole images (a size fixed by the geometry,
// not by the thread count) that the thread pool runs; a chunk unrolls into its thread's buffer and runs a
// single-threaded GEMM. Splitting this way also splits the filter gradient's long reduction over
// N*OH*OW, which a single GEMM would leave to one thread's block.
// 16-bit tensors are staged into float (cpu_staging.h), run through the float32 path and rounded
// once, so their scatter-adds and filter sums stay in float until the end.
// Shape letters: N batch, H/W input size, C channels, KH/KW kernel, F filters, OH/OW output.
#include <algorithm>
#include <type_traits>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/cpu_bias_act.h"
#include "backend/cpu/cpu_direct_conv.h"
#include "backend/cpu/cpu_staging.h"
#include "backend/cpu/cpu_thread_buffer.h"
#include "backend/cpu/cpu_winograd.h"
#include "backend/window.h"

namespace kiln::backend {

namespace {

// Patch rows a chunk aims for: the forward pass and data gradient, and the filter gradient, whose
// chunks are also the depth of its products and each add a [K, F] product to a partial sum, so it
// wants them deeper. Smaller chunks keep a chunk's patches in cache between the unrolling and the
// product and give every thread chunks of its own at small batches, where one chunk would unroll
// on one thread (bench/README.md has the measurement that chose these sizes).
constexpr int64_t kChunkRows = 512;
constexpr int64_t kFilterChunkRows = 1024;
constexpr int64_t kPatchBufferElems = int64_t(4) << 20;  // per-thread buffer cap (16 MiB of float)
constexpr int64_t kMaxFilterPartials = 64;               // filter-gradient partial sums, at most
constexpr int64_t kMaxTransposedFilters = 64;            // filter sums kept [F, K] up to this F

struct Chunks {
  int64_t images;  // images per chunk
  int64_t count;   // number of chunks
};

Chunks chunks_of(const Conv2dGeometry& g, int64_t chunk_rows) {
  const int64_t rows_per_image = std::max<int64_t>(g.OH * g.OW, 1), K = g.KH * g.KW * g.C;
  int64_t images = std::max<int64_t>(chunk_rows / rows_per_image, 1);
  images = std::min(images, std::max<int64_t>(kPatchBufferElems / (rows_per_image * K), 1));
  images = std::clamp<int64_t>(images, 1, std::max<int64_t>(g.N, 1));
  return {images, (g.N + images - 1) / images};
}

// C = op(A) op(B) + beta C for one chunk, contiguous operands: single-threaded where chunks run in
// parallel, split across threads where the whole batch is one chunk (one large image).
template <typename T>
void chunk_gemm(const Chunks& ch, bool ta, bool tb, int64_t m, int64_t n, int64_t k, const T* a, const T* b, T beta,
                T* c) {
  if (ch.count > 1)
    gemm_serial<T>(ta, tb, m, n, k, T(1), a, ta ? m : k, b, tb ? k : n, beta, c, n);
  else
    gemm_parallel<T>(ta, tb, m, n, k, T(1), a, b, beta, c);
}

// Rows in output order: the window arithmetic is done once per output row and column, not
// recovered from the row index by divisions (which cost more than copying a few-channel row).
template <typename T>
void im2col(const Conv2dGeometry& g, const T* x, int64_t n0, int64_t n_count, T* patches) {
  const int64_t K = g.KH * g.KW * g.C, row_cells = g.KW * g.C;
  T* dst = patches;
  for (int64_t n = n0; n < n0 + n_count; ++n)
    for (int64_t oh = 0; oh < g.OH; ++oh) {
      const int64_t ih0 = window::window_start(oh, g.stride_h, g.pad_top);
      const auto hs = window::window_span(oh, g.stride_h, g.pad_top, g.KH, g.H);
      for (int64_t ow = 0; ow < g.OW; ++ow, dst += K) {
        const int64_t iw0 = window::window_start(ow, g.stride_w, g.pad_left);
        const auto ws = window::window_span(ow, g.stride_w, g.pad_left, g.KW, g.W);
        const bool columns_inside = ws.size() == g.KW;
        // Every tap is written: the input's cell where the tap is inside it, 0 in the padding.
        for (int64_t kh = 0; kh < g.KH; ++kh) {
          const int64_t ih = ih0 + kh;
          T* cells = dst + kh * row_cells;
          if (ih < hs.begin || ih >= hs.end) {
            std::fill(cells, cells + row_cells, T(0));
          } else if (columns_inside) {  // the window's row is KW*C contiguous input values
            const T* src = x + ((n * g.H + ih) * g.W + iw0) * g.C;
            for (int64_t j = 0; j < row_cells; ++j) cells[j] = src[j];
          } else {
            for (int64_t kw = 0; kw < g.KW; ++kw) {
              const int64_t iw = iw0 + kw;
              T* cell = cells + kw * g.C;
              if (iw < ws.begin || iw >= ws.end)
                std::fill(cell, cell + g.C, T(0));
              else
                std::copy_n(x + ((n * g.H + ih) * g.W + iw) * g.C, g.C, cell);
            }
          }
        }
      }
    }
}

// Sets the image gradient of images [n0, n0 + n_count) to the sum of their patch gradients. The
// images are zeroed here, just before the adds, so that they are still in this thread's cache.
template <typename T>
void col2im(const Conv2dGeometry& g, const T* dpatches, int64_t n0, int64_t n_count, T* dx) {
  const int64_t K = g.KH * g.KW * g.C, row_cells = g.KW * g.C;
  std::fill(dx + n0 * g.H * g.W * g.C, dx + (n0 + n_count) * g.H * g.W * g.C, T(0));
  const T* src = dpatches;
  for (int64_t n = n0; n < n0 + n_count; ++n)
    for (int64_t oh = 0; oh < g.OH; ++oh) {
      const int64_t ih0 = window::window_start(oh, g.stride_h, g.pad_top);
      const auto hs = window::window_span(oh, g.stride_h, g.pad_top, g.KH, g.H);
      for (int64_t ow = 0; ow < g.OW; ++ow, src += K) {
        const int64_t iw0 = window::window_start(ow, g.stride_w, g.pad_left);
        const auto ws = window::window_span(ow, g.stride_w, g.pad_left, g.KW, g.W);
        // Taps in the padding have no input cell to add to.
        for (int64_t ih = hs.begin; ih < hs.end; ++ih) {
          const T* cells = src + (ih - ih0) * row_cells;
          if (ws.size() == g.KW) {  // the window's row is KW*C contiguous input values
            T* out = dx + ((n * g.H + ih) * g.W + iw0) * g.C;
            for (int64_t j = 0; j < row_cells; ++j) out[j] += cells[j];
          } else {
            for (int64_t iw = ws.begin; iw < ws.end; ++iw) {
              const T* cell = cells + (iw - iw0) * g.C;
              T* out = dx + ((n * g.H + ih) * g.W + iw) * g.C;
              for (int64_t c = 0; c < g.C; ++c) out[c] += cell[c];
            }
          }
        }
      }
    }
}

template <typename T>
void conv2d_forward_typed(const Conv2dGeometry& g, const void* x, const void* w, const void* bias, bool relu, void* y) {
  if constexpr (std::is_same_v<T, float>) {
    if (direct_conv_fits(g)) {
      direct_conv2d_forward(g, static_cast<const float*>(x), static_cast<const float*>(w),
                            static_cast<const float*>(bias), relu, static_cast<float*>(y));
      return;
    }
  }
  if (winograd_fits(g)) {
    winograd_conv2d_forward<T>(g, static_cast<const T*>(x), static_cast<const T*>(w), static_cast<const T*>(bias), relu,
                               static_cast<T*>(y));
    return;
  }
  const int64_t K = g.KH * g.KW * g.C, rows_per_image = g.OH * g.OW;
  const Chunks ch = chunks_of(g, kChunkRows);
  parallel_for(ch.count, ch.count, [&](int64_t c, int64_t) {
    T* patches = thread_buffer<T>(ch.images * rows_per_image * K, 0);
    const int64_t n0 = c * ch.images, count = std::min(ch.images, g.N - n0), rows = count * rows_per_image;
    im2col(g, static_cast<const T*>(x), n0, count, patches);
    T* out = static_cast<T*>(y) + n0 * rows_per_image * g.F;
    chunk_gemm<T>(ch, false, false, rows, g.F, K, patches, static_cast<const T*>(w), T(0), out);
    bias_act_rows(out, static_cast<const T*>(bias), relu, rows, g.F);
  });
}

template <typename T>
void conv2d_backward_data_typed(const Conv2dGeometry& g, const void* dy, const void* w, void* dx) {
  if constexpr (std::is_same_v<T, float>) {
    if (direct_conv_data_fits(g)) {
      direct_conv2d_backward_data(g, static_cast<const float*>(dy), static_cast<const float*>(w),
                                  static_cast<float*>(dx));
      return;
    }
  }
  if (winograd_fits(g)) {
    winograd_conv2d_backward_data<T>(g, static_cast<const T*>(dy), static_cast<const T*>(w), static_cast<T*>(dx));
    return;
  }
  const int64_t K = g.KH * g.KW * g.C, rows_per_image = g.OH * g.OW;
  const Chunks ch = chunks_of(g, kChunkRows);
  // Chunks hold whole images, so their scatter-adds never touch the same element.
  parallel_for(ch.count, ch.count, [&](int64_t c, int64_t) {
    T* dpatches = thread_buffer<T>(ch.images * rows_per_image * K, 0);
    const int64_t n0 = c * ch.images, count = std::min(ch.images, g.N - n0);
    chunk_gemm<T>(ch, false, true, count * rows_per_image, K, g.F,
                  static_cast<const T*>(dy) + n0 * rows_per_image * g.F, static_cast<const T*>(w), T(0), dpatches);
    col2im(g, dpatches, n0, count, static_cast<T*>(dx));
  });
}

template <typename T>
void conv2d_backward_filter_typed(const Conv2dGeometry& g, const void* x, const void* dy, const void* relu_y, void* dw,
                                  void* db) {
  if constexpr (std::is_same_v<T, float>) {
    if (direct_conv_fits(g)) {
      direct_conv2d_backward_filter(g, static_cast<const float*>(x), static_cast<const float*>(dy),
                                    static_cast<const float*>(relu_y), static_cast<float*>(dw),
                                    static_cast<float*>(db));
      return;
    }
  }
  if (winograd_fits(g)) {
    winograd_conv2d_backward_filter<T>(g, static_cast<const T*>(x), static_cast<const T*>(dy),
                                       static_cast<const T*>(relu_y), static_cast<T*>(dw), static_cast<T*>(db));
    return;
  }
  const int64_t K = g.KH * g.KW * g.C, KF = K * g.F, rows_per_image = g.OH * g.OW;
  const Chunks ch = chunks_of(g, kFilterChunkRows);
  // Chunks are grouped into at most kMaxFilterPartials runs of consecutive chunks, fixed by the
  // shape; each run sums its chunks' gradients, in order, into its own partial, and the partials
  // are added in run order: the result does not depend on the thread count. A partial holds the
  // filter sums, then the bias sums [F]. Layers of few filters keep the filter sums transposed,
  // [F, K]: Eigen's kernel then runs along the longer side K (the patches' columns) in its wide
  // register panels instead of along F (bench/README.md has the measurement; from 128 filters on
  // the gain is small, and the product's split across threads can undo it).
  const bool transposed = K >= g.F && g.F <= kMaxTransposedFilters;
  const int64_t part = KF + g.F;
  const int64_t runs = std::min(ch.count, kMaxFilterPartials);
  // Each run zeroes its own partial, in parallel and in the cache of the thread that fills it.
  T* partial = thread_buffer<T>(runs * part, 2);
  auto run = [&](int64_t r) {
    const int64_t c0 = r * ch.count / runs, c1 = (r + 1) * ch.count / runs;
    T* mine = partial + r * part;
    std::fill_n(mine, part, T(0));
    T* patches = thread_buffer<T>(ch.images * rows_per_image * K, 0);
    T* dz = relu_y ? thread_buffer<T>(ch.images * rows_per_image * g.F, 1) : nullptr;
    for (int64_t c = c0; c < c1; ++c) {
      const int64_t n0 = c * ch.images, count = std::min(ch.images, g.N - n0), rows = count * rows_per_image;
      const T* grad = static_cast<const T*>(dy) + n0 * rows_per_image * g.F;
      if (relu_y) {
        // unary_backward's ReLU rule (y <= 0 exactly where z <= 0, and y is NaN where z is), on this
        // thread: this already is a chunk of a parallel loop. The derivative is taken before the
        // product, as unary_backward does, so that GCC vectorizes the loop.
        const T* y_rows = static_cast<const T*>(relu_y) + n0 * rows_per_image * g.F;
        for (int64_t i = 0; i < rows * g.F; ++i) {
          const T d = math::derivative<UnaryOp::Relu>(y_rows[i], y_rows[i]);
          dz[i] = grad[i] * d;
        }
        grad = dz;
      }
      im2col(g, static_cast<const T*>(x), n0, count, patches);
      if (transposed)
        chunk_gemm<T>(ch, true, false, g.F, K, rows, grad, patches, T(1), mine);
      else
        chunk_gemm<T>(ch, true, false, K, g.F, rows, patches, grad, T(1), mine);
      if (db)
        for (int64_t r = 0; r < rows; ++r)
          for (int64_t f = 0; f < g.F; ++f) mine[KF + f] += grad[r * g.F + f];
    }
  };
  parallel_chunks(runs, ChunkFn(run));
  T* out_w = static_cast<T*>(dw);
  T* out_b = static_cast<T*>(db);
  // Each output element adds its partials in run order, whichever thread adds them.
  const int64_t outputs = db ? part : KF;
  parallel_for_work(outputs, outputs * runs, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) {
      // Output element i is filter sum (i / F, i % F): at (i % F) * K + i / F in a transposed partial.
      const int64_t at = (transposed && i < KF) ? (i % g.F) * K + i / g.F : i;
      T s = T(0);
      for (int64_t r = 0; r < runs; ++r) s += partial[r * part + at];
      if (i < KF)
        out_w[i] = s;
      else
        out_b[i - KF] = s;
    }
  });
}

}  // namespace

void CpuBackend::conv2d_forward(DType dtype, const Conv2dGeometry& g, const void* x, const void* w, const void* bias,
                                bool relu, void* y) {
  with_cpu_compute_type(dtype, "conv2d", [&](auto tag) {
    using T = decltype(tag);
    if constexpr (is_cpu_half_v<T>) {
      const int64_t ny = g.N * g.OH * g.OW * g.F;
      const std::vector<float> xs = widened<T>(x, g.N * g.H * g.W * g.C), ws = widened<T>(w, g.KH * g.KW * g.C * g.F),
                               bs = widened<T>(bias, g.F);
      std::vector<float> ys(static_cast<std::size_t>(ny));
      conv2d_forward_typed<float>(g, xs.data(), ws.data(), data_or_null(bs), relu, ys.data());
      store_rounded<T>(ys.data(), y, ny);
    } else {
      conv2d_forward_typed<T>(g, x, w, bias, relu, y);
    }
  });
}

void CpuBackend::conv2d_backward_data(DType dtype, const Conv2dGeometry& g, const void* dy, const void* w, void* dx) {
  with_cpu_compute_type(dtype, "conv2d_backward_data", [&](auto tag) {
    using T = decltype(tag);
    if constexpr (is_cpu_half_v<T>) {
      const int64_t nx = g.N * g.H * g.W * g.C;
      const std::vector<float> dys = widened<T>(dy, g.N * g.OH * g.OW * g.F),
                               ws = widened<T>(w, g.KH * g.KW * g.C * g.F);
      std::vector<float> dxs(static_cast<std::size_t>(nx));
      conv2d_backward_data_typed<float>(g, dys.data(), ws.data(), dxs.data());
      store_rounded<T>(dxs.data(), dx, nx);
    } else {
      conv2d_backward_data_typed<T>(g, dy, w, dx);
    }
  });
}

void CpuBackend::conv2d_backward_filter(DType dtype, const Conv2dGeometry& g, const void* x, const void* dy,
                                        const void* relu_y, void* dw, void* db) {
  with_cpu_compute_type(dtype, "conv2d_backward_filter", [&](auto tag) {
    using T = decltype(tag);
    if constexpr (is_cpu_half_v<T>) {
      const int64_t ny = g.N * g.OH * g.OW * g.F, nw = g.KH * g.KW * g.C * g.F;
      const std::vector<float> xs = widened<T>(x, g.N * g.H * g.W * g.C), dys = widened<T>(dy, ny),
                               ys = widened<T>(relu_y, ny);
      std::vector<float> dws(static_cast<std::size_t>(nw)), dbs(static_cast<std::size_t>(db ? g.F : 0));
      conv2d_backward_filter_typed<float>(g, xs.data(), dys.data(), data_or_null(ys), dws.data(),
                                          db ? dbs.data() : nullptr);
      store_rounded<T>(dws.data(), dw, nw);
      if (db) store_rounded<T>(dbs.data(), db, g.F);
    } else {
      conv2d_backward_filter_typed<T>(g, x, dy, relu_y, dw, db);
    }
  });
}

}  // namespace kiln::backend
