// The CPU thread pool behind parallel_chunks (see thread_pool.h for why it exists).
//
// One loop at a time owns the pool (a try-lock; a second caller runs inline). Its chunks are
// claimed from one atomic word, state_ = generation << kIndexBits | next chunk, by compare-and-swap:
// a worker that wakes late for an earlier loop fails the swap instead of taking a chunk of the
// current one, so the loop's description (chunks_, call_, obj_) may be rewritten as soon as the
// previous loop's chunks are all done (and its state closed: index kIndexMask), without waiting for
// idle workers. Workers sleep on a condition
// variable after spinning for spin_time(). (Not std::atomic::wait: MinGW's libstdc++ implements
// it without a futex, and a notify could be lost there, leaving a worker asleep for ever.)
#include "backend/cpu/thread_pool.h"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

#if defined(__linux__)
#include <sched.h>
#endif
#if defined(__unix__) || defined(__APPLE__)
#include <pthread.h>
#endif

namespace kiln::backend {

namespace {

// How long an idle worker (or a caller waiting for the last chunks) spins before it sleeps. Waking
// a sleeping thread costs tens of microseconds on virtual machines, paid once per loop when the
// threads sleep between the loops of a training step; a spinning worker costs kiln nothing under
// load, because the caller takes the chunks of a worker that is not running. KILN_SPIN_US
// overrides it (0: sleep at once, as libgomp's passive policy).
std::chrono::microseconds spin_time() {
  static const std::chrono::microseconds spin = [] {
    long us = 1000;
    if (const char* env = std::getenv("KILN_SPIN_US")) {
      char* end = nullptr;
      const long v = std::strtol(env, &end, 10);
      if (end != env && *end == '\0' && v >= 0 && v <= 1000000) us = v;
    }
    return std::chrono::microseconds(us);
  }();
  return spin;
}

constexpr int kIndexBits = 24;  // chunks per loop < 2^24; the generation takes the other 40 bits
constexpr uint64_t kIndexMask = (uint64_t(1) << kIndexBits) - 1;

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

// Spins until done() or spin_time() has passed; returns done()'s last value. A spinner descheduled by
// another process finds the time passed when it runs again, and sleeps.
template <typename Done>
bool spin_until(Done&& done) {
  const auto deadline = std::chrono::steady_clock::now() + spin_time();
  for (int i = 1;; ++i) {
    if (done()) return true;
    cpu_relax();
    if (i % 32 == 0 && std::chrono::steady_clock::now() >= deadline) return done();
  }
}

int default_threads() {
  if (const char* env = std::getenv("OMP_NUM_THREADS")) {  // "4" or a nested list "4,2"
    const int n = std::atoi(env);
    if (n > 0) return n;
  }
#if defined(__linux__)
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0 && CPU_COUNT(&set) > 0) return CPU_COUNT(&set);
#endif
  return std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
}

std::atomic<int> g_threads{0};  // the process-wide setting; 0 until first read or set

// True on a pool worker, and on a caller while it runs a loop: nested loops run inline.
thread_local bool t_in_loop = false;

void run_inline(int64_t chunks, ChunkFn body) {
  for (int64_t c = 0; c < chunks; ++c) body(c);
}

class Pool {
 public:
  Pool() = default;
  Pool(const Pool&) = delete;
  Pool& operator=(const Pool&) = delete;

  void run(int64_t chunks, ChunkFn body) {
    std::unique_lock lock(submit_, std::try_to_lock);
    if (!lock.owns_lock()) return run_inline(chunks, body);
    const int threads = pool_threads();
    if (threads <= 1) {
      stop_workers();
      lock.unlock();
      return run_inline(chunks, body);
    }
    if (static_cast<int>(workers_.size()) != threads - 1) start_workers(threads - 1);

    t_in_loop = true;
    // Close the previous loop first. A worker may still hold that loop's exhausted state (index ==
    // its chunk count) and read the chunk count written next, which is larger: the claim it then
    // tries must fail, not take a chunk of the old loop with a mix of the two loops' fields.
    state_.store((generation_ << kIndexBits) | kIndexMask, std::memory_order_seq_cst);
    chunks_.store(chunks, std::memory_order_release);
    call_.store(body.call(), std::memory_order_relaxed);
    obj_.store(body.obj(), std::memory_order_relaxed);
    done_.store(0, std::memory_order_relaxed);
    ++generation_;
    state_.store(generation_ << kIndexBits, std::memory_order_release);
    epoch_.fetch_add(1, std::memory_order_seq_cst);
    if (sleepers_.load(std::memory_order_seq_cst) > 0) wake(wake_workers_);

    claim_and_run();
    wait_for_all(chunks);
    t_in_loop = false;
    if (failed_.load(std::memory_order_acquire)) {
      std::exception_ptr error;
      {
        std::lock_guard guard(error_mutex_);
        std::swap(error, error_);
      }
      failed_.store(false, std::memory_order_relaxed);
      std::rethrow_exception(error);
    }
  }

 private:
  // Claims and runs chunks of the current loop until none is left to claim.
  void claim_and_run() {
    uint64_t s = state_.load(std::memory_order_acquire);
    for (;;) {
      const int64_t chunk = static_cast<int64_t>(s & kIndexMask);
      // Acquire: a count written after the closing store of run() makes the claim below see that
      // store (or a later state), so it fails for a stale `s`.
      const int64_t chunks = chunks_.load(std::memory_order_acquire);
      if (chunk >= chunks) return;
      const auto call = call_.load(std::memory_order_relaxed);
      void* const obj = obj_.load(std::memory_order_relaxed);
      // Success proves that `s` is the current loop's state, so the fields read above are its own:
      // the next loop rewrites them only after all of this one's chunks, this one included, are done.
      if (!state_.compare_exchange_weak(s, s + 1, std::memory_order_acq_rel, std::memory_order_acquire)) continue;
      try {
        call(obj, chunk);
      } catch (...) {
        std::lock_guard guard(error_mutex_);
        if (!error_) error_ = std::current_exception();
        failed_.store(true, std::memory_order_release);
      }
      if (done_.fetch_add(1, std::memory_order_seq_cst) + 1 == static_cast<int32_t>(chunks) &&
          caller_waiting_.load(std::memory_order_seq_cst))
        wake(wake_caller_);
      s = state_.load(std::memory_order_acquire);
    }
  }

  // The caller, with nothing left to claim, waits for chunks that workers are still running.
  void wait_for_all(int64_t chunks) {
    const auto n = static_cast<int32_t>(chunks);
    if (spin_until([&] { return done_.load(std::memory_order_acquire) == n; })) return;
    caller_waiting_.store(true, std::memory_order_seq_cst);
    {
      std::unique_lock lock(sleep_mutex_);
      wake_caller_.wait(lock, [&] { return done_.load(std::memory_order_seq_cst) == n; });
    }
    caller_waiting_.store(false, std::memory_order_relaxed);
  }

  // `seen` is epoch_ when the worker was made: a worker that starts running late still sees every
  // loop (and stop) announced since.
  void worker_loop(uint32_t seen) {
    t_in_loop = true;
    for (;;) {
      if (!spin_until([&] { return epoch_.load(std::memory_order_acquire) != seen; })) {
        sleepers_.fetch_add(1, std::memory_order_seq_cst);
        {
          std::unique_lock lock(sleep_mutex_);
          wake_workers_.wait(lock, [&] { return epoch_.load(std::memory_order_seq_cst) != seen; });
        }
        sleepers_.fetch_sub(1, std::memory_order_relaxed);
      }
      seen = epoch_.load(std::memory_order_acquire);
      if (stop_.load(std::memory_order_acquire)) return;
      claim_and_run();
    }
  }

  void start_workers(int count) {  // with submit_ held
    stop_workers();
    workers_.reserve(static_cast<std::size_t>(count));
    const uint32_t now = epoch_.load(std::memory_order_relaxed);
    for (int i = 0; i < count; ++i) workers_.emplace_back([this, now] { worker_loop(now); });
  }

  void stop_workers() {  // with submit_ held
    if (workers_.empty()) return;
    stop_.store(true, std::memory_order_release);
    epoch_.fetch_add(1, std::memory_order_seq_cst);
    wake(wake_workers_);
    for (std::thread& t : workers_) t.join();
    workers_.clear();
    stop_.store(false, std::memory_order_relaxed);
  }

  std::mutex submit_;                 // held by the loop that owns the pool
  std::vector<std::thread> workers_;  // with submit_ held
  uint64_t generation_ = 0;           // with submit_ held

  // The current loop. Apart on cache lines: workers poll epoch_ while chunks update state_ and done_.
  alignas(64) std::atomic<uint64_t> state_{0};
  std::atomic<int64_t> chunks_{0};
  std::atomic<void (*)(void*, int64_t)> call_{nullptr};
  std::atomic<void*> obj_{nullptr};
  alignas(64) std::atomic<int32_t> done_{0};
  std::atomic<bool> caller_waiting_{false};
  alignas(64) std::atomic<uint32_t> epoch_{0};  // bumped for every loop (and to stop); workers wait on it
  std::atomic<int> sleepers_{0};
  // Sleeping: a waiter checks its condition with sleep_mutex_ held, and wake() takes the mutex
  // after the condition changed and before notifying, so no wake-up falls between check and sleep.
  std::mutex sleep_mutex_;
  std::condition_variable wake_workers_;  // epoch_ moved
  std::condition_variable wake_caller_;   // done_ reached the loop's chunk count

  void wake(std::condition_variable& cv) {
    { std::lock_guard lock(sleep_mutex_); }
    cv.notify_all();
  }
  std::atomic<bool> stop_{false};

  std::mutex error_mutex_;
  std::exception_ptr error_;  // the first exception a chunk threw, with error_mutex_ held
  std::atomic<bool> failed_{false};
};

// The pool is created on first use and never destroyed: its workers may sleep through the end of
// the process, and a static destructor would race with other threads still using it. After fork()
// the child has none of the parent's workers (and maybe a locked mutex), so it drops the pointer and
// makes a fresh pool when it next needs one; the parent's stays allocated, unused.
std::atomic<Pool*> g_pool{nullptr};

#if defined(__unix__) || defined(__APPLE__)
void forget_pool_in_child() { g_pool.store(nullptr, std::memory_order_relaxed); }
#endif

Pool& pool() {
  Pool* p = g_pool.load(std::memory_order_acquire);
  if (p) return *p;
  auto* fresh = new Pool();
  if (g_pool.compare_exchange_strong(p, fresh, std::memory_order_acq_rel)) {
#if defined(__unix__) || defined(__APPLE__)
    static const bool registered = (pthread_atfork(nullptr, nullptr, forget_pool_in_child), true);
    (void)registered;
#endif
    return *fresh;
  }
  delete fresh;  // another thread made one first
  return *p;
}

}  // namespace

void parallel_chunks(int64_t chunks, ChunkFn body) {
  if (chunks <= 0) return;
  if (chunks == 1 || t_in_loop || chunks > static_cast<int64_t>(kIndexMask)) return run_inline(chunks, body);
  pool().run(chunks, body);
}

int pool_threads() {
  int n = g_threads.load(std::memory_order_relaxed);
  if (n > 0) return n;
  int unset = 0;
  g_threads.compare_exchange_strong(unset, default_threads(), std::memory_order_relaxed);
  return g_threads.load(std::memory_order_relaxed);
}

void set_pool_threads(int threads) { g_threads.store(std::max(threads, 1), std::memory_order_relaxed); }

}  // namespace kiln::backend
