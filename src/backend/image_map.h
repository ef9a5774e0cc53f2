// The per-axis arithmetic of image resampling, shared by the CPU backend and the CUDA kernels so
// both devices compute the same bits: where an output pixel samples the input along one axis, which
// input pixels (taps) that reads with which weights under each fill mode, and how one axis of a
// random transform is drawn from a sample's Philox numbers.
//
// Why explicit roundings: nvcc contracts a * b + c into one FMA, which the CPU build forbids
// (-ffp-contract=off); mul_rn and add_rn round every product and sum on both devices, so a bilinear
// weight or a shift agrees bit for bit.
#pragma once

#include <cmath>
#include <cstdint>

#include "backend/backend.h"
#include "backend/host_device.h"

namespace kiln::backend::image {

/// a * b, rounded once, never fused.
KILN_HOST_DEVICE inline float mul_rn(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fmul_rn(a, b);
#else
  return a * b;
#endif
}
/// a * b, rounded once, never fused.
KILN_HOST_DEVICE inline double mul_rn(double a, double b) {
#if defined(__CUDA_ARCH__)
  return __dmul_rn(a, b);
#else
  return a * b;
#endif
}
/// a + b, rounded once, never fused.
KILN_HOST_DEVICE inline float add_rn(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fadd_rn(a, b);
#else
  return a + b;
#endif
}
/// a + b, rounded once, never fused.
KILN_HOST_DEVICE inline double add_rn(double a, double b) {
#if defined(__CUDA_ARCH__)
  return __dadd_rn(a, b);
#else
  return a + b;
#endif
}

/// Index i of the infinite grid that `fill` extends an axis of `len` pixels to: a pixel in
/// [0, len), or -1 for a point Constant fills.
KILN_HOST_DEVICE inline int64_t map_index(int64_t i, int64_t len, ImageFill fill) {
  if (i >= 0 && i < len) return i;
  switch (fill) {
    case ImageFill::Constant:
      return -1;
    case ImageFill::Nearest:
      return i < 0 ? 0 : len - 1;
    case ImageFill::Wrap: {
      const int64_t m = i % len;
      return m < 0 ? m + len : m;
    }
    case ImageFill::Reflect: {
      const int64_t period = 2 * len;
      int64_t m = i % period;
      if (m < 0) m += period;
      return m < len ? m : period - 1 - m;
    }
  }
  return -1;
}

/// The input pixels one output coordinate reads along an axis: up to two taps, each an index from
/// map_index (-1: the fill value) and its weight.
template <typename T>
struct Taps {
  int count;
  int64_t index[2];
  T weight[2];
};

/// Coordinates beyond this are far outside any image; clamping them first keeps the conversion to
/// an integer defined.
constexpr double kCoordLimit = 4.0e15;

/// The taps of sampling coordinate s on an axis of `len` pixels. Bilinear: floor(s) with weight
/// (floor(s) + 1) - s and floor(s) + 1 with weight s - floor(s), TensorFlow's formulas. Nearest:
/// round(s), halves away from zero, weight 1. Taps are mapped by `fill` on the integer grid, which
/// equals TensorFlow's mapping of the coordinate for Constant, Nearest and Reflect.
template <typename T>
KILN_HOST_DEVICE inline Taps<T> axis_taps(T s, int64_t len, bool bilinear, ImageFill fill) {
  if (s > T(kCoordLimit)) s = T(kCoordLimit);
  if (s < T(-kCoordLimit)) s = T(-kCoordLimit);
  Taps<T> taps{};
  if (!bilinear) {
    taps.count = 1;
    taps.index[0] = map_index(static_cast<int64_t>(::round(s)), len, fill);
    taps.weight[0] = T(1);
    return taps;
  }
  const T f = ::floor(s);
  const int64_t i = static_cast<int64_t>(f);
  taps.count = 2;
  taps.index[0] = map_index(i, len, fill);
  taps.index[1] = map_index(i + 1, len, fill);
  taps.weight[0] = add_rn(add_rn(f, T(1)), -s);
  taps.weight[1] = add_rn(s, -f);
  return taps;
}

/// The coordinate output index o samples along an axis with transform (a, b): a o + b.
template <typename T>
KILN_HOST_DEVICE inline T sample_coord(T a, T b, int64_t o) {
  return add_rn(mul_rn(a, static_cast<T>(o)), b);
}

/// The transform (a, b) of one axis from its spec and the sample's stream words: w0 (the sample's
/// first word, which flips read for both axes) and w (this axis' word). Flip tests u0 <= 1/2 on
/// the integer word; the others use u = w / 2^32 exactly, in double.
template <typename T>
KILN_HOST_DEVICE inline void axis_transform(const ImageAxisSpec& spec, uint32_t w0, uint32_t w, T* a, T* b) {
  const double u = static_cast<double>(w) * (1.0 / 4294967296.0);
  switch (spec.kind) {
    case ImageAxisKind::Fixed:
      *a = static_cast<T>(spec.scale);
      *b = static_cast<T>(spec.offset);
      return;
    case ImageAxisKind::Flip: {
      const bool flip = w0 <= 0x80000000u;
      *a = flip ? T(-1) : T(1);
      *b = flip ? static_cast<T>(spec.size - 1) : T(0);
      return;
    }
    case ImageAxisKind::Shift: {
      const double fraction = add_rn(spec.lo, mul_rn(add_rn(spec.hi, -spec.lo), u));
      *a = T(1);
      *b = static_cast<T>(-mul_rn(fraction, static_cast<double>(spec.size)));
      return;
    }
    case ImageAxisKind::Crop: {
      int64_t start = static_cast<int64_t>(::floor(mul_rn(u, static_cast<double>(spec.range + 1))));
      if (start > spec.range) start = spec.range;
      *a = T(1);
      *b = static_cast<T>(start);
      return;
    }
  }
}

/// Output pixel (n, i, j) of image_transform, channels [c0, c1), written to out[c0 .. c1).
template <typename T>
KILN_HOST_DEVICE inline void output_pixel(const ImageTransformGeometry& g, const T* x, const T* t, int64_t n, int64_t i,
                                          int64_t j, int64_t c0, int64_t c1, T* out) {
  const T* tn = t + 4 * n;
  const Taps<T> ty = axis_taps(sample_coord(tn[0], tn[1], i), g.H, g.bilinear, g.fill);
  const Taps<T> tx = axis_taps(sample_coord(tn[2], tn[3], j), g.W, g.bilinear, g.fill);
  const T fill = static_cast<T>(g.fill_value);
  const T* xn = x + n * g.H * g.W * g.C;
  const auto read = [&](int64_t iy, int64_t ix, int64_t c) -> T {
    return (iy < 0 || ix < 0) ? fill : xn[(iy * g.W + ix) * g.C + c];
  };
  for (int64_t c = c0; c < c1; ++c) {
    if (!g.bilinear) {
      out[c] = read(ty.index[0], tx.index[0], c);
      continue;
    }
    // TensorFlow's order: along x within each of the two rows, then along y.
    const T top = add_rn(mul_rn(tx.weight[0], read(ty.index[0], tx.index[0], c)),
                         mul_rn(tx.weight[1], read(ty.index[0], tx.index[1], c)));
    const T bottom = add_rn(mul_rn(tx.weight[0], read(ty.index[1], tx.index[0], c)),
                            mul_rn(tx.weight[1], read(ty.index[1], tx.index[1], c)));
    out[c] = add_rn(mul_rn(ty.weight[0], top), mul_rn(ty.weight[1], bottom));
  }
}

/// The weight with which output coordinate o (transform a, b) reads input index `in` along an axis
/// (the sum over its taps that map there); false when none does.
template <typename T>
KILN_HOST_DEVICE inline bool tap_weight(const ImageTransformGeometry& g, T a, T b, int64_t o, int64_t len, int64_t in,
                                        T* weight) {
  const Taps<T> taps = axis_taps(sample_coord(a, b, o), len, g.bilinear, g.fill);
  bool hit = false;
  T w = T(0);
  for (int k = 0; k < taps.count; ++k)
    if (taps.index[k] == in) {
      w = hit ? add_rn(w, taps.weight[k]) : taps.weight[k];
      hit = true;
    }
  *weight = w;
  return hit;
}

/// Input pixel (n, iy, ix) of image_transform's backward, channels [c0, c1), written to dx[c0 ..
/// c1): the sum of wy wx dy over the output pixels that read it, in increasing (i, j) order. Why a
/// gather over every output row and column: the map may read a pixel from several places (the fill
/// modes' edges, downscaling), and gathering keeps the sum's order fixed without atomics.
template <typename T>
KILN_HOST_DEVICE inline void input_grad_pixel(const ImageTransformGeometry& g, const T* dy, const T* t, int64_t n,
                                              int64_t iy, int64_t ix, int64_t c0, int64_t c1, T* dx) {
  const T* tn = t + 4 * n;
  const T* dyn = dy + n * g.OH * g.OW * g.C;
  for (int64_t c = c0; c < c1; ++c) dx[c] = T(0);
  for (int64_t i = 0; i < g.OH; ++i) {
    T wy;
    if (!tap_weight(g, tn[0], tn[1], i, g.H, iy, &wy)) continue;
    for (int64_t j = 0; j < g.OW; ++j) {
      T wx;
      if (!tap_weight(g, tn[2], tn[3], j, g.W, ix, &wx)) continue;
      const T w = mul_rn(wy, wx);
      const T* d = dyn + (i * g.OW + j) * g.C;
      for (int64_t c = c0; c < c1; ++c) dx[c] = add_rn(dx[c], mul_rn(w, d[c]));
    }
  }
}

}  // namespace kiln::backend::image
