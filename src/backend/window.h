// Sliding windows along one axis, shared by the CPU backend and the CUDA kernels for convolution
// and pooling: window o of an axis starts at input position o * stride - pad and is k cells long.
// Loops run over the window's cells inside the input (window_span) instead of testing each of its
// k positions, so padded cells are never visited; kh = ih - start recovers a cell's tap.
#pragma once

#include "backend/host_device.h"

namespace kiln::backend::window {

/// A half-open range [begin, end) of positions; empty when end == begin.
template <typename I>
struct Span {
  I begin, end;
  KILN_HOST_DEVICE I size() const { return end - begin; }
};

/// floor(a / b) for b > 0 and any sign of a.
template <typename I>
KILN_HOST_DEVICE inline I floor_div(I a, I b) {
  return a >= 0 ? a / b : -((-a + b - 1) / b);
}

/// The input position of window `o`'s first tap (negative inside the leading padding).
template <typename I>
KILN_HOST_DEVICE inline I window_start(I o, I stride, I pad) {
  return o * stride - pad;
}

/// The input positions of window `o` inside an axis of `in` cells, in tap order.
template <typename I>
KILN_HOST_DEVICE inline Span<I> window_span(I o, I stride, I pad, I k, I in) {
  const I start = window_start(o, stride, pad);
  const I begin = start < I(0) ? I(0) : start;
  const I end = start + k > in ? in : start + k;
  return {begin, end < begin ? begin : end};
}

/// The windows (of `out` in all) whose cells include input position `i`: those o with
/// o * stride - pad <= i <= o * stride - pad + k - 1.
template <typename I>
KILN_HOST_DEVICE inline Span<I> covering_windows(I i, I stride, I pad, I k, I out) {
  const I lo = floor_div(i + pad - k, stride) + I(1), hi = floor_div(i + pad, stride) + I(1);
  const I begin = lo < I(0) ? I(0) : lo;
  const I end = hi > out ? out : hi;
  return {begin, end < begin ? begin : end};
}

/// Whether windows of size `k` start at position 0 and each begins where the one before ends (stride
/// k, no padding before them): each input position is in at most one window, and every position
/// before out * k in exactly one.
template <typename I>
KILN_HOST_DEVICE constexpr bool adjacent(I stride, I pad, I k) {
  return stride == k && pad == I(0);
}

}  // namespace kiln::backend::window
