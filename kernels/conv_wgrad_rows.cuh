// What the two filter-gradient kernels (conv_wgrad.cu on the FMA units, conv_wgrad_mma.cu on tensor
// cores) share: how the N*OH*OW output pixels (rows) are cut into one slice per block, and where
// each row's window starts in the NHWC input.
// Shape letters: N batch, H/W input, C channels, OH/OW output, R rows.
#pragma once

#include <cstdint>

#include "backend/backend.h"

namespace kiln::backend::kernels {

/// Rows per block's slice: at most `max_slices` slices, each a multiple of `grain` rows (a multiple
/// of every tile size, so the slices, and with them the summation order, depend on the shape alone).
inline int64_t wgrad_rows_per_slice(const Conv2dGeometry& g, int64_t grain, int64_t max_slices) {
  const int64_t R = g.N * g.OH * g.OW;
  int64_t slices = (R + grain - 1) / grain;
  slices = slices < 1 ? 1 : (slices > max_slices ? max_slices : slices);
  const int64_t rows = (R + slices - 1) / slices;
  return (rows + grain - 1) / grain * grain;
}

/// For rows t0 .. t0 + count - 1, the block's threads write each window's first input row (row_h),
/// first input column (row_w) and the input offset of that corner (rbase; both may lie in the
/// padding, or past the input for rows past R, which callers do not read). The caller
/// synchronizes before reading them.
__device__ inline void wgrad_window_origins(const Conv2dGeometry& g, int64_t t0, int count, int* row_h, int* row_w,
                                            long long* rbase) {
  const int64_t OHW = g.OH * g.OW;
  for (int rr = threadIdx.x; rr < count; rr += blockDim.x) {
    const int64_t r = t0 + rr, n = r / OHW, rem = r - n * OHW, oh = rem / g.OW, ow = rem - oh * g.OW;
    const int64_t ih0 = oh * g.stride_h - g.pad_top, iw0 = ow * g.stride_w - g.pad_left;
    row_h[rr] = static_cast<int>(ih0);
    row_w[rr] = static_cast<int>(iw0);
    rbase[rr] = ((n * g.H + ih0) * g.W + iw0) * g.C;
  }
}

}  // namespace kiln::backend::kernels
