// CPU strided box copy, the one kernel behind pad, slice, concatenate and permute (forward and
// backward). The box's rows along its last dimension are split across the thread pool; a row that
// is contiguous on both sides is one memcpy.
#include <cstring>
#include <string>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/cpu_half.h"

namespace kiln::backend {

namespace {

template <typename T>
void copy_box(const StridedCopy& g, const T* src, T* dst) {
  const int last = g.ndim - 1;
  const int64_t len = g.extent[last];
  int64_t rows = 1;
  for (int d = 0; d < last; ++d) rows *= g.extent[d];
  if (rows == 0 || len == 0) return;
  const int64_t ss = g.src_stride[last], ds = g.dst_stride[last];
  parallel_for_work(rows, rows * len, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      int64_t s = g.src_offset, t = g.dst_offset, rest = r;
      for (int d = last - 1; d >= 0; --d) {
        const int64_t i = rest % g.extent[d];
        rest /= g.extent[d];
        s += i * g.src_stride[d];
        t += i * g.dst_stride[d];
      }
      if (ss == 1 && ds == 1) {
        std::memcpy(dst + t, src + s, static_cast<std::size_t>(len) * sizeof(T));
      } else {
        for (int64_t j = 0; j < len; ++j) dst[t + j * ds] = src[s + j * ss];
      }
    }
  });
}

}  // namespace

void CpuBackend::copy_strided(DType dtype, const StridedCopy& g, const void* src, void* dst) {
  if (g.ndim < 1 || g.ndim > StridedCopy::kMaxDims)
    throw Error("copy_strided", "box of " + std::to_string(g.ndim) + " dimensions; expected 1 to " +
                                    std::to_string(StridedCopy::kMaxDims));
  // A box copy moves elements without arithmetic, so the 16-bit floats take it too.
  with_cpu_type(dtype, [&](auto tag) {
    using T = decltype(tag);
    copy_box<T>(g, static_cast<const T*>(src), static_cast<T*>(dst));
  });
}

}  // namespace kiln::backend
