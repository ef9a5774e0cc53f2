// kiln's CPU thread pool: a process-wide thread count, every chunk run exactly once, nested and
// concurrent loops, errors, and results that do not depend on the thread count.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <mutex>
#include <set>
#include <stdexcept>
#include <thread>
#include <vector>

#if defined(__unix__)
#include <sys/wait.h>
#include <unistd.h>
#endif

#include "backend/backend.h"
#include "backend/cpu/thread_pool.h"
#include "kiln/kiln.h"
#include "test_support.h"

namespace {

using kiln::testing::ThreadCount;

using kiln::backend::ChunkFn;
using kiln::backend::parallel_chunks;

// The threads that ran the chunks of one loop of `chunks` chunks, each taking `work`.
std::set<std::thread::id> threads_running(int64_t chunks, std::chrono::microseconds work) {
  std::mutex m;
  std::set<std::thread::id> ids;
  auto body = [&](int64_t) {
    std::this_thread::sleep_for(work);
    std::lock_guard lock(m);
    ids.insert(std::this_thread::get_id());
  };
  parallel_chunks(chunks, ChunkFn(body));
  return ids;
}

}  // namespace

TEST(ThreadPool, SetNumThreadsFromAnotherThreadIsProcessWide) {
  const ThreadCount restore(kiln::get_num_threads());
  const int wanted = kiln::get_num_threads() == 3 ? 2 : 3;
  std::thread([&] { kiln::set_num_threads(wanted); }).join();
  EXPECT_EQ(kiln::get_num_threads(), wanted) << "set in a worker thread, read in the main thread";
  int seen = 0;
  std::thread([&] { seen = kiln::get_num_threads(); }).join();
  EXPECT_EQ(seen, wanted) << "read in a third thread";

  // Loops follow it: one thread set elsewhere keeps every chunk on the caller, three use at most three.
  std::thread([] { kiln::set_num_threads(1); }).join();
  EXPECT_EQ(threads_running(32, std::chrono::microseconds(200)), std::set{std::this_thread::get_id()});
  std::thread([] { kiln::set_num_threads(3); }).join();
  const auto three = threads_running(32, std::chrono::microseconds(2000));
  EXPECT_GE(three.size(), 2u) << "the workers took none of 32 chunks of 2 ms";
  EXPECT_LE(three.size(), 3u);
}

TEST(ThreadPool, EveryChunkRunsExactlyOnce) {
  const ThreadCount threads(4);
  for (const int64_t chunks : {2, 3, 7, 64, 1000}) {
    std::vector<std::atomic<int>> runs(static_cast<std::size_t>(chunks));
    for (int round = 0; round < 50; ++round) {
      auto body = [&](int64_t c) { runs[static_cast<std::size_t>(c)].fetch_add(1, std::memory_order_relaxed); };
      parallel_chunks(chunks, ChunkFn(body));
    }
    for (int64_t c = 0; c < chunks; ++c)
      ASSERT_EQ(runs[static_cast<std::size_t>(c)].load(), 50) << c << " of " << chunks;
  }
}

// Back-to-back loops whose chunk count grows from one loop to the next, each with its own closure on
// the caller's stack: a worker still holding the finished loop's state must not take a chunk past
// that loop's end with the next loop's count (it would run a dead closure: a crash seen on a
// 16-core machine in the middle of training). Each chunk checks that it runs its own loop's closure.
TEST(ThreadPool, BackToBackLoopsOfGrowingSizeRunOnlyTheirOwnChunks) {
  const ThreadCount threads(std::max(4, static_cast<int>(std::thread::hardware_concurrency())));
  std::atomic<int64_t> wrong{0}, ran{0};
  int64_t expected = 0;
#if defined(__SANITIZE_THREAD__)
  const int loops = 5000;  // ThreadSanitizer makes each atomic operation dozens of times slower
#else
  const int loops = 50000;
#endif
  for (int loop = 0; loop < loops; ++loop) {
    const int64_t chunks = loop % 2 == 0 ? 2 : 9;
    const int id = loop;
    std::vector<std::atomic<int>> runs(static_cast<std::size_t>(chunks));
    auto body = [&, id](int64_t c) {
      if (id != loop || c >= chunks) wrong.fetch_add(1, std::memory_order_relaxed);
      runs[static_cast<std::size_t>(c)].fetch_add(1, std::memory_order_relaxed);
      ran.fetch_add(1, std::memory_order_relaxed);
    };
    parallel_chunks(chunks, ChunkFn(body));
    for (int64_t c = 0; c < chunks; ++c) ASSERT_EQ(runs[static_cast<std::size_t>(c)].load(), 1) << "loop " << loop;
    expected += chunks;
  }
  EXPECT_EQ(wrong.load(), 0);
  EXPECT_EQ(ran.load(), expected);
}

TEST(ThreadPool, ParallelForCoversTheRangeInShapeFixedPieces) {
  const ThreadCount threads(3);
  for (const int64_t n : {1, 5, 100, 12345}) {
    std::vector<int> hits(static_cast<std::size_t>(n), 0);
    std::mutex m;
    std::vector<std::pair<int64_t, int64_t>> pieces;
    kiln::backend::parallel_for(n, 8, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) ++hits[static_cast<std::size_t>(i)];  // ranges are disjoint
      std::lock_guard lock(m);
      pieces.emplace_back(b, e);
    });
    EXPECT_EQ(hits, std::vector<int>(static_cast<std::size_t>(n), 1)) << n;
    EXPECT_EQ(pieces.size(), static_cast<std::size_t>(std::min<int64_t>(n, 8))) << n;
  }
}

TEST(ThreadPool, NestedLoopsRunInlineOnTheChunksThread) {
  const ThreadCount threads(3);
  std::atomic<int> inner_runs{0}, elsewhere{0};
  auto outer = [&](int64_t) {
    const auto me = std::this_thread::get_id();
    auto inner = [&](int64_t) {
      inner_runs.fetch_add(1);
      if (std::this_thread::get_id() != me) elsewhere.fetch_add(1);
    };
    parallel_chunks(16, ChunkFn(inner));
  };
  parallel_chunks(8, ChunkFn(outer));
  EXPECT_EQ(inner_runs.load(), 8 * 16);
  EXPECT_EQ(elsewhere.load(), 0);
}

TEST(ThreadPool, TwoThreadsSubmittingAtOnceBothGetCorrectResults) {
  const ThreadCount threads(3);
  const auto submitter = [](int seed, bool* ok) {
    *ok = true;
    std::vector<int64_t> out(4096);
    for (int round = 0; round < 300; ++round) {
      kiln::backend::parallel_for(static_cast<int64_t>(out.size()), 16, [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) out[static_cast<std::size_t>(i)] = i * seed + round;
      });
      for (std::size_t i = 0; i < out.size(); ++i)
        if (out[i] != static_cast<int64_t>(i) * seed + round) *ok = false;
    }
  };
  bool ok_a = false, ok_b = false;
  std::thread a(submitter, 3, &ok_a), b(submitter, 7, &ok_b);
  a.join();
  b.join();
  EXPECT_TRUE(ok_a);
  EXPECT_TRUE(ok_b);
}

TEST(ThreadPool, ThreadCountChangesWhileAnotherThreadRunsLoops) {
  const ThreadCount threads(2);
  std::atomic<bool> stop{false};
  std::atomic<int64_t> total{0};
  std::thread runner([&] {
    while (!stop.load()) {
      auto body = [&](int64_t) { total.fetch_add(1, std::memory_order_relaxed); };
      parallel_chunks(10, ChunkFn(body));
    }
  });
  for (int i = 0; i < 40; ++i) {
    kiln::set_num_threads(1 + i % 4);
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  stop.store(true);
  runner.join();
  EXPECT_EQ(total.load() % 10, 0);
}

TEST(ThreadPool, AChunksExceptionReachesTheCallerAndThePoolStillWorks) {
  const ThreadCount threads(3);
  std::atomic<int> ran{0};
  auto failing = [&](int64_t c) {
    ran.fetch_add(1);
    if (c == 5) throw std::runtime_error("chunk 5");
  };
  EXPECT_THROW(parallel_chunks(40, ChunkFn(failing)), std::runtime_error);
  EXPECT_EQ(ran.load(), 40);  // the other chunks still ran: none is left half-claimed
  std::atomic<int> after{0};
  auto fine = [&](int64_t) { after.fetch_add(1); };
  parallel_chunks(40, ChunkFn(fine));
  EXPECT_EQ(after.load(), 40);
}

TEST(ThreadPool, TrainingGivesTheSameBitsOnOneTwoAndThreeThreads) {
  // Large enough that every kind of split runs: the convolution in several image chunks, the dense
  // products split by depth and by output, elementwise loops in many chunks.
  kiln::Generator gen(3);
  const kiln::Tensor x = kiln::Tensor::uniform({64, 16, 16, 3}, 0.0, 1.0, gen);
  std::vector<int32_t> labels(64);
  for (auto& l : labels) l = static_cast<int32_t>(gen.below(10));
  const kiln::Tensor y = kiln::Tensor::from_vector(labels);
  std::vector<std::vector<kiln::Tensor>> weights;
  for (const int t : {1, 2, 3}) {
    const ThreadCount threads(t);
    kiln::utils::set_random_seed(5);
    kiln::Sequential m({kiln::layers::Conv2D(16, {3, 3}, {.activation = "relu", .input_shape = {16, 16, 3}}),
                        kiln::layers::MaxPooling2D({2, 2}), kiln::layers::Flatten(),
                        kiln::layers::Dense(96, {.activation = "relu"}), kiln::layers::Dense(10)});
    m.compile(kiln::optimizers::Adam(), kiln::losses::SparseCategoricalCrossentropy({.from_logits = true}));
    m.fit(x, y, {.batch_size = 32, .epochs = 2, .verbose = 0});
    weights.push_back(m.trainable_weights());
  }
  for (std::size_t t = 1; t < weights.size(); ++t)
    for (std::size_t i = 0; i < weights[0].size(); ++i) {
      const kiln::Tensor a = weights[0][i].cpu(), b = weights[t][i].cpu();
      ASSERT_EQ(a.nbytes(), b.nbytes());
      EXPECT_EQ(std::memcmp(a.raw_data(), b.raw_data(), a.nbytes()), 0)
          << "weight " << i << ", " << t + 1 << " threads";
    }
}

TEST(ThreadPool, LargeProductsGiveTheSameBitsOnOneTwoAndThreeThreads) {
  // Square (output blocks) and skinny with a long depth (depth chunks), as matmul runs them.
  struct Case {
    int64_t m, n, k;
  };
  for (const Case& s : {Case{300, 260, 200}, Case{16, 40, 20000}}) {
    kiln::Generator gen(9);
    const kiln::Tensor a = kiln::Tensor::uniform({s.m, s.k}, -1.0, 1.0, gen);
    const kiln::Tensor b = kiln::Tensor::uniform({s.k, s.n}, -1.0, 1.0, gen);
    std::vector<std::vector<float>> results;
    for (const int t : {1, 2, 3}) {
      const ThreadCount threads(t);
      results.push_back(kiln::matmul(a, b).to_vector<float>());
    }
    EXPECT_EQ(results[0], results[1]) << s.m << "x" << s.n << "x" << s.k;
    EXPECT_EQ(results[0], results[2]) << s.m << "x" << s.n << "x" << s.k;
  }
}

#if defined(__unix__)
TEST(ThreadPool, AForkedChildRunsParallelLoops) {
#if defined(__SANITIZE_THREAD__)
  GTEST_SKIP() << "ThreadSanitizer stops a child of a threaded process that starts threads";
#endif
  const ThreadCount threads(3);
  (void)threads_running(16, std::chrono::microseconds(100));  // the parent's workers exist
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    std::atomic<int> runs{0};
    auto body = [&](int64_t) { runs.fetch_add(1); };
    parallel_chunks(64, ChunkFn(body));
    ::_exit(runs.load() == 64 ? 0 : 1);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}
#endif
