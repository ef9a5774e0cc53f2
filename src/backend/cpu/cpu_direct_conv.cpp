// Direct convolution on NHWC float32 tensors, stride 1 (see cpu_direct_conv.h for why). The batch is
// cut into bands of output rows of one image (a size fixed by the geometry, not the thread count).
// A band's input rows are first copied into a zero-padded buffer, so that the summing loops need no
// bounds checks. The forward pass sums, for a block of up to kPixels output pixels of one row, all
// its 4 to 16 filters in one or two groups of 8 lanes (one FMA per tap, channel and group); where
// their count is not a multiple of 8, the last group's loads and stores are masked to its filters (a
// full-width store would write into the next pixel). The data gradient is the forward pass of dy
// with the filter turned by 180 degrees and its channels swapped. The filter gradient keeps a block
// of kChannels input channels' sums for one tap in registers while the band's pixels stream past;
// each run of bands (at least kBandPixels output pixels) adds into its own partial sum, and the
// partials are added in run order.
#include "backend/cpu/cpu_direct_conv.h"

#include <algorithm>
#include <atomic>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/cpu_bias_act.h"
#include "backend/cpu/cpu_thread_buffer.h"
#include "backend/cpu/cpu_turned_filter.h"

#if defined(__AVX2__) && defined(__FMA__)
#define KILN_DIRECT_CONV 1
#include <immintrin.h>
#endif

namespace kiln::backend {

namespace {

std::atomic<bool> direct_on{true};

// The data gradient's geometry: a forward pass over dy (F channels, OH x OW) with the turned filter,
// whose output is the input's H x W x C.
Conv2dGeometry data_geometry(const Conv2dGeometry& g) {
  return {g.N, g.OH, g.OW, g.F, g.KH, g.KW, g.C, g.H, g.W, 1, 1, g.KH - 1 - g.pad_top, g.KW - 1 - g.pad_left};
}

#ifdef KILN_DIRECT_CONV

// Input channels summed per output pixel, at most: measured up to 128 (3x3 layers of 24 to 128
// channels ran faster than by im2col + GEMM, 1x1 ones about as fast; a 1x1 layer of 192 channels
// slower), where a band's padded input still fits the L2 cache (bench/README.md).
constexpr int64_t kMaxChannels = 128;
constexpr int64_t kMaxFilters = 16;  // filters, at most: two groups of 8 lanes
// Filters, at least: with fewer, most of a group's lanes would sum nothing, and im2col + GEMM is as
// fast or faster (bench/README.md).
constexpr int64_t kMinFilters = 4;
constexpr int64_t kBandPixels = 512;  // output pixels a band aims for
constexpr int64_t kMaxRuns = 16;      // filter-gradient partial sums, at most

bool paddings_fit(int64_t in, int64_t out, int64_t k, int64_t pad_front) {
  const int64_t pad_back = out + k - 1 - in - pad_front;
  return pad_front >= 0 && pad_front < k && pad_back >= 0 && pad_back < k;
}

bool geometry_fits(const Conv2dGeometry& g) {
  return direct_on.load(std::memory_order_relaxed) && g.stride_h == 1 && g.stride_w == 1 && g.C >= 1 &&
         g.C <= kMaxChannels && g.F >= kMinFilters && g.F <= kMaxFilters && g.OH >= 1 && g.OW >= 1 &&
         paddings_fit(g.H, g.OH, g.KH, g.pad_top) && paddings_fit(g.W, g.OW, g.KW, g.pad_left);
}

// The filters' groups of 8 lanes: how many, and the mask of the last one's filters.
struct Groups {
  int count;
  bool partial;  // the last group has fewer than 8 filters
  __m256i last;  // lanes of the last group that hold filters
};

Groups groups_of(int64_t F) {
  const auto in_last = static_cast<int>(F - 8 * ((F - 1) / 8));
  return {static_cast<int>((F + 7) / 8), F % 8 != 0,
          _mm256_cmpgt_epi32(_mm256_set1_epi32(in_last), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7))};
}

// Group v of 8 filters at p: loaded, or stored, whole, or masked to the filters where it is the
// last group of a partial set.
template <int kV, bool kPartial>
__m256 load_group(const float* p, int v, __m256i last) {
  return kPartial && v == kV - 1 ? _mm256_maskload_ps(p, last) : _mm256_loadu_ps(p);
}
template <int kV, bool kPartial>
void store_group(float* p, int v, __m256i last, __m256 value) {
  if (kPartial && v == kV - 1)
    _mm256_maskstore_ps(p, last, value);
  else
    _mm256_storeu_ps(p, value);
}

struct Bands {
  int64_t rows;   // output rows per band (the last band of an image may have fewer)
  int64_t per;    // bands per image
  int64_t count;  // bands of the batch
};

Bands bands_of(const Conv2dGeometry& g) {
  const int64_t rows = std::clamp<int64_t>(kBandPixels / g.OW, 1, g.OH);
  const int64_t per = (g.OH + rows - 1) / rows;
  return {rows, per, g.N * per};
}

// Copies the input rows that output rows [oh0, oh0 + rows) of image n read into `xp`, (rows + KH -
// 1) x (OW + KW - 1) pixels of C channels, zeros where the window reaches into the padding.
void pad_band(const Conv2dGeometry& g, const float* x, int64_t n, int64_t oh0, int64_t rows, float* xp) {
  const int64_t wp = g.OW + g.KW - 1, row_len = wp * g.C;
  const int64_t copy_cols = std::min(g.W, wp - g.pad_left);
  for (int64_t r = 0; r < rows + g.KH - 1; ++r) {
    float* dst = xp + r * row_len;
    const int64_t ih = oh0 - g.pad_top + r;
    if (ih < 0 || ih >= g.H) {
      std::fill_n(dst, row_len, 0.0F);
      continue;
    }
    std::fill_n(dst, g.pad_left * g.C, 0.0F);
    std::copy_n(x + (n * g.H + ih) * g.W * g.C, copy_cols * g.C, dst + g.pad_left * g.C);
    std::fill(dst + (g.pad_left + copy_cols) * g.C, dst + row_len, 0.0F);
  }
}

constexpr int kPixels = 6;    // output pixels summed together in the forward pass
constexpr int kChannels = 4;  // input channels summed together in the filter gradient

// y's kP pixels from `in` (the padded band at the block's first window), kV groups of 8 filters.
template <int kP, int kV, bool kPartial>
void forward_block(const Conv2dGeometry& g, __m256i last, const float* in, int64_t in_row, const float* w,
                   const float* bias, bool relu, float* out) {
  __m256 acc[kP][kV];
  for (auto& pixel : acc)
    for (auto& a : pixel) a = _mm256_setzero_ps();
  const int64_t C = g.C, F = g.F;
  for (int64_t kh = 0; kh < g.KH; ++kh)
    for (int64_t kw = 0; kw < g.KW; ++kw) {
      const float* src = in + kh * in_row + kw * C;
      const float* taps = w + (kh * g.KW + kw) * C * F;
      for (int64_t c = 0; c < C; ++c) {
        __m256 wv[kV];
        for (int v = 0; v < kV; ++v) wv[v] = load_group<kV, kPartial>(taps + c * F + 8 * v, v, last);
        for (int p = 0; p < kP; ++p) {
          const __m256 s = _mm256_set1_ps(src[p * C + c]);
          for (int v = 0; v < kV; ++v) acc[p][v] = _mm256_fmadd_ps(s, wv[v], acc[p][v]);
        }
      }
    }
  for (int p = 0; p < kP; ++p)
    for (int v = 0; v < kV; ++v) store_group<kV, kPartial>(out + p * F + 8 * v, v, last, acc[p][v]);
  bias_act_rows(out, bias, relu, kP, F);
}

// The last `rest` (< kP) pixels of a row, by the block of that width.
template <int kP, int kV, bool kPartial>
void forward_rest(int64_t rest, const Conv2dGeometry& g, __m256i last, const float* in, int64_t in_row, const float* w,
                  const float* bias, bool relu, float* out) {
  if constexpr (kP > 1) {
    if (rest == kP - 1)
      forward_block<kP - 1, kV, kPartial>(g, last, in, in_row, w, bias, relu, out);
    else
      forward_rest<kP - 1, kV, kPartial>(rest, g, last, in, in_row, w, bias, relu, out);
  }
}

template <int kV, bool kPartial>
void forward_row(const Conv2dGeometry& g, __m256i last, const float* in, int64_t in_row, const float* w,
                 const float* bias, bool relu, float* out) {
  int64_t ow = 0;
  for (; ow + kPixels <= g.OW; ow += kPixels)
    forward_block<kPixels, kV, kPartial>(g, last, in + ow * g.C, in_row, w, bias, relu, out + ow * g.F);
  forward_rest<kPixels, kV, kPartial>(g.OW - ow, g, last, in + ow * g.C, in_row, w, bias, relu, out + ow * g.F);
}

// Calls f with the groups' count and partiality as template arguments: f.template operator()<kV, kPartial>().
template <typename F>
void with_groups(const Groups& gr, F&& f) {
  if (gr.count == 2)
    gr.partial ? f.template operator()<2, true>() : f.template operator()<2, false>();
  else
    gr.partial ? f.template operator()<1, true>() : f.template operator()<1, false>();
}

void forward(const Conv2dGeometry& g, const float* x, const float* w, const float* bias, bool relu, float* y) {
  const Bands b = bands_of(g);
  const Groups gr = groups_of(g.F);
  const int64_t in_row = (g.OW + g.KW - 1) * g.C;
  parallel_for(b.count, b.count, [&](int64_t band, int64_t) {
    const int64_t n = band / b.per, oh0 = band % b.per * b.rows, rows = std::min(b.rows, g.OH - oh0);
    float* xp = thread_buffer<float>((b.rows + g.KH - 1) * in_row, 0);
    pad_band(g, x, n, oh0, rows, xp);
    for (int64_t r = 0; r < rows; ++r) {
      float* out = y + ((n * g.OH + oh0 + r) * g.OW) * g.F;
      with_groups(gr, [&]<int kV, bool kPartial>() {
        forward_row<kV, kPartial>(g, gr.last, xp + r * in_row, in_row, w, bias, relu, out);
      });
    }
  });
}

// Adds, for one tap and input channels [c0, c0 + kC), the band's products of input and output
// gradient into sums[kC][F] (kV groups of 8 filters).
template <int kC, int kV, bool kPartial>
void filter_block(const Conv2dGeometry& g, __m256i last, const float* xp, int64_t in_row, const float* dz, int64_t rows,
                  int64_t kh, int64_t kw, int64_t c0, float* sums) {
  __m256 acc[kC][kV];
  for (int c = 0; c < kC; ++c)
    for (int v = 0; v < kV; ++v) acc[c][v] = load_group<kV, kPartial>(sums + c * g.F + 8 * v, v, last);
  for (int64_t r = 0; r < rows; ++r) {
    const float* src = xp + (r + kh) * in_row + kw * g.C + c0;
    const float* grad = dz + r * g.OW * g.F;
    for (int64_t ow = 0; ow < g.OW; ++ow) {
      __m256 d[kV];
      for (int v = 0; v < kV; ++v) d[v] = load_group<kV, kPartial>(grad + ow * g.F + 8 * v, v, last);
      for (int c = 0; c < kC; ++c) {
        const __m256 s = _mm256_set1_ps(src[ow * g.C + c]);
        for (int v = 0; v < kV; ++v) acc[c][v] = _mm256_fmadd_ps(s, d[v], acc[c][v]);
      }
    }
  }
  for (int c = 0; c < kC; ++c)
    for (int v = 0; v < kV; ++v) store_group<kV, kPartial>(sums + c * g.F + 8 * v, v, last, acc[c][v]);
}

// The band's sums for input channels [c0, c0 + rest) (rest < kC), by the block of that width.
template <int kC, int kV, bool kPartial>
void filter_rest(int64_t rest, const Conv2dGeometry& g, __m256i last, const float* xp, int64_t in_row, const float* dz,
                 int64_t rows, int64_t kh, int64_t kw, int64_t c0, float* sums) {
  if constexpr (kC > 1) {
    if (rest == kC - 1)
      filter_block<kC - 1, kV, kPartial>(g, last, xp, in_row, dz, rows, kh, kw, c0, sums);
    else
      filter_rest<kC - 1, kV, kPartial>(rest, g, last, xp, in_row, dz, rows, kh, kw, c0, sums);
  }
}

template <int kV, bool kPartial>
void filter_band(const Conv2dGeometry& g, __m256i last, const float* xp, int64_t in_row, const float* dz, int64_t rows,
                 float* partial) {
  for (int64_t kh = 0; kh < g.KH; ++kh)
    for (int64_t kw = 0; kw < g.KW; ++kw) {
      float* tap = partial + (kh * g.KW + kw) * g.C * g.F;
      int64_t c0 = 0;
      for (; c0 + kChannels <= g.C; c0 += kChannels)
        filter_block<kChannels, kV, kPartial>(g, last, xp, in_row, dz, rows, kh, kw, c0, tap + c0 * g.F);
      filter_rest<kChannels, kV, kPartial>(g.C - c0, g, last, xp, in_row, dz, rows, kh, kw, c0, tap + c0 * g.F);
    }
}

void backward_filter(const Conv2dGeometry& g, const float* x, const float* dy, const float* relu_y, float* dw,
                     float* db) {
  const Bands b = bands_of(g);
  const int64_t in_row = (g.OW + g.KW - 1) * g.C, taps = g.KH * g.KW * g.C * g.F, part = taps + g.F;
  // At least kBandPixels output pixels a run: a run's partial sums (taps x C x F) are zeroed and
  // added, which small images at many channels would otherwise pay once per image.
  const int64_t runs = std::max<int64_t>(1, std::min({g.N * g.OH * g.OW / kBandPixels, b.count, kMaxRuns}));
  const Groups gr = groups_of(g.F);
  float* partial = thread_buffer<float>(runs * part, 2);  // each run zeroes its own
  auto run = [&](int64_t r) {
    float* mine = partial + r * part;
    std::fill_n(mine, part, 0.0F);
    float* xp = thread_buffer<float>((b.rows + g.KH - 1) * in_row, 0);
    for (int64_t band = r * b.count / runs; band < (r + 1) * b.count / runs; ++band) {
      const int64_t n = band / b.per, oh0 = band % b.per * b.rows, rows = std::min(b.rows, g.OH - oh0);
      const int64_t pixels = rows * g.OW;
      const float* grad = dy + (n * g.OH + oh0) * g.OW * g.F;
      if (relu_y) {
        // unary_backward's ReLU rule, the derivative taken first so that the loop vectorises.
        float* dz = thread_buffer<float>(b.rows * g.OW * g.F, 1);
        const float* y = relu_y + (n * g.OH + oh0) * g.OW * g.F;
        for (int64_t i = 0; i < pixels * g.F; ++i) dz[i] = grad[i] * math::derivative<UnaryOp::Relu>(y[i], y[i]);
        grad = dz;
      }
      if (db)
        for (int64_t p = 0; p < pixels; ++p)
          for (int64_t f = 0; f < g.F; ++f) mine[taps + f] += grad[p * g.F + f];
      pad_band(g, x, n, oh0, rows, xp);
      with_groups(
          gr, [&]<int kV, bool kPartial>() { filter_band<kV, kPartial>(g, gr.last, xp, in_row, grad, rows, mine); });
    }
  };
  parallel_chunks(runs, ChunkFn(run));
  for (int64_t i = 0; i < part; ++i) {
    float s = 0.0F;
    for (int64_t r = 0; r < runs; ++r) s += partial[r * part + i];
    if (i < taps)
      dw[i] = s;
    else if (db)
      db[i - taps] = s;
  }
}

#else

[[noreturn]] void not_compiled() {
  throw Error("conv2d", "the direct convolution is not compiled into this build; expected a call only where it fits");
}

#endif  // KILN_DIRECT_CONV

}  // namespace

bool direct_conv_available() {
#ifdef KILN_DIRECT_CONV
  return true;
#else
  return false;
#endif
}

bool direct_conv_fits(const Conv2dGeometry& g) {
#ifdef KILN_DIRECT_CONV
  return geometry_fits(g);
#else
  (void)g;
  return false;
#endif
}

// The data gradient's filters are the layer's channels: only whole groups of 8 (with a masked group,
// im2col + GEMM's data gradient was faster at every shape measured).
bool direct_conv_data_fits(const Conv2dGeometry& g) { return g.C % 8 == 0 && direct_conv_fits(data_geometry(g)); }

bool set_conv_direct(bool enabled) { return direct_on.exchange(enabled, std::memory_order_relaxed); }

void direct_conv2d_forward(const Conv2dGeometry& g, const float* x, const float* w, const float* bias, bool relu,
                           float* y) {
#ifdef KILN_DIRECT_CONV
  forward(g, x, w, bias, relu, y);
#else
  (void)g, (void)x, (void)w, (void)bias, (void)relu, (void)y;
  not_compiled();
#endif
}

void direct_conv2d_backward_data(const Conv2dGeometry& g, const float* dy, const float* w, float* dx) {
#ifdef KILN_DIRECT_CONV
  // dx[ih] = sum over kh of dy[ih + pad - kh] w[kh] = sum over kh' of dy[ih + kh' - (KH - 1 - pad)] w[KH - 1 - kh']:
  // the forward pass of data_geometry(g) with w'[kh'][kw'][f][c] = w[KH - 1 - kh'][KW - 1 - kw'][c][f].
  std::vector<float> turned(static_cast<std::size_t>(g.KH * g.KW * g.C * g.F));
  turned_filter(w, g.KH * g.KW, g.C, g.F, turned.data());
  forward(data_geometry(g), dy, turned.data(), nullptr, false, dx);
#else
  (void)g, (void)dy, (void)w, (void)dx;
  not_compiled();
#endif
}

void direct_conv2d_backward_filter(const Conv2dGeometry& g, const float* x, const float* dy, const float* relu_y,
                                   float* dw, float* db) {
#ifdef KILN_DIRECT_CONV
  backward_filter(g, x, dy, relu_y, dw, db);
#else
  (void)g, (void)x, (void)dy, (void)relu_y, (void)dw, (void)db;
  not_compiled();
#endif
}

}  // namespace kiln::backend
