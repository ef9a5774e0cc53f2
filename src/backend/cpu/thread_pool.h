// kiln's CPU threads: one process-wide pool that runs a loop's chunks on the calling thread and the
// pool's workers. Why not OpenMP: an OpenMP region ends at a barrier that every team thread must
// reach, so one thread descheduled by another process stalls the region for a whole time slice, and
// libgomp's spin-then-sleep policy is fixed by environment variables read when it loads. Here
// chunks are claimed, not assigned: the caller takes every chunk no worker has started and returns
// when all are done, without waiting for an idle worker to arrive; workers spin briefly between
// loops (so back-to-back loops of a training step find them awake) and then sleep.
#pragma once

#include <algorithm>
#include <cstdint>
#include <utility>

namespace kiln::backend {

/// A non-owning reference to a callable `void(int64_t chunk)`; it must outlive the call it is
/// passed to.
class ChunkFn {
 public:
  template <typename F>
  ChunkFn(F& f) : obj_(&f), call_([](void* obj, int64_t c) { (*static_cast<F*>(obj))(c); }) {}  // NOLINT
  void operator()(int64_t chunk) const { call_(obj_, chunk); }
  void* obj() const { return obj_; }
  void (*call() const)(void*, int64_t) { return call_; }

 private:
  void* obj_;
  void (*call_)(void*, int64_t);
};

/// Runs body(c) exactly once for every c in [0, chunks), on the calling thread and the pool's
/// workers, and returns when all have run (rethrowing the first exception a chunk threw). Which
/// thread runs a chunk varies from call to call, so what a chunk computes must depend on its index
/// alone; results then do not depend on the thread count. Calls from inside a chunk, and calls
/// made while another thread is using the pool, run their chunks in order on the calling thread.
void parallel_chunks(int64_t chunks, ChunkFn body);

/// The process-wide thread count (callers included): set_num_threads' value, else OMP_NUM_THREADS
/// when set, else the number of cores this process may run on.
int pool_threads();

/// Sets the process-wide thread count; every thread's next parallel loop uses it.
void set_pool_threads(int threads);

/// Elements of simple work (a load, a few flops, a store) under which a loop is not worth
/// splitting: PyTorch's intra-op grain. Loops under two grains stay on the calling thread.
constexpr int64_t kGrainPerThread = int64_t(1) << 15;
/// Elements per chunk of a split loop. Several chunks per grain let the caller take over a
/// descheduled worker's share in small pieces; claiming one costs about 0.1 us.
constexpr int64_t kChunkGrain = int64_t(1) << 13;
/// At most this many chunks per loop (enough to balance 64 threads).
constexpr int64_t kMaxChunks = 256;

/// Chunks for a loop over `work` elements: 1 under two grains, else one per kChunkGrain, at most
/// kMaxChunks. Depends on the shape alone.
inline int64_t chunks_for(int64_t work) {
  if (work < 2 * kGrainPerThread) return 1;
  return std::min(work / kChunkGrain, kMaxChunks);
}

/// Cuts [0, n) into `chunks` contiguous ranges of near-equal length (fixed by n and chunks alone)
/// and calls f(begin, end) once for each, as parallel_chunks runs chunks.
template <typename F>
void parallel_for(int64_t n, int64_t chunks, F&& f) {
  chunks = std::clamp<int64_t>(chunks, 1, std::max<int64_t>(n, 1));
  if (chunks == 1) {
    if (n > 0) f(int64_t(0), n);
    return;
  }
  auto range = [&](int64_t c) { f(c * n / chunks, (c + 1) * n / chunks); };
  parallel_chunks(chunks, ChunkFn(range));
}

/// parallel_for with chunks_for(work): a loop of `n` iterations over `work` elements in all.
template <typename F>
void parallel_for_work(int64_t n, int64_t work, F&& f) {
  parallel_for(n, chunks_for(work), std::forward<F>(f));
}

}  // namespace kiln::backend
