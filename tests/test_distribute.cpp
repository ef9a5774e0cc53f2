// kiln::distribute without mpirun: a MultiWorkerMirroredStrategy of one process (MPI's singleton
// start) trains exactly as fit without a strategy, and bad options and uses are refused with clear
// errors; a build without MPI keeps the API and says how to get it. The tests of several ranks
// run under mpirun: tests/mpi/.
#include <gtest/gtest.h>

#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "data_parallel_support.h"
#include "distribute/replica.h"
#include "kiln/kiln.h"
#include "test_support.h"

using namespace kiln;
using kiln::testing::message_of;
using kiln::testing::ScopedEnv;

namespace {

// A strategy of `replicas` replicas that has no communicator: enough for the checks made before
// any collective.
class Pretend : public distribute::Strategy {
 public:
  explicit Pretend(int replicas) : replicas_(replicas) {}
  int num_replicas_in_sync() const override { return replicas_; }
  int rank() const override { return 0; }
  std::string name() const override { return "Pretend"; }
  const distribute::StrategyOptions& options() const override { return options_; }
  distribute::Communicator& communicator() override { throw Error("Pretend", "no communicator"); }

 private:
  int replicas_;
  distribute::StrategyOptions options_;
};

// The classifier these tests train, with or without BatchNormalization.
Sequential classifier(bool with_batch_norm) {
  return data_parallel_test::classifier(21, "adam", with_batch_norm ? data_parallel_test::batch_norm : nullptr);
}

std::pair<Tensor, Tensor> data(int64_t n) { return data_parallel_test::data(n, 3); }

}  // namespace

TEST(Distribute, OneReplicaTrainsBitForBitAsFitWithoutStrategy) {
  if (!distribute::built_with_mpi()) GTEST_SKIP() << "kiln was built without MPI";
  const auto strategy = std::make_shared<distribute::MultiWorkerMirroredStrategy>();
  ASSERT_EQ(strategy->num_replicas_in_sync(), 1) << "run without mpirun";
  const auto [x, y] = data(50);
  const auto [xv, yv] = data(13);
  for (const bool batch_norm : {false, true}) {
    SCOPED_TRACE(batch_norm ? "with BatchNormalization" : "Dense only");
    Sequential plain = classifier(batch_norm);
    const History h = plain.fit(x, y, {.batch_size = 16, .epochs = 3, .verbose = 0, .validation_data = {{xv, yv}}});
    Sequential spread = classifier(batch_norm);
    const History hs = spread.fit(
        x, y, {.batch_size = 16, .epochs = 3, .verbose = 0, .validation_data = {{xv, yv}}, .strategy = strategy});
    EXPECT_EQ(data_parallel_test::flat_weights(spread), data_parallel_test::flat_weights(plain));
    EXPECT_EQ(hs.history, h.history);
    EXPECT_EQ(hs.epoch, h.epoch);
  }
}

TEST(Distribute, OneProcessIsReplicaZeroAndChief) {
  if (!distribute::built_with_mpi()) GTEST_SKIP() << "kiln was built without MPI";
  const distribute::MultiWorkerMirroredStrategy strategy;
  EXPECT_EQ(strategy.num_replicas_in_sync(), 1);
  EXPECT_EQ(strategy.rank(), 0);
  EXPECT_TRUE(strategy.is_chief());
  EXPECT_EQ(strategy.name(), "MultiWorkerMirroredStrategy");
  EXPECT_EQ(strategy.options().timeout_seconds, 300.0);
}

TEST(Distribute, TimeoutComesFromTheEnvironment) {
  if (!distribute::built_with_mpi()) GTEST_SKIP() << "kiln was built without MPI";
  const ScopedEnv env("KILN_COLLECTIVE_TIMEOUT", "7.5");
  EXPECT_EQ(distribute::MultiWorkerMirroredStrategy().options().timeout_seconds, 7.5);
}

TEST(Distribute, BadTimeoutInTheEnvironmentIsRefused) {
  const ScopedEnv env("KILN_COLLECTIVE_TIMEOUT", "soon");
  EXPECT_EQ(message_of([] { distribute::MultiWorkerMirroredStrategy(); }),
            "[MultiWorkerMirroredStrategy] KILN_COLLECTIVE_TIMEOUT is \"soon\"; expected a positive number of "
            "seconds (e.g. 300)");
}

TEST(Distribute, BadOptionsAreRefused) {
  EXPECT_EQ(message_of([] { distribute::MultiWorkerMirroredStrategy({.timeout_seconds = 0}); }),
            "[MultiWorkerMirroredStrategy] timeout_seconds is 0; expected a positive number of seconds");
  EXPECT_EQ(message_of([] { distribute::MultiWorkerMirroredStrategy({.bucket_bytes = -1}); }),
            "[MultiWorkerMirroredStrategy] bucket_bytes is -1; expected a positive size (e.g. 4 MiB, the default)");
}

TEST(Distribute, WithoutMpiTheStrategySaysHowToGetIt) {
  if (distribute::built_with_mpi()) GTEST_SKIP() << "kiln was built with MPI";
  EXPECT_EQ(message_of([] { distribute::MultiWorkerMirroredStrategy(); }),
            "[MultiWorkerMirroredStrategy] kiln was built without MPI; rebuild with libopenmpi-dev installed");
}

TEST(Distribute, AStrategyWithoutGpuCollectivesSaysSo) {
  Pretend strategy(2);
  EXPECT_EQ(message_of([&] { strategy.device_collectives(Device::gpu(0)); }),
            "[fit] Pretend has no collectives on cuda:0; expected a model on the CPU");
}

TEST(Distribute, WorkerDeviceIsTheLocalGpuOrTheCpu) {
  if (!distribute::built_with_mpi()) GTEST_SKIP() << "kiln was built without MPI";
  const distribute::MultiWorkerMirroredStrategy strategy;
  const bool gpus = !config::list_physical_devices("GPU").empty();
  EXPECT_EQ(strategy.worker_device(), gpus ? Device::gpu(0) : Device::cpu());
}

// On a GPU the gradients are summed by NCCL, on the device, inside the recorded step. One process
// is all one GPU allows (NCCL refuses two ranks on one GPU): its sum of one must change nothing,
// eager or recorded, so the run equals fit without a strategy bit for bit (op determinism is on in
// this binary). The data's last batch is partial (50 = 3 x 16 + 2): eager between replays.
TEST(DistributeGpu, OneReplicaOnAGpuTrainsBitForBitAsFitWithoutStrategy) {
  REQUIRE_GPU();
  if (!distribute::built_with_mpi()) GTEST_SKIP() << "kiln was built without MPI";
  const auto strategy = std::make_shared<distribute::MultiWorkerMirroredStrategy>();
  ASSERT_EQ(strategy->num_replicas_in_sync(), 1) << "run without mpirun";
  ASSERT_EQ(strategy->worker_device(), Device::gpu(0));
  const auto [x, y] = data(50);
  const auto [xv, yv] = data(13);
  for (const bool graphs : {false, true})
    for (const bool batch_norm : {false, true}) {
      SCOPED_TRACE(std::string(graphs ? "recorded" : "eager") + (batch_norm ? ", BatchNormalization" : ""));
      const FitOptions options{
          .batch_size = 16, .epochs = 3, .verbose = 0, .validation_data = {{xv, yv}}, .cuda_graphs = graphs};
      Sequential plain = classifier(batch_norm);
      plain.to(Device::gpu(0));
      const History h = plain.fit(x, y, options);
      Sequential spread = classifier(batch_norm);
      spread.to(strategy->worker_device());
      FitOptions with_strategy = options;
      with_strategy.strategy = strategy;
      const History hs = spread.fit(x, y, with_strategy);
      EXPECT_EQ(spread.last_fit_execution().recorded, graphs) << spread.last_fit_execution().reason;
      EXPECT_EQ(data_parallel_test::flat_weights(spread), data_parallel_test::flat_weights(plain));
      EXPECT_EQ(hs.history, h.history);
    }
}

// A group whose work misses its deadline is aborted, so that no kernel waits for a peer forever,
// and then refuses every call, saying why. One rank is enough to make the device late: a queue of
// large products.
TEST(DistributeGpu, AGroupPastItsDeadlineIsAbortedAndSaysSo) {
  REQUIRE_GPU();
  backend::Backend& be = backend::get(Device::gpu(0));
  std::unique_ptr<backend::DeviceCollectives> group;
  try {
    group = be.join_collectives(be.make_collectives_key(), 0, 1, 60);
  } catch (const Error& e) {
    GTEST_SKIP() << "no NCCL: " << e.what();
  }
  Tensor t = Tensor::ones({1000}, DType::Float32, Device::gpu(0));
  group->all_reduce(DType::Float32, t.raw_data(), t.numel(), /*max=*/false);
  ASSERT_TRUE(group->wait(60));
  EXPECT_EQ(t.to_vector<float>(), std::vector<float>(1000, 1.f)) << "a sum over one rank";
  Generator gen(1);
  const Tensor a = Tensor::uniform({4096, 4096}, -0.01, 0.01, gen, DType::Float32, Device::gpu(0));
  Tensor b = a;
  for (int i = 0; i < 20; ++i) b = matmul(b, a);  // tens of milliseconds queued
  EXPECT_FALSE(group->wait(0.0));
  EXPECT_EQ(message_of([&] { group->all_reduce(DType::Float32, t.raw_data(), t.numel(), false); }),
            "[collectives] the group was aborted after a collective missed its deadline; expected a new job");
  EXPECT_EQ(message_of([&] { (void)group->wait(60); }),
            "[collectives] the group was aborted after a collective missed its deadline; expected a new job");
  be.synchronize();
  group.reset();  // an aborted group is freed once
}

// The random layers' counters ride along the device sum (kept equal when a shard is empty) and
// Dropout's masks are drawn as in one process.
TEST(DistributeGpu, DropoutUnderOneReplicaOnAGpuTrainsAsWithoutStrategy) {
  REQUIRE_GPU();
  if (!distribute::built_with_mpi()) GTEST_SKIP() << "kiln was built without MPI";
  const auto strategy = std::make_shared<distribute::MultiWorkerMirroredStrategy>();
  const auto [x, y] = data(40);
  const auto model = [] {
    utils::set_random_seed(5);
    Sequential m(
        {layers::Dense(16, {.activation = "relu", .input_shape = {4}}), layers::Dropout(0.3), layers::Dense(3)});
    m.compile(optimizers::SGD({.learning_rate = 0.05, .momentum = 0.9}),
              losses::SparseCategoricalCrossentropy({.from_logits = true}));
    m.to(Device::gpu(0));
    return m;
  };
  Sequential plain = model();
  plain.fit(x, y, {.batch_size = 8, .epochs = 2, .verbose = 0});
  Sequential spread = model();
  spread.fit(x, y, {.batch_size = 8, .epochs = 2, .verbose = 0, .strategy = strategy});
  EXPECT_TRUE(spread.last_fit_execution().recorded) << spread.last_fit_execution().reason;
  EXPECT_EQ(data_parallel_test::flat_weights(spread), data_parallel_test::flat_weights(plain));
}

TEST(Distribute, GlobalBatchMustCoverEveryReplica) {
  Pretend strategy(4);
  EXPECT_EQ(message_of([&] { distribute::Replica::check(strategy, 3); }),
            "[fit] batch_size 3 is smaller than the 4 replicas of Pretend; expected the global batch, at least one "
            "sample per replica (batch_size >= 4)");
  EXPECT_EQ(message_of([&] { distribute::Replica::check(strategy, 4); }), "(no error)");
}

TEST(Distribute, FitChecksTheStrategyBeforeTraining) {
  // fit refuses what the strategy cannot run before any step: the weights stay as they were.
  const auto xy = data(8);
  const Tensor x = xy.first, y = xy.second;
  Sequential model = classifier(false);
  const auto before = data_parallel_test::flat_weights(model);
  EXPECT_EQ(
      message_of([&] { model.fit(x, y, {.batch_size = 2, .verbose = 0, .strategy = std::make_shared<Pretend>(3)}); }),
      "[fit] batch_size 2 is smaller than the 3 replicas of Pretend; expected the global batch, at least one "
      "sample per replica (batch_size >= 3)");
  EXPECT_EQ(data_parallel_test::flat_weights(model), before);
}
