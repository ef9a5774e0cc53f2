// Winograd F(2x2, 3x3) on NHWC tensors. Each output tile of 2x2 pixels reads a 4x4 input tile; with
// B, G and A the algorithm's transforms, the tile's outputs are A^T [(G g G^T) . (B^T d B)] A. The 16
// elementwise products, summed over input channels, are 16 matrix products [tiles, C] x [C, F] of
// one chunk of tiles at a time:
//   1. filter: U[xi] = (G g G^T)[xi] for every channel pair, once per call, [16][C][F];
//   2. input:  V[xi] = (B^T d B)[xi] for every tile and channel of the chunk, [16][tiles][C];
//   3. product: M[xi] = V[xi] U[xi], [16][tiles][F];
//   4. output: y = A^T M A for every tile, then the bias and ReLU, on the pixels inside the image.
// The filter gradient is the adjoint of the same map: with Z = A dz A^T the transformed output
// gradient of a tile (dz = dy, times the ReLU's derivative when fused), dg = G^T [sum over tiles of
// V . Z] G, the sums over tiles being 16 products [C, tiles] x [tiles, F].
// A chunk's tiles are a fixed range of the batch's tiles (by the geometry, not the thread count), so
// the result does not depend on the thread count. The transforms use only additions and halvings,
// so a zero-weight structure is kept exactly; an infinite input can give NaN where the direct sum
// would give an infinity (an inf - inf inside a transform), as cuDNN's Winograd and FFT engines do.
#include "backend/cpu/cpu_winograd.h"

#include <algorithm>
#include <atomic>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/cpu_bias_act.h"
#include "backend/cpu/cpu_thread_buffer.h"

namespace kiln::backend {

namespace {

std::atomic<bool> winograd_on{true};

// Below this many channels or filters the products are too thin to repay the transforms
// (bench/README.md has the measurement per layer).
constexpr int64_t kMinChannels = 64;
// A chunk's V and M together aim at this many bytes: they stay in a core's L2 cache between the
// transforms and the products.
constexpr int64_t kChunkBytes = int64_t(1) << 20;
// The filter gradient's chunks are also the depth of its products, each added to a partial sum of
// [16, C, F], so it wants them deeper (bench/README.md has the measurement).
constexpr int64_t kFilterChunkBytes = int64_t(1) << 23;
constexpr int64_t kMinChunkTiles = 16, kMaxChunkTiles = 1024;
// The filter gradient's partial sums ([16, C, F] per run of chunks) take at most this many bytes
// and runs, whichever is fewer; each run is one thread's share of the batch.
constexpr int64_t kFilterPartialBytes = int64_t(32) << 20;
constexpr int64_t kMaxFilterRuns = 64;
// Channels transformed together, staged in a local array so that the compiler can vectorise the
// transform without proving that its loads and stores do not overlap.
constexpr int64_t kBlock = 32;

// Elements between two of a chunk's 16 planes in V or M: the plane's size and 64 bytes more. A
// transform reads or writes all 16 planes at once; with planes a multiple of 4 KiB apart, all 16
// streams would fall in the same set of the L1 cache and evict one another.
template <typename T>
int64_t plane_stride(int64_t count, int64_t width) {
  return count * width + 64 / static_cast<int64_t>(sizeof(T));
}

struct Tiling {
  int64_t rows, cols;  // tiles per image, down and across
  int64_t total;       // tiles of the batch
  int64_t per_chunk;   // tiles per chunk (the last may have fewer)
  int64_t chunks;
};

template <typename T>
Tiling tiling_of(const Conv2dGeometry& g, int64_t chunk_bytes = kChunkBytes) {
  Tiling t{};
  t.rows = (g.OH + 1) / 2;
  t.cols = (g.OW + 1) / 2;
  t.total = g.N * t.rows * t.cols;
  const int64_t bytes_per_tile = 16 * (g.C + g.F) * static_cast<int64_t>(sizeof(T));
  t.per_chunk = std::clamp<int64_t>(chunk_bytes / bytes_per_tile, kMinChunkTiles, kMaxChunkTiles);
  t.per_chunk = std::min(t.per_chunk, std::max<int64_t>(t.total, 1));
  t.chunks = (t.total + t.per_chunk - 1) / t.per_chunk;
  return t;
}

// u[xi][ci][co] = (G g G^T)[xi], g the 3x3 filter from input channel ci to output channel co:
// w[kh][kw][ci][co] as stored ([3, 3, C, F]), or, `turned` (the data gradient, whose input is dy),
// w[2 - kh][2 - kw][co][ci]. G's rows are (1, 0, 0), (1/2, 1/2, 1/2), (1/2, -1/2, 1/2), (0, 0, 1).
template <typename T>
std::vector<T> transformed_filter(const T* w, int64_t cin, int64_t cout, bool turned) {
  const int64_t plane = cin * cout;
  std::vector<T> u(static_cast<std::size_t>(16 * plane));
  const T half = T(0.5);
  parallel_for_work(cin, 16 * plane, [&](int64_t c0, int64_t c1) {
    for (int64_t ci = c0; ci < c1; ++ci)
      for (int64_t co = 0; co < cout; ++co) {
        T g[3][3];
        for (int kh = 0; kh < 3; ++kh)
          for (int kw = 0; kw < 3; ++kw)
            g[kh][kw] = turned ? w[((2 - kh) * 3 + (2 - kw)) * plane + co * cin + ci]
                               : w[(kh * 3 + kw) * plane + ci * cout + co];
        T t[4][3];  // G g
        for (int j = 0; j < 3; ++j) {
          t[0][j] = g[0][j];
          t[1][j] = half * (g[0][j] + g[1][j] + g[2][j]);
          t[2][j] = half * (g[0][j] - g[1][j] + g[2][j]);
          t[3][j] = g[2][j];
        }
        T* out = u.data() + ci * cout + co;
        for (int i = 0; i < 4; ++i) {  // (G g) G^T
          out[(i * 4 + 0) * plane] = t[i][0];
          out[(i * 4 + 1) * plane] = half * (t[i][0] + t[i][1] + t[i][2]);
          out[(i * 4 + 2) * plane] = half * (t[i][0] - t[i][1] + t[i][2]);
          out[(i * 4 + 3) * plane] = t[i][2];
        }
      }
  });
  return u;
}

// v[xi][t][c] = (B^T d B)[xi] for the chunk's tiles [t0, t0 + count), d tile t's 4x4 inputs of
// channel c (0 in the padding). B^T's rows are (1, 0, -1, 0), (0, 1, 1, 0), (0, -1, 1, 0), (0, 1, 0, -1).
template <typename T>
void input_transform(const Conv2dGeometry& g, const Tiling& tl, const T* x, const T* zeros, int64_t t0, int64_t count,
                     T* v) {
  const int64_t plane = plane_stride<T>(count, g.C), per_image = tl.rows * tl.cols;
  for (int64_t t = 0; t < count; ++t) {
    const int64_t tile = t0 + t, n = tile / per_image, th = (tile % per_image) / tl.cols, tw = tile % tl.cols;
    const T* d[16];
    for (int i = 0; i < 4; ++i)
      for (int j = 0; j < 4; ++j) {
        const int64_t ih = 2 * th - g.pad_top + i, iw = 2 * tw - g.pad_left + j;
        const bool inside = ih >= 0 && ih < g.H && iw >= 0 && iw < g.W;
        d[i * 4 + j] = inside ? x + ((n * g.H + ih) * g.W + iw) * g.C : zeros;
      }
    T* out = v + t * g.C;
    for (int64_t c0 = 0; c0 < g.C; c0 += kBlock) {
      const int64_t b = std::min(kBlock, g.C - c0);
      T in[16][kBlock];
      for (int p = 0; p < 16; ++p) std::copy_n(d[p] + c0, b, in[p]);
      for (int64_t k = 0; k < b; ++k) {
        T r[16];  // B^T d
        for (int j = 0; j < 4; ++j) {
          r[0 + j] = in[0 + j][k] - in[8 + j][k];
          r[4 + j] = in[4 + j][k] + in[8 + j][k];
          r[8 + j] = in[8 + j][k] - in[4 + j][k];
          r[12 + j] = in[4 + j][k] - in[12 + j][k];
        }
        T* o = out + c0 + k;
        for (int i = 0; i < 4; ++i) {  // (B^T d) B
          o[(i * 4 + 0) * plane] = r[i * 4 + 0] - r[i * 4 + 2];
          o[(i * 4 + 1) * plane] = r[i * 4 + 1] + r[i * 4 + 2];
          o[(i * 4 + 2) * plane] = r[i * 4 + 2] - r[i * 4 + 1];
          o[(i * 4 + 3) * plane] = r[i * 4 + 1] - r[i * 4 + 3];
        }
      }
    }
  }
}

// y's 2x2 pixels of each tile = A^T m A, then the bias and ReLU, where they are inside the output.
// A^T's rows are (1, 1, 1, 0), (0, 1, -1, -1).
template <typename T>
void output_transform(const Conv2dGeometry& g, const Tiling& tl, const T* m, int64_t t0, int64_t count, const T* bias,
                      bool relu, T* y) {
  const int64_t plane = plane_stride<T>(count, g.F), per_image = tl.rows * tl.cols;
  for (int64_t t = 0; t < count; ++t) {
    const int64_t tile = t0 + t, n = tile / per_image, th = (tile % per_image) / tl.cols, tw = tile % tl.cols;
    T* px[4];  // the tile's output pixels, null outside the output
    for (int q = 0; q < 4; ++q) {
      const int64_t oh = 2 * th + q / 2, ow = 2 * tw + q % 2;
      px[q] = (oh < g.OH && ow < g.OW) ? y + ((n * g.OH + oh) * g.OW + ow) * g.F : nullptr;
    }
    const T* src = m + t * g.F;
    for (int64_t f0 = 0; f0 < g.F; f0 += kBlock) {
      const int64_t b = std::min(kBlock, g.F - f0);
      T in[16][kBlock];
      for (int p = 0; p < 16; ++p) std::copy_n(src + p * plane + f0, b, in[p]);
      T out[4][kBlock];
      for (int64_t k = 0; k < b; ++k) {
        T r[2][4];  // A^T m
        for (int j = 0; j < 4; ++j) {
          r[0][j] = in[0 + j][k] + in[4 + j][k] + in[8 + j][k];
          r[1][j] = in[4 + j][k] - in[8 + j][k] - in[12 + j][k];
        }
        for (int i = 0; i < 2; ++i) {  // (A^T m) A
          out[i * 2 + 0][k] = r[i][0] + r[i][1] + r[i][2];
          out[i * 2 + 1][k] = r[i][1] - r[i][2] - r[i][3];
        }
      }
      for (int q = 0; q < 4; ++q)
        if (px[q]) {
          std::copy_n(out[q], b, px[q] + f0);
          bias_act_rows(px[q] + f0, bias ? bias + f0 : nullptr, relu, 1, b);
        }
    }
  }
}

// The forward pass of `g` with the transformed filter `u` ([16][C][F]).
template <typename T>
void run_tiles(const Conv2dGeometry& g, const T* x, const T* u, const T* bias, bool relu, T* y) {
  const Tiling tl = tiling_of<T>(g);
  const std::vector<T> zeros(static_cast<std::size_t>(g.C), T(0));
  parallel_for(tl.chunks, tl.chunks, [&](int64_t c, int64_t) {
    const int64_t t0 = c * tl.per_chunk, count = std::min(tl.per_chunk, tl.total - t0);
    const int64_t v_plane = plane_stride<T>(count, g.C), m_plane = plane_stride<T>(count, g.F);
    T* v = thread_buffer<T>(16 * plane_stride<T>(tl.per_chunk, g.C), 0);
    T* m = thread_buffer<T>(16 * plane_stride<T>(tl.per_chunk, g.F), 1);
    input_transform(g, tl, x, zeros.data(), t0, count, v);
    for (int xi = 0; xi < 16; ++xi) {
      const T* a = v + xi * v_plane;
      const T* b = u + xi * g.C * g.F;
      T* c_out = m + xi * m_plane;
      // Chunks run in parallel, each product on its thread; one chunk splits its products instead.
      if (tl.chunks > 1)
        gemm_serial<T>(false, false, count, g.F, g.C, T(1), a, g.C, b, g.F, T(0), c_out, g.F);
      else
        gemm_parallel<T>(false, false, count, g.F, g.C, T(1), a, b, T(0), c_out);
    }
    output_transform(g, tl, m, t0, count, bias, relu, y);
  });
}

// The filter gradient's transform of the output gradient: z[xi][t][f] = (A dz A^T)[xi] for the
// chunk's tiles, dz tile t's 2x2 pixels (0 outside the output), dz = dy * relu'(y) where relu_y (the
// fused ReLU's output) is given, by unary_backward's rule, else dy. The pixels' dz are added to
// `bias_sums` (unless null) in tile order. A's rows are (1, 0), (1, 1), (1, -1), (0, -1).
template <typename T>
void output_gradient_transform(const Conv2dGeometry& g, const Tiling& tl, const T* dy, const T* relu_y, const T* zeros,
                               int64_t t0, int64_t count, T* z, T* bias_sums) {
  const int64_t plane = plane_stride<T>(count, g.F), per_image = tl.rows * tl.cols;
  for (int64_t t = 0; t < count; ++t) {
    const int64_t tile = t0 + t, n = tile / per_image, th = (tile % per_image) / tl.cols, tw = tile % tl.cols;
    const T* d[4];  // the tile's dy pixels, zeros outside the output
    const T* y[4];  // and their outputs, for the ReLU's derivative
    for (int q = 0; q < 4; ++q) {
      const int64_t oh = 2 * th + q / 2, ow = 2 * tw + q % 2;
      const bool inside = oh < g.OH && ow < g.OW;
      const int64_t at = ((n * g.OH + oh) * g.OW + ow) * g.F;
      d[q] = inside ? dy + at : zeros;
      y[q] = inside && relu_y ? relu_y + at : zeros;
    }
    T* out = z + t * g.F;
    for (int64_t f0 = 0; f0 < g.F; f0 += kBlock) {
      const int64_t b = std::min(kBlock, g.F - f0);
      T in[4][kBlock];
      for (int q = 0; q < 4; ++q) {
        std::copy_n(d[q] + f0, b, in[q]);
        if (relu_y)
          for (int64_t k = 0; k < b; ++k) in[q][k] *= math::derivative<UnaryOp::Relu>(y[q][f0 + k], y[q][f0 + k]);
        if (bias_sums)
          for (int64_t k = 0; k < b; ++k) bias_sums[f0 + k] += in[q][k];
      }
      for (int64_t k = 0; k < b; ++k) {
        T r[4][2];  // A dz
        for (int j = 0; j < 2; ++j) {
          r[0][j] = in[j][k];
          r[1][j] = in[j][k] + in[2 + j][k];
          r[2][j] = in[j][k] - in[2 + j][k];
          r[3][j] = -in[2 + j][k];
        }
        T* o = out + f0 + k;
        for (int i = 0; i < 4; ++i) {  // (A dz) A^T
          o[(i * 4 + 0) * plane] = r[i][0];
          o[(i * 4 + 1) * plane] = r[i][0] + r[i][1];
          o[(i * 4 + 2) * plane] = r[i][0] - r[i][1];
          o[(i * 4 + 3) * plane] = -r[i][1];
        }
      }
    }
  }
}

// The 3x3 filter gradient of one channel pair, (G^T s G), from its 16 summed products s; tap (kh,
// kw) goes to dw[(kh * 3 + kw) * stride]. G^T's rows are (1, 1/2, 1/2, 0), (0, 1/2, -1/2, 0),
// (0, 1/2, 1/2, 1).
template <typename T>
void filter_from_sums(const T (&s)[16], int64_t stride, T* dw) {
  const T half = T(0.5);
  T q[3][4];  // G^T s
  for (int j = 0; j < 4; ++j) {
    q[0][j] = s[j] + half * (s[4 + j] + s[8 + j]);
    q[1][j] = half * (s[4 + j] - s[8 + j]);
    q[2][j] = half * (s[4 + j] + s[8 + j]) + s[12 + j];
  }
  for (int kh = 0; kh < 3; ++kh) {  // (G^T s) G
    dw[(kh * 3 + 0) * stride] = q[kh][0] + half * (q[kh][1] + q[kh][2]);
    dw[(kh * 3 + 1) * stride] = half * (q[kh][1] - q[kh][2]);
    dw[(kh * 3 + 2) * stride] = half * (q[kh][1] + q[kh][2]) + q[kh][3];
  }
}

}  // namespace

bool conv_winograd_enabled() { return winograd_on.load(std::memory_order_relaxed); }

bool set_conv_winograd(bool enabled) { return winograd_on.exchange(enabled, std::memory_order_relaxed); }

bool winograd_fits(const Conv2dGeometry& g) {
  return conv_winograd_enabled() && g.KH == 3 && g.KW == 3 && g.stride_h == 1 && g.stride_w == 1 && g.pad_top >= 0 &&
         g.pad_top <= 2 && g.pad_left >= 0 && g.pad_left <= 2 && std::min(g.C, g.F) >= kMinChannels;
}

template <typename T>
void winograd_conv2d_forward(const Conv2dGeometry& g, const T* x, const T* w, const T* bias, bool relu, T* y) {
  const std::vector<T> u = transformed_filter(w, g.C, g.F, false);
  run_tiles(g, x, u.data(), bias, relu, y);
}

template <typename T>
void winograd_conv2d_backward_data(const Conv2dGeometry& g, const T* dy, const T* w, T* dx) {
  // dx[ih] = sum over kh of dy[ih - kh + pad] w[kh] = sum over kh' of dy[ih + kh' - (2 - pad)] w[2 - kh']:
  // a forward pass over dy (F channels, OH x OW) with the turned filter and padding 2 - pad, whose
  // output is H x W with C channels.
  const Conv2dGeometry d{g.N, g.OH, g.OW, g.F, 3, 3, g.C, g.H, g.W, 1, 1, 2 - g.pad_top, 2 - g.pad_left};
  const std::vector<T> u = transformed_filter(w, g.F, g.C, true);
  run_tiles(d, dy, u.data(), static_cast<const T*>(nullptr), false, dx);
}

template <typename T>
void winograd_conv2d_backward_filter(const Conv2dGeometry& g, const T* x, const T* dy, const T* relu_y, T* dw, T* db) {
  const Tiling tl = tiling_of<T>(g, kFilterChunkBytes);
  const int64_t pairs = g.C * g.F, part = 16 * pairs + g.F;  // a partial: the 16 sums, then the bias sums
  // Chunks are grouped into runs of consecutive chunks fixed by the shape; each run adds its chunks'
  // products, in order, into its own partial, and the partials are added in run order, so the
  // result does not depend on the thread count. The partials' memory is bounded.
  const int64_t runs = std::clamp<int64_t>(kFilterPartialBytes / (part * static_cast<int64_t>(sizeof(T))), 1,
                                           std::min(std::max<int64_t>(tl.chunks, 1), kMaxFilterRuns));
  std::vector<T> partial(static_cast<std::size_t>(runs * part), T(0));
  const std::vector<T> zeros(static_cast<std::size_t>(std::max(g.C, g.F)), T(0));
  auto run = [&](int64_t r) {
    const int64_t c0 = r * tl.chunks / runs, c1 = (r + 1) * tl.chunks / runs;
    T* sums = partial.data() + r * part;
    T* v = thread_buffer<T>(16 * plane_stride<T>(tl.per_chunk, g.C), 0);
    T* z = thread_buffer<T>(16 * plane_stride<T>(tl.per_chunk, g.F), 1);
    for (int64_t c = c0; c < c1; ++c) {
      const int64_t t0 = c * tl.per_chunk, count = std::min(tl.per_chunk, tl.total - t0);
      const int64_t v_plane = plane_stride<T>(count, g.C), z_plane = plane_stride<T>(count, g.F);
      input_transform(g, tl, x, zeros.data(), t0, count, v);
      output_gradient_transform(g, tl, dy, relu_y, zeros.data(), t0, count, z, db ? sums + 16 * pairs : nullptr);
      for (int xi = 0; xi < 16; ++xi) {
        const T* a = v + xi * v_plane;
        const T* b = z + xi * z_plane;
        T* c_out = sums + xi * pairs;
        if (runs > 1)
          gemm_serial<T>(true, false, g.C, g.F, count, T(1), a, g.C, b, g.F, T(1), c_out, g.F);
        else
          gemm_parallel<T>(true, false, g.C, g.F, count, T(1), a, b, T(1), c_out);
      }
    }
  };
  parallel_chunks(runs, ChunkFn(run));
  // Each output adds its partials in run order, whichever thread adds them.
  parallel_for_work(pairs, pairs * runs * 16, [&](int64_t i0, int64_t i1) {
    T s[16];
    for (int64_t i = i0; i < i1; ++i) {
      for (int xi = 0; xi < 16; ++xi) {
        s[xi] = T(0);
        for (int64_t r = 0; r < runs; ++r) s[xi] += partial[static_cast<std::size_t>(r * part + xi * pairs + i)];
      }
      filter_from_sums(s, pairs, dw + i);
    }
  });
  if (db)
    for (int64_t f = 0; f < g.F; ++f) {
      T s = T(0);
      for (int64_t r = 0; r < runs; ++r) s += partial[static_cast<std::size_t>(r * part + 16 * pairs + f)];
      db[f] = s;
    }
}

template void winograd_conv2d_forward<float>(const Conv2dGeometry&, const float*, const float*, const float*, bool,
                                             float*);
template void winograd_conv2d_forward<double>(const Conv2dGeometry&, const double*, const double*, const double*, bool,
                                              double*);
template void winograd_conv2d_backward_data<float>(const Conv2dGeometry&, const float*, const float*, float*);
template void winograd_conv2d_backward_data<double>(const Conv2dGeometry&, const double*, const double*, double*);
template void winograd_conv2d_backward_filter<float>(const Conv2dGeometry&, const float*, const float*, const float*,
                                                     float*, float*);
template void winograd_conv2d_backward_filter<double>(const Conv2dGeometry&, const double*, const double*,
                                                      const double*, double*, double*);

}  // namespace kiln::backend
