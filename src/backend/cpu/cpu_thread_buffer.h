// Scratch memory owned by the calling thread and kept for its next call: the convolutions' chunks
// run on whichever thread claims them, and allocating per chunk would cost a page fault per page.
#pragma once

#include <cstdint>
#include <vector>

namespace kiln::backend {

/// A buffer of at least `n` elements of T owned by the calling thread, its contents unspecified;
/// `slot` picks one of four. Slots 0 and 1 are a parallel loop's, for its chunks (on whichever
/// thread runs them); slots 2 and 3 are an op's, taken on the thread that calls it for what its
/// parallel loops share (a transformed filter, partial sums), which no chunk's slot can then
/// overwrite. Valid until this thread's next call with the same T and slot.
template <typename T>
T* thread_buffer(int64_t n, int slot) {
  thread_local std::vector<T> buffers[4];
  std::vector<T>& b = buffers[slot];
  if (b.size() < static_cast<std::size_t>(n)) b.resize(static_cast<std::size_t>(n));
  return b.data();
}

}  // namespace kiln::backend
