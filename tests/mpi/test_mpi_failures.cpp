// A rank that is gone must not hang the others: run one test at a time (each leaves the
// strategy's processes out of step), with KILN_COLLECTIVE_TIMEOUT=3 (tests/mpi/CMakeLists.txt).
//   Failure.RankThatLeavesFitIsNamed: rank 1 leaves fit with an error at the start of epoch 2;
//     rank 0 ends within the deadline with an error naming rank 1.
//   Failure.KilledRankIsNamed: rank 1 kills itself (SIGKILL) at the start of epoch 2. Under
//     `mpirun --enable-recovery` rank 0 lives on and its deadline names rank 1; under mpirun's
//     default the launcher ends the whole job at once (expect_job_killed.cmake checks that).
#include <gtest/gtest.h>

#include <chrono>
#include <csignal>
#include <iostream>
#include <map>
#include <string>

#include "kiln/kiln.h"
#include "mpi_test_util.h"

using namespace kiln;
using namespace kiln::mpi_test;

namespace {

// Calls `act` on rank 1 when epoch `at` (0-based) begins.
class OnRankOne : public Callback {
 public:
  OnRankOne(int at, void (*act)()) : at_(at), act_(act) {}
  void on_epoch_begin(Model& /*model*/, int epoch) override {
    if (rank() == 1 && epoch == at_) act_();
  }

 private:
  int at_;
  void (*act_)();
};

// Runs fit with `act` on rank 1 at the second epoch; returns rank 0's error and its seconds.
std::pair<std::string, double> fit_with_rank_one(void (*act)()) {
  // A strategy of its own: its communicator is unusable after a missed deadline.
  const auto s = std::make_shared<distribute::MultiWorkerMirroredStrategy>();
  EXPECT_EQ(s->options().timeout_seconds, 3.0) << "KILN_COLLECTIVE_TIMEOUT=3 is set by CTest";
  const auto [x, y] = data(40);
  Sequential model = classifier(2);
  const auto start = std::chrono::steady_clock::now();
  std::string message;
  try {
    model.fit(x, y,
              {.batch_size = 8,
               .epochs = 3,
               .verbose = 0,
               .callbacks = {std::make_shared<OnRankOne>(1, act)},
               .strategy = s});
  } catch (const Error& e) {
    message = e.what();
  }
  return {message, std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count()};
}

constexpr const char* kNamed =
    "[fit] rank 1 did not join the gradient all-reduce of epoch 2, step 1 within 3 s (rank 0 waited); it may have "
    "died, stopped or left fit with an error (see its output and the launcher's); expected every rank to run the same "
    "fit (KILN_COLLECTIVE_TIMEOUT sets the deadline in seconds)";

}  // namespace

TEST(Failure, RankThatLeavesFitIsNamed) {
  ASSERT_EQ(ranks(), 2);
  if (rank() == 1) {
    EXPECT_EQ(fit_with_rank_one([] { throw Error("test", "rank 1 leaves"); }).first, "[test] rank 1 leaves");
    return;
  }
  const auto [message, seconds] = fit_with_rank_one(nullptr);
  EXPECT_EQ(message, kNamed);
  EXPECT_LT(seconds, 30.0) << "ended by the 3 s deadline, not a hang";
}

TEST(Failure, KilledRankIsNamed) {
  ASSERT_EQ(ranks(), 2);
  const auto [message, seconds] = fit_with_rank_one([] {
    std::cout << "rank 1 kills itself" << std::endl;
    std::raise(SIGKILL);
  });
  // Only rank 0 gets here.
  EXPECT_EQ(message, kNamed);
  EXPECT_LT(seconds, 30.0) << "ended by the 3 s deadline, not a hang";
  std::cout << "rank 0 named the killed rank" << std::endl;
}
