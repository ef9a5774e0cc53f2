// Scratch memory owned by the calling thread and kept for its next call: the convolutions' chunks
// run on whichever thread claims them, and allocating per chunk would cost a page fault per page.
#pragma once

#include <cstdint>
#include <vector>

namespace kiln::backend {

/// A buffer of at least `n` elements of T owned by the calling thread; `slot` (0 or 1) picks one
/// of two, for a loop that needs two at once. Valid until this thread's next call with the same
/// T and slot.
template <typename T>
T* thread_buffer(int64_t n, int slot) {
  thread_local std::vector<T> buffers[2];
  std::vector<T>& b = buffers[slot];
  if (b.size() < static_cast<std::size_t>(n)) b.resize(static_cast<std::size_t>(n));
  return b.data();
}

}  // namespace kiln::backend
