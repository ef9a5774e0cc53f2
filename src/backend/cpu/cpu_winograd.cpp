// Winograd F(4x4, 3x3) on NHWC tensors. Each output tile of 4x4 pixels reads a 6x6 input tile; with
// B, G and A the algorithm's transforms, the tile's outputs are A^T [(G g G^T) . (B^T d B)] A. The 36
// elementwise products, summed over input channels, are 36 matrix products [tiles, C] x [C, F] of
// one chunk of tiles at a time:
//   1. filter: U[xi] = (G g G^T)[xi] for every channel pair, once per call, [36][C][F];
//   2. input:  V[xi] = (B^T d B)[xi] for every tile and channel of the chunk, [36][tiles][C];
//   3. product: M[xi] = V[xi] U[xi], [36][tiles][F];
//   4. output: y = A^T M A for every tile, then the bias and ReLU, on the pixels inside the image.
// The filter gradient is the adjoint of the same map: with Z = A dz A^T the transformed output
// gradient of a tile (dz = dy, times the ReLU's derivative when fused), dg = G^T [sum over tiles of
// V . Z] G, the sums over tiles being 36 products [C, tiles] x [tiles, F].
// A chunk's tiles are a fixed range of the batch's tiles (by the geometry, not the thread count), so
// the result does not depend on the thread count. An infinite input can give NaN where the direct
// sum would give an infinity (an inf - inf inside a transform), as cuDNN's Winograd and FFT engines do.
#include "backend/cpu/cpu_winograd.h"

#include <algorithm>
#include <atomic>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/cpu_bias_act.h"
#include "backend/cpu/cpu_thread_buffer.h"
#include "backend/cpu/cpu_turned_filter.h"

namespace kiln::backend {

namespace {

std::atomic<bool> winograd_on{true};

// Below this many channels or filters the products are too thin to repay the transforms
// (bench/README.md has the measurement per layer).
constexpr int64_t kMinChannels = 32;
// A chunk's V and M together aim at this many bytes: they stay in a core's L2 cache between the
// transforms and the products.
constexpr int64_t kChunkBytes = int64_t(1) << 20;
// The filter gradient's chunks are also the depth of its products, each added to a partial sum of
// [36, C, F], so it wants them deeper (bench/README.md has the measurement). Where that partial
// stays in a core's L2 cache (up to kCachedPartialBytes), shallower chunks cost little, and a small
// layer gets at least kMinFilterChunks of them, for the threads to share.
constexpr int64_t kFilterChunkBytes = int64_t(1) << 23;
constexpr int64_t kCachedPartialBytes = int64_t(1) << 20;
constexpr int64_t kMinFilterChunks = 4;
constexpr int64_t kMinChunkTiles = 16, kMaxChunkTiles = 1024;
// The filter gradient's partial sums ([36, C, F] per run of chunks) take at most this many bytes
// and runs, whichever is fewer; a run is the share of the batch a thread claims.
constexpr int64_t kFilterPartialBytes = int64_t(32) << 20;
constexpr int64_t kMaxFilterRuns = 64;
// Channels transformed together, staged in a local array so that the compiler can vectorise the
// transform without proving that its loads and stores do not overlap.
constexpr int64_t kBlock = 32;

// Copies b <= kBlock elements. A whole block is copied by a loop of fixed length, which the compiler
// turns into vector moves; std::copy_n of a length known only at run time becomes `rep movs`, whose
// start-up cost exceeds a block's copy (bench/README.md has the measurement).
template <typename T>
void copy_block(const T* from, int64_t b, T* to) {
  if (b == kBlock) {
    for (int64_t k = 0; k < kBlock; ++k) to[k] = from[k];
  } else {
    std::copy_n(from, b, to);
  }
}

// Elements between two of a chunk's 36 planes in V or M: the plane's size and 64 bytes more. A
// transform reads or writes all its planes at once; with planes a multiple of 4 KiB apart, all the
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

// The one-dimensional transforms of F(4, 3) on the points 0, 1, -1, 2, -2 and infinity, applied
// along both axes of a tile (the algorithm is separable). Each reads its values at in[0], in[si],
// in[2 si], ... and writes out[0], out[so], ... F(4, 3) takes 2.25 multiplications per output
// against F(2, 3)'s 4, for larger transforms and float32 rounding errors about ten times
// im2col's, where F(2, 3)'s are about equal (bench/README.md has the measurements that chose it).
struct F43 {
  static constexpr int kM = 4;  // outputs per tile side
  static constexpr int kA = 6;  // inputs per tile side, kM + 2
  // B^T: rows (4, 0, -5, 0, 1, 0), (0, -4, -4, 1, 1, 0), (0, 4, -4, -1, 1, 0), (0, -2, -1, 2, 1, 0),
  // (0, 2, -1, -2, 1, 0), (0, 4, 0, -5, 0, 1).
  template <typename T>
  static void input(const T* d, int si, T* o, int so) {
    const T d0 = d[0], d1 = d[si], d2 = d[2 * si], d3 = d[3 * si], d4 = d[4 * si], d5 = d[5 * si];
    const T a = d4 - T(4) * d2, b = d3 - T(4) * d1, c = d4 - d2, e = T(2) * (d3 - d1);
    o[0] = T(4) * d0 - T(5) * d2 + d4;
    o[so] = a + b;
    o[2 * so] = a - b;
    o[3 * so] = c + e;
    o[4 * so] = c - e;
    o[5 * so] = T(4) * d1 - T(5) * d3 + d5;
  }
  // A^T: rows (1, 1, 1, 1, 1, 0), (0, 1, -1, 2, -2, 0), (0, 1, 1, 4, 4, 0), (0, 1, -1, 8, -8, 1).
  template <typename T>
  static void output(const T* m, int si, T* o, int so) {
    const T a = m[si] + m[2 * si], b = m[si] - m[2 * si], c = m[3 * si] + m[4 * si], e = m[3 * si] - m[4 * si];
    o[0] = m[0] + a + c;
    o[so] = b + T(2) * e;
    o[2 * so] = a + T(4) * c;
    o[3 * so] = b + T(8) * e + m[5 * si];
  }
  // G: rows (1/4, 0, 0), (-1/6, -1/6, -1/6), (-1/6, 1/6, -1/6), (1/24, 1/12, 1/6), (1/24, -1/12, 1/6),
  // (0, 0, 1).
  template <typename T>
  static void filter(const T* g, int si, T* o, int so) {
    const T g0 = g[0], g1 = g[si], g2 = g[2 * si];
    o[0] = g0 / T(4);
    o[so] = -(g0 + g1 + g2) / T(6);
    o[2 * so] = -(g0 - g1 + g2) / T(6);
    o[3 * so] = g0 / T(24) + g1 / T(12) + g2 / T(6);
    o[4 * so] = g0 / T(24) - g1 / T(12) + g2 / T(6);
    o[5 * so] = g2;
  }
  // A: rows (1, 0, 0, 0), (1, 1, 1, 1), (1, -1, 1, -1), (1, 2, 4, 8), (1, -2, 4, -8), (0, 0, 0, 1).
  template <typename T>
  static void output_gradient(const T* dz, int si, T* o, int so) {
    const T z0 = dz[0], z1 = dz[si], z2 = dz[2 * si], z3 = dz[3 * si];
    o[0] = z0;
    o[so] = z0 + z1 + z2 + z3;
    o[2 * so] = z0 - z1 + z2 - z3;
    o[3 * so] = z0 + T(2) * z1 + T(4) * z2 + T(8) * z3;
    o[4 * so] = z0 - T(2) * z1 + T(4) * z2 - T(8) * z3;
    o[5 * so] = z3;
  }
  // G^T: rows (1/4, -1/6, -1/6, 1/24, 1/24, 0), (0, -1/6, 1/6, 1/12, -1/12, 0),
  // (0, -1/6, -1/6, 1/6, 1/6, 1).
  template <typename T>
  static void filter_gradient(const T* s, int si, T* o, int so) {
    const T s0 = s[0], s1 = s[si], s2 = s[2 * si], s3 = s[3 * si], s4 = s[4 * si], s5 = s[5 * si];
    o[0] = s0 / T(4) - (s1 + s2) / T(6) + (s3 + s4) / T(24);
    o[so] = (s2 - s1) / T(6) + (s3 - s4) / T(12);
    o[2 * so] = (s3 + s4 - s1 - s2) / T(6) + s5;
  }
};

// out = L in L^T for each of b channels at once, in (kIn x kIn) and out (kOut x kOut) row-major
// with one row of kBlock channels per element, L the one-dimensional map `map`. Each pass is a loop
// over the channels of a few loads and stores, which the compiler vectorises.
template <int kIn, int kOut, typename T, typename Map>
void separable(const T (*in)[kBlock], T (*out)[kBlock], int64_t b, Map map) {
  T mid[kOut * kIn][kBlock];
  for (int j = 0; j < kIn; ++j)  // down each column
    for (int64_t k = 0; k < b; ++k) {
      T from[kIn], to[kOut];
      for (int i = 0; i < kIn; ++i) from[i] = in[i * kIn + j][k];
      map(from, 1, to, 1);
      for (int i = 0; i < kOut; ++i) mid[i * kIn + j][k] = to[i];
    }
  for (int i = 0; i < kOut; ++i)  // along each row
    for (int64_t k = 0; k < b; ++k) {
      T from[kIn], to[kOut];
      for (int j = 0; j < kIn; ++j) from[j] = mid[i * kIn + j][k];
      map(from, 1, to, 1);
      for (int j = 0; j < kOut; ++j) out[i * kOut + j][k] = to[j];
    }
}

template <typename T>
Tiling tiling_of(const Conv2dGeometry& g, int64_t chunk_bytes = kChunkBytes, int64_t min_chunks = 1) {
  Tiling t{};
  t.rows = (g.OH + F43::kM - 1) / F43::kM;
  t.cols = (g.OW + F43::kM - 1) / F43::kM;
  t.total = g.N * t.rows * t.cols;
  const int64_t bytes_per_tile = F43::kA * F43::kA * (g.C + g.F) * static_cast<int64_t>(sizeof(T));
  t.per_chunk = std::min(chunk_bytes / bytes_per_tile, (t.total + min_chunks - 1) / min_chunks);
  t.per_chunk = std::clamp<int64_t>(t.per_chunk, kMinChunkTiles, kMaxChunkTiles);
  t.per_chunk = std::min(t.per_chunk, std::max<int64_t>(t.total, 1));
  t.chunks = (t.total + t.per_chunk - 1) / t.per_chunk;
  return t;
}

// Tile `tile`'s image and the origin of its outputs.
struct TilePlace {
  int64_t n, oh, ow;
};
TilePlace place_of(const Tiling& tl, int64_t tile) {
  const int64_t per_image = tl.rows * tl.cols, in_image = tile % per_image;
  return {tile / per_image, in_image / tl.cols * F43::kM, in_image % tl.cols * F43::kM};
}

// u[xi][ci][co] = (G g G^T)[xi], g the 3x3 filter from input channel ci to output channel co:
// w[kh][kw][ci][co] as stored ([3, 3, C, F]), or, `turned` (the data gradient, whose input is dy),
// w[2 - kh][2 - kw][co][ci]. A turned filter is first copied out in the stored order, so that both
// transform blocks of consecutive output channels, which the compiler vectorises.
template <typename T>
const T* transformed_filter(const T* w, int64_t cin, int64_t cout, bool turned) {
  constexpr int kA = F43::kA;
  const int64_t plane = cin * cout;
  if (turned) {
    T* stored = thread_buffer<T>(9 * plane, 3);
    turned_filter(w, 9, cout, cin, stored);  // w holds [3, 3, cout, cin]: the forward pass's C and F
    w = stored;
  }
  T* u = thread_buffer<T>(kA * kA * plane, 2);  // every element is written below
  parallel_for_work(cin, kA * kA * plane, [&](int64_t c0, int64_t c1) {
    for (int64_t ci = c0; ci < c1; ++ci)
      for (int64_t co0 = 0; co0 < cout; co0 += kBlock) {
        const int64_t b = std::min(kBlock, cout - co0);
        T g[9][kBlock], t[kA * kA][kBlock];
        for (int tap = 0; tap < 9; ++tap) copy_block(w + tap * plane + ci * cout + co0, b, g[tap]);
        separable<3, kA>(g, t, b, [](const T* i, int si, T* o, int so) { F43::filter(i, si, o, so); });
        for (int xi = 0; xi < kA * kA; ++xi) copy_block(t[xi], b, u + xi * plane + ci * cout + co0);
      }
  });
  return u;
}

// v[xi][t][c] = (B^T d B)[xi] for the chunk's tiles [t0, t0 + count), d tile t's kA x kA inputs of
// channel c (0 in the padding).
template <typename T>
void input_transform(const Conv2dGeometry& g, const Tiling& tl, const T* x, const T* zeros, int64_t t0, int64_t count,
                     T* v) {
  constexpr int kA = F43::kA, kP = kA * kA;
  const int64_t plane = plane_stride<T>(count, g.C);
  for (int64_t t = 0; t < count; ++t) {
    const TilePlace at = place_of(tl, t0 + t);
    const T* d[kP];
    for (int i = 0; i < kA; ++i)
      for (int j = 0; j < kA; ++j) {
        const int64_t ih = at.oh - g.pad_top + i, iw = at.ow - g.pad_left + j;
        const bool inside = ih >= 0 && ih < g.H && iw >= 0 && iw < g.W;
        d[i * kA + j] = inside ? x + ((at.n * g.H + ih) * g.W + iw) * g.C : zeros;
      }
    T* out = v + t * g.C;
    for (int64_t c0 = 0; c0 < g.C; c0 += kBlock) {
      const int64_t b = std::min(kBlock, g.C - c0);
      T in[kP][kBlock], r[kP][kBlock];
      for (int p = 0; p < kP; ++p) copy_block(d[p] + c0, b, in[p]);
      separable<kA, kA>(in, r, b, [](const T* i, int si, T* o, int so) { F43::input(i, si, o, so); });
      for (int xi = 0; xi < kP; ++xi) copy_block(r[xi], b, out + xi * plane + c0);
    }
  }
}

// y's kM x kM pixels of each tile = A^T m A, then the bias and ReLU, where they are inside the output.
template <typename T>
void output_transform(const Conv2dGeometry& g, const Tiling& tl, const T* m, int64_t t0, int64_t count, const T* bias,
                      bool relu, T* y) {
  constexpr int kM = F43::kM, kP = F43::kA * F43::kA;
  const int64_t plane = plane_stride<T>(count, g.F);
  for (int64_t t = 0; t < count; ++t) {
    const TilePlace at = place_of(tl, t0 + t);
    T* px[kM * kM];  // the tile's output pixels, null outside the output
    for (int q = 0; q < kM * kM; ++q) {
      const int64_t oh = at.oh + q / kM, ow = at.ow + q % kM;
      px[q] = (oh < g.OH && ow < g.OW) ? y + ((at.n * g.OH + oh) * g.OW + ow) * g.F : nullptr;
    }
    const T* src = m + t * g.F;
    for (int64_t f0 = 0; f0 < g.F; f0 += kBlock) {
      const int64_t b = std::min(kBlock, g.F - f0);
      T in[kP][kBlock];
      for (int p = 0; p < kP; ++p) copy_block(src + p * plane + f0, b, in[p]);
      T out[kM * kM][kBlock];
      separable<F43::kA, kM>(in, out, b, [](const T* i, int si, T* o, int so) { F43::output(i, si, o, so); });
      for (int q = 0; q < kM * kM; ++q)
        if (px[q]) {
          copy_block(out[q], b, px[q] + f0);
          bias_act_rows(px[q] + f0, bias ? bias + f0 : nullptr, relu, 1, b);
        }
    }
  }
}

// The forward pass of `g` with the transformed filter `u` ([kA * kA][C][F]).
template <typename T>
void run_tiles(const Conv2dGeometry& g, const T* x, const T* u, const T* bias, bool relu, T* y) {
  constexpr int kP = F43::kA * F43::kA;
  const Tiling tl = tiling_of<T>(g);
  const std::vector<T> zeros(static_cast<std::size_t>(g.C), T(0));
  parallel_for(tl.chunks, tl.chunks, [&](int64_t c, int64_t) {
    const int64_t t0 = c * tl.per_chunk, count = std::min(tl.per_chunk, tl.total - t0);
    const int64_t v_plane = plane_stride<T>(count, g.C), m_plane = plane_stride<T>(count, g.F);
    T* v = thread_buffer<T>(kP * plane_stride<T>(tl.per_chunk, g.C), 0);
    T* m = thread_buffer<T>(kP * plane_stride<T>(tl.per_chunk, g.F), 1);
    input_transform(g, tl, x, zeros.data(), t0, count, v);
    for (int xi = 0; xi < kP; ++xi) {
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
// chunk's tiles, dz tile t's kM x kM pixels (0 outside the output), dz = dy * relu'(y) where relu_y
// (the fused ReLU's output) is given, by unary_backward's rule, else dy. The pixels' dz are added to
// `bias_sums` (unless null) in tile order.
template <typename T>
void output_gradient_transform(const Conv2dGeometry& g, const Tiling& tl, const T* dy, const T* relu_y, const T* zeros,
                               int64_t t0, int64_t count, T* z, T* bias_sums) {
  constexpr int kM = F43::kM, kQ = kM * kM, kP = F43::kA * F43::kA;
  const int64_t plane = plane_stride<T>(count, g.F);
  for (int64_t t = 0; t < count; ++t) {
    const TilePlace at = place_of(tl, t0 + t);
    const T* d[kQ];  // the tile's dy pixels, zeros outside the output
    const T* y[kQ];  // and their outputs, for the ReLU's derivative
    for (int q = 0; q < kQ; ++q) {
      const int64_t oh = at.oh + q / kM, ow = at.ow + q % kM;
      const bool inside = oh < g.OH && ow < g.OW;
      const int64_t pixel = ((at.n * g.OH + oh) * g.OW + ow) * g.F;
      d[q] = inside ? dy + pixel : zeros;
      y[q] = inside && relu_y ? relu_y + pixel : zeros;
    }
    T* out = z + t * g.F;
    for (int64_t f0 = 0; f0 < g.F; f0 += kBlock) {
      const int64_t b = std::min(kBlock, g.F - f0);
      T in[kQ][kBlock];
      for (int q = 0; q < kQ; ++q) {
        copy_block(d[q] + f0, b, in[q]);
        if (relu_y)
          for (int64_t k = 0; k < b; ++k) in[q][k] *= math::derivative<UnaryOp::Relu>(y[q][f0 + k], y[q][f0 + k]);
        if (bias_sums)
          for (int64_t k = 0; k < b; ++k) bias_sums[f0 + k] += in[q][k];
      }
      T r[kP][kBlock];
      separable<kM, F43::kA>(in, r, b, [](const T* i, int si, T* o, int so) { F43::output_gradient(i, si, o, so); });
      for (int xi = 0; xi < kP; ++xi) copy_block(r[xi], b, out + xi * plane + f0);
    }
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
  run_tiles(g, x, transformed_filter(w, g.C, g.F, false), bias, relu, y);
}

template <typename T>
void winograd_conv2d_backward_data(const Conv2dGeometry& g, const T* dy, const T* w, T* dx) {
  // dx[ih] = sum over kh of dy[ih - kh + pad] w[kh] = sum over kh' of dy[ih + kh' - (2 - pad)] w[2 - kh']:
  // a forward pass over dy (F channels, OH x OW) with the turned filter and padding 2 - pad, whose
  // output is H x W with C channels.
  const Conv2dGeometry d{g.N, g.OH, g.OW, g.F, 3, 3, g.C, g.H, g.W, 1, 1, 2 - g.pad_top, 2 - g.pad_left};
  run_tiles(d, dy, transformed_filter(w, g.F, g.C, true), static_cast<const T*>(nullptr), false, dx);
}

template <typename T>
void winograd_conv2d_backward_filter(const Conv2dGeometry& g, const T* x, const T* dy, const T* relu_y, T* dw, T* db) {
  constexpr int kP = F43::kA * F43::kA;
  const int64_t pairs = g.C * g.F, part = kP * pairs + g.F;  // a partial: the kP sums, then the bias sums
  const int64_t part_bytes = part * static_cast<int64_t>(sizeof(T));
  const Tiling tl = tiling_of<T>(g, kFilterChunkBytes, part_bytes <= kCachedPartialBytes ? kMinFilterChunks : 1);
  // Chunks are grouped into runs of consecutive chunks fixed by the shape; each run adds its chunks'
  // products, in order, into its own partial, and the partials are added in run order, so the
  // result does not depend on the thread count. The partials' memory is bounded.
  const int64_t runs = std::clamp<int64_t>(kFilterPartialBytes / part_bytes, 1,
                                           std::min(std::max<int64_t>(tl.chunks, 1), kMaxFilterRuns));
  // Each run zeroes its own partial, in parallel and in the cache of the thread that fills it.
  T* partial = thread_buffer<T>(runs * part, 2);
  const std::vector<T> zeros(static_cast<std::size_t>(std::max(g.C, g.F)), T(0));
  auto run = [&](int64_t r) {
    const int64_t c0 = r * tl.chunks / runs, c1 = (r + 1) * tl.chunks / runs;
    T* sums = partial + r * part;
    std::fill_n(sums, part, T(0));
    T* v = thread_buffer<T>(kP * plane_stride<T>(tl.per_chunk, g.C), 0);
    T* z = thread_buffer<T>(kP * plane_stride<T>(tl.per_chunk, g.F), 1);
    for (int64_t c = c0; c < c1; ++c) {
      const int64_t t0 = c * tl.per_chunk, count = std::min(tl.per_chunk, tl.total - t0);
      const int64_t v_plane = plane_stride<T>(count, g.C), z_plane = plane_stride<T>(count, g.F);
      input_transform(g, tl, x, zeros.data(), t0, count, v);
      output_gradient_transform(g, tl, dy, relu_y, zeros.data(), t0, count, z, db ? sums + kP * pairs : nullptr);
      for (int xi = 0; xi < kP; ++xi) {
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
  // Each output adds its partials in run order, whichever thread adds them; then dw = G^T s G, for
  // blocks of consecutive channel pairs at once.
  const int64_t blocks = (pairs + kBlock - 1) / kBlock;
  parallel_for_work(blocks, pairs * runs * kP, [&](int64_t b0, int64_t b1) {
    for (int64_t blk = b0; blk < b1; ++blk) {
      const int64_t i0 = blk * kBlock, b = std::min(kBlock, pairs - i0);
      T s[kP][kBlock], taps[9][kBlock];
      for (int xi = 0; xi < kP; ++xi) {
        std::fill_n(s[xi], b, T(0));
        for (int64_t r = 0; r < runs; ++r) {
          const T* from = partial + r * part + xi * pairs + i0;
          for (int64_t k = 0; k < b; ++k) s[xi][k] += from[k];
        }
      }
      separable<F43::kA, 3>(s, taps, b, [](const T* i, int si, T* o, int so) { F43::filter_gradient(i, si, o, so); });
      for (int tap = 0; tap < 9; ++tap) copy_block(taps[tap], b, dw + tap * pairs + i0);
    }
  });
  if (db)
    for (int64_t f = 0; f < g.F; ++f) {
      T s = T(0);
      for (int64_t r = 0; r < runs; ++r) s += partial[r * part + kP * pairs + f];
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
