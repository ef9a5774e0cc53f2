// MirroredStrategy: replicas that are threads of one process. On the CPU (listed more than once)
// the data-parallel fit runs without GPUs or mpirun: P replicas at global batch B equal one
// process at batch B (within 1e-6 relative: each replica sums its shard's rows, and the shards'
// sums are then added, so float32 rounds otherwise than one product over the batch), the replicas
// stay bit-identical (check_replicas), replica 0's callbacks reach the others, and a replica that
// fails ends fit with its own error at once. The thread group's collectives are tested directly.
// The GPU tests run on a GPU machine (MirroredStrategyGpu).
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "data_parallel_support.h"
#include "distribute/replica_context.h"
#include "distribute/thread_communicator.h"
#include "kiln/kiln.h"
#include "test_support.h"

using namespace kiln;
using kiln::testing::message_of;
using namespace kiln::data_parallel_test;

namespace {

constexpr double kTolerance = 1e-6;

std::shared_ptr<distribute::MirroredStrategy> cpu_replicas(int n, distribute::MirroredStrategyOptions options = {
                                                                      .check_replicas = true}) {
  return std::make_shared<distribute::MirroredStrategy>(std::vector<Device>(static_cast<std::size_t>(n), Device::cpu()),
                                                        options);
}

class MirroredStrategy : public kiln::testing::CpuTestInFolder {};

struct Case {
  int replicas;
  int64_t samples, batch_size;
  std::string optimizer;
};

// P replicas at global batch B against this process alone at batch B, from the same seed; the
// replicas are checked bit-identical after every epoch (check_replicas).
void expect_equal_to_one_process(const Case& c, const MakeLayer& middle = nullptr) {
  SCOPED_TRACE(std::to_string(c.replicas) + " replicas, samples " + std::to_string(c.samples) + ", batch_size " +
               std::to_string(c.batch_size) + ", " + c.optimizer);
  const auto [x, y] = data(c.samples);
  const auto [xv, yv] = data(21, 11);
  Sequential spread = classifier(42, c.optimizer, middle);
  const History h = spread.fit(x, y,
                               {.batch_size = c.batch_size,
                                .epochs = 3,
                                .verbose = 0,
                                .validation_data = {{xv, yv}},
                                .strategy = cpu_replicas(c.replicas)});
  Sequential alone = classifier(42, c.optimizer, middle);
  const History h1 =
      alone.fit(x, y, {.batch_size = c.batch_size, .epochs = 3, .verbose = 0, .validation_data = {{xv, yv}}});
  EXPECT_LE(max_relative_difference(flat_weights(spread), flat_weights(alone)), kTolerance);
  EXPECT_GT(max_relative_difference(flat_weights(alone), flat_weights(classifier(42, c.optimizer, middle))), 1e-3)
      << "training moved the weights";
  expect_history_near(h, h1, kTolerance);
}

}  // namespace

TEST_F(MirroredStrategy, CpuReplicasEqualOneProcess) {
  expect_equal_to_one_process({.replicas = 2, .samples = 64, .batch_size = 16, .optimizer = "sgd"});   // full
  expect_equal_to_one_process({.replicas = 2, .samples = 50, .batch_size = 15, .optimizer = "adam"});  // 7 and 8
  expect_equal_to_one_process({.replicas = 3, .samples = 49, .batch_size = 16, .optimizer = "adam"});  // empty shards
}

TEST_F(MirroredStrategy, SynchronizedBatchNormAndDropoutEqualOneProcess) {
  expect_equal_to_one_process({.replicas = 2, .samples = 64, .batch_size = 16, .optimizer = "adam"},
                              [] { return layers::BatchNormalization({.synchronized = true}); });
  expect_equal_to_one_process({.replicas = 2, .samples = 64, .batch_size = 16, .optimizer = "adam"},
                              [] { return layers::Dropout(0.25); });
}

TEST_F(MirroredStrategy, OneReplicaTrainsBitForBitAsFitWithoutStrategy) {
  const auto [x, y] = data(50);
  Sequential plain = classifier(5, "adam");
  const History h = plain.fit(x, y, {.batch_size = 16, .epochs = 2, .verbose = 0});
  Sequential mirrored = classifier(5, "adam");
  const History hm = mirrored.fit(x, y, {.batch_size = 16, .epochs = 2, .verbose = 0, .strategy = cpu_replicas(1)});
  EXPECT_TRUE(kiln::testing::bitwise_equal(flat_weights(mirrored), flat_weights(plain)));
  EXPECT_EQ(hm.history, h.history);
}

// LearningRateScheduler and EarlyStopping run on replica 0 only; the others take its learning rate
// and stop with it (check_replicas would throw if their weights drifted apart).
TEST_F(MirroredStrategy, ReplicaZerosCallbacksReachEveryReplica) {
  const auto [x, y] = data(48);
  const auto callbacks = [] {
    return std::vector<std::shared_ptr<Callback>>{
        std::make_shared<callbacks::LearningRateScheduler>([](int epoch) { return 0.1 / (1 + epoch); }),
        std::make_shared<callbacks::EarlyStopping>(
            callbacks::EarlyStoppingOptions{.monitor = "loss", .min_delta = 10.0, .patience = 1})};
  };
  Sequential spread = classifier(8, "sgd");
  const History h = spread.fit(
      x, y, {.batch_size = 12, .epochs = 6, .verbose = 0, .callbacks = callbacks(), .strategy = cpu_replicas(2)});
  Sequential alone = classifier(8, "sgd");
  const History h1 = alone.fit(x, y, {.batch_size = 12, .epochs = 6, .verbose = 0, .callbacks = callbacks()});
  EXPECT_EQ(h.epoch, (std::vector<int>{0, 1})) << "EarlyStopping (no loss drop of 10) stops after epoch 2";
  EXPECT_EQ(h.epoch, h1.epoch);
  EXPECT_LE(max_relative_difference(flat_weights(spread), flat_weights(alone)), kTolerance);
  EXPECT_DOUBLE_EQ(spread.optimizer()->learning_rate(), 0.05);
}

namespace {

// Ends fit with an exception after the second epoch (a crash after its backup was written).
class Interrupt : public Callback {
 public:
  bool on_epoch_end(Model& /*model*/, int epoch, const std::map<std::string, double>& /*logs*/) override {
    if (epoch == 1) throw std::runtime_error("interrupted");
    return true;
  }
};

}  // namespace

// A backup restored by replica 0 (weights, optimizer state, generator, epoch) reaches every replica:
// the resumed run repeats the uninterrupted one bit for bit.
TEST_F(MirroredStrategy, EveryReplicaResumesFromReplicaZerosBackup) {
  const auto [x, y] = data(40);
  const FitOptions base{.batch_size = 8, .epochs = 4, .verbose = 0, .strategy = cpu_replicas(2)};
  Sequential straight = classifier(13, "adam");
  const History whole = straight.fit(x, y, base);

  Sequential first = classifier(13, "adam");
  FitOptions interrupted = base;
  interrupted.callbacks = {std::make_shared<callbacks::BackupAndRestore>(path("backup")),
                           std::make_shared<Interrupt>()};
  EXPECT_THROW(first.fit(x, y, interrupted), std::runtime_error);

  Sequential resumed = classifier(13, "adam");
  FitOptions again = base;
  again.callbacks = {std::make_shared<callbacks::BackupAndRestore>(path("backup"))};
  const History rest = resumed.fit(x, y, again);
  EXPECT_EQ(rest.epoch, (std::vector<int>{2, 3}));
  EXPECT_TRUE(kiln::testing::bitwise_equal(flat_weights(resumed), flat_weights(straight)))
      << "resuming repeats the uninterrupted run bit for bit";
  EXPECT_EQ(rest.history.at("loss").back(), whole.history.at("loss").back());
}

// A second fit continues from the first one's optimizer state on every replica (Adam's moments and
// step count), as one process does.
TEST_F(MirroredStrategy, SecondFitContinuesTheOptimizerStateOnEveryReplica) {
  const auto [x, y] = data(32);
  Sequential spread = classifier(3, "adam");
  Sequential alone = classifier(3, "adam");
  for (int call = 0; call < 2; ++call) {
    spread.fit(x, y, {.batch_size = 8, .epochs = 1, .verbose = 0, .strategy = cpu_replicas(2)});
    alone.fit(x, y, {.batch_size = 8, .epochs = 1, .verbose = 0});
  }
  EXPECT_EQ(spread.optimizer()->iterations(), 8);
  EXPECT_LE(max_relative_difference(flat_weights(spread), flat_weights(alone)), kTolerance);
}

namespace {

// Passes its input through; during training, throws on every replica but the chief (a row past the
// first of the global batch).
class FailOffChief : public Layer {
 public:
  FailOffChief() { name_ = "fail_off_chief"; }
  std::string class_name() const override { return "FailOffChief"; }
  static FailOffChief from_config(const Config& /*config*/) { return FailOffChief(); }
  Shape compute_output_shape(const Shape& input_shape) const override { return input_shape; }
  Tensor call(const Tensor& x, bool training) override {
    const auto* context = distribute::ReplicaContext::current();
    if (training && context && context->shard().first_row > 0) throw Error("fail_off_chief", "this replica fails");
    return x;
  }
};

const RegisterLayer<FailOffChief> registered("FailOffChief");

// The same without a config: the replicas cannot be copied.
class NoConfig : public Layer {
 public:
  NoConfig() { name_ = "no_config"; }
  std::string class_name() const override { return "NoConfig"; }
  Shape compute_output_shape(const Shape& input_shape) const override { return input_shape; }
  Tensor call(const Tensor& x, bool /*training*/) override { return x; }
};

}  // namespace

TEST_F(MirroredStrategy, AReplicaThatFailsEndsFitWithItsErrorAtOnce) {
  const auto [x, y] = data(32);
  Sequential model = classifier(1, "sgd", [] { return FailOffChief(); });
  const auto start = std::chrono::steady_clock::now();
  const std::string msg = message_of(
      [&] { model.fit(x, y, {.batch_size = 8, .verbose = 0, .strategy = cpu_replicas(2, {.timeout_seconds = 60})}); });
  EXPECT_EQ(msg, "[fail_off_chief] this replica fails");
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(), 30.0)
      << "replica 0 stopped at once, not at the collectives' deadline";
}

TEST_F(MirroredStrategy, ALayerWithoutAConfigIsRefusedWithTheReason) {
  const auto [x, y] = data(16);
  Sequential model = classifier(1, "sgd", [] { return NoConfig(); });
  const std::string msg =
      message_of([&] { model.fit(x, y, {.batch_size = 8, .verbose = 0, .strategy = cpu_replicas(2)}); });
  EXPECT_NE(msg.find("[fit] MirroredStrategy copies the model to each replica from its config, and layer "
                     "'no_config' is a NoConfig, which is not a registered layer class"),
            std::string::npos)
      << msg;
}

TEST_F(MirroredStrategy, DevicesAndOptionsAreChecked) {
  const int gpus = static_cast<int>(config::list_physical_devices("GPU").size());
  const distribute::MirroredStrategy every;
  EXPECT_EQ(every.num_replicas_in_sync(), std::max(gpus, 1));
  EXPECT_EQ(every.devices().front(), gpus > 0 ? Device::gpu(0) : Device::cpu());
  EXPECT_EQ(every.rank(), 0);
  EXPECT_EQ(every.name(), "MirroredStrategy");
  EXPECT_EQ(message_of([] {
              distribute::MirroredStrategy({Device::cpu(), Device::gpu(0)});
            }),
            "[MirroredStrategy] devices lists cpu and cuda:0; expected GPUs only or the CPU only (replicas that differ "
            "in speed would wait for the slowest at every step)");
  EXPECT_EQ(message_of([&] { distribute::MirroredStrategy({Device::gpu(gpus)}); }),
            "[MirroredStrategy] devices lists cuda:" + std::to_string(gpus) + " but this machine has " +
                std::to_string(gpus) + " GPU(s); expected devices of config::list_physical_devices(\"GPU\")");
  EXPECT_EQ(message_of([] { distribute::MirroredStrategy({Device::cpu()}, {.timeout_seconds = 0}); }),
            "[MirroredStrategy] timeout_seconds is 0; expected a positive number of seconds");
  EXPECT_EQ(message_of([] { distribute::MirroredStrategy({Device::cpu()}, {.bucket_bytes = -1}); }),
            "[MirroredStrategy] bucket_bytes is -1; expected a positive size (e.g. 4 MiB, the default)");
  Sequential model = classifier(1, "sgd");
  const auto [x, y] = data(8);
  EXPECT_EQ(message_of([&] { model.fit(x, y, {.batch_size = 2, .verbose = 0, .strategy = cpu_replicas(3)}); }),
            "[fit] batch_size 2 is smaller than the 3 replicas of MirroredStrategy; expected the global batch, at "
            "least one sample per replica (batch_size >= 3)");
}

// ---- the thread group's collectives ----

TEST(ThreadGroup, CollectivesCombineEveryRankInRankOrder) {
  distribute::ThreadGroup group(3, 30.0);
  std::vector<std::vector<double>> sums(3);
  std::vector<std::vector<int64_t>> maxima(3), gathered(3, std::vector<int64_t>(3));
  std::vector<std::vector<float>> broadcast(3);
  std::vector<std::thread> threads;
  for (int r = 0; r < 3; ++r)
    threads.emplace_back([&, r] {
      auto comm = group.member(r);
      sums[r] = {1.0 * r, 0.1};
      maxima[r] = {r == 1 ? 9 : r};
      broadcast[r] = {static_cast<float>(r), static_cast<float>(-r)};
      const int64_t mine = 10 + r;
      comm->start_all_reduce(sums[r].data(), 2, distribute::Elem::Float64, distribute::ReduceOp::Sum);
      comm->start_all_reduce(maxima[r].data(), 1, distribute::Elem::Int64, distribute::ReduceOp::Max);
      comm->start_broadcast(broadcast[r].data(), 2 * sizeof(float), 2);
      comm->start_all_gather(&mine, gathered[r].data());
      comm->wait("the test's round");
    });
  for (auto& t : threads) t.join();
  for (int r = 0; r < 3; ++r) {
    EXPECT_EQ(sums[r], (std::vector<double>{3.0, (0.1 + 0.1) + 0.1}));
    EXPECT_EQ(maxima[r], (std::vector<int64_t>{9}));
    EXPECT_EQ(broadcast[r], (std::vector<float>{2.0f, -2.0f}));
    EXPECT_EQ(gathered[r], (std::vector<int64_t>{10, 11, 12}));
  }
}

TEST(ThreadGroup, ARankMissingAtTheDeadlineIsNamed) {
  distribute::ThreadGroup group(3, 0.2);
  std::vector<std::string> messages(2);
  std::vector<std::thread> threads;
  for (int r = 0; r < 2; ++r)
    threads.emplace_back([&, r] {
      auto comm = group.member(r);
      messages[r] = message_of([&] { comm->wait("the test's round"); });
    });
  for (auto& t : threads) t.join();
  const std::string expected =
      "[fit] replica(s) 2 did not join the test's round within 0.2 s; expected every replica to reach it (one may be "
      "stuck or slowed down: the timeout is StrategyOptions::timeout_seconds or KILN_COLLECTIVE_TIMEOUT)";
  // The rank that gave up first names the missing rank; the other stops with the same message.
  EXPECT_TRUE(messages[0] == expected || messages[1] == expected) << messages[0] << "\n" << messages[1];
  auto late = group.member(2);
  EXPECT_NE(message_of([&] { late->wait("the test's round"); }).find("did not join"), std::string::npos);
}

TEST(ThreadGroup, CollectivesThatDifferBetweenRanksAreRefused) {
  distribute::ThreadGroup group(2, 30.0);
  std::vector<std::string> messages(2);
  std::vector<std::thread> threads;
  for (int r = 0; r < 2; ++r)
    threads.emplace_back([&, r] {
      auto comm = group.member(r);
      double v[2] = {1, 2};
      comm->start_all_reduce(v, r == 0 ? 2 : 1, distribute::Elem::Float64, distribute::ReduceOp::Sum);
      messages[r] = message_of([&] { comm->wait("the test's round"); });
    });
  for (auto& t : threads) t.join();
  for (const auto& m : messages)
    EXPECT_EQ(m,
              "[fit] replica 1 started an all-reduce of 1 where replica 0 started an all-reduce of 2; expected every "
              "replica to run the same fit in the test's round");
}

TEST(ThreadGroup, AnAbandonedGroupStopsTheWaitingRanksWithTheCause) {
  distribute::ThreadGroup group(2, 30.0);
  std::string message;
  std::thread waiting([&] {
    auto comm = group.member(0);
    message = message_of([&] { comm->wait("the test's round"); });
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  group.abandon(1, std::make_exception_ptr(Error("fit", "out of memory")));
  waiting.join();
  EXPECT_EQ(message, "[fit] replica 1 stopped: [fit] out of memory (during the test's round)");
  ASSERT_TRUE(group.first_failure());
  EXPECT_EQ(message_of([&] { std::rethrow_exception(group.first_failure()); }), "[fit] out of memory");
}

// ---- GPUs ----

// One GPU: NCCL with one rank, the sums recorded with the step; the same bits as fit alone.
TEST(MirroredStrategyGpu, OneGpuTrainsBitForBitAsFitWithoutStrategy) {
  REQUIRE_GPU();
  const auto strategy = std::make_shared<distribute::MirroredStrategy>(std::vector<Device>{Device::gpu(0)});
  const auto [x, y] = data(50);
  const auto [xv, yv] = data(13, 11);
  for (const bool graphs : {false, true})
    for (const bool with_bn : {false, true}) {
      SCOPED_TRACE(std::string(graphs ? "recorded" : "eager") + (with_bn ? ", BatchNormalization" : ""));
      const MakeLayer middle = with_bn ? MakeLayer(batch_norm) : nullptr;
      const FitOptions options{
          .batch_size = 16, .epochs = 3, .verbose = 0, .validation_data = {{xv, yv}}, .cuda_graphs = graphs};
      Sequential plain = classifier(4, "adam", middle);
      plain.to(Device::gpu(0));
      const History h = plain.fit(x, y, options);
      Sequential spread = classifier(4, "adam", middle);
      spread.to(Device::gpu(0));
      FitOptions with_strategy = options;
      with_strategy.strategy = strategy;
      const History hs = spread.fit(x, y, with_strategy);
      EXPECT_EQ(spread.last_fit_execution().recorded, graphs) << spread.last_fit_execution().reason;
      EXPECT_TRUE(kiln::testing::bitwise_equal(flat_weights(spread), flat_weights(plain)));
      EXPECT_EQ(hs.history, h.history);
    }
}

TEST(MirroredStrategyGpu, EveryGpuByDefaultAndTheModelOnTheFirst) {
  REQUIRE_GPU();
  const int gpus = static_cast<int>(config::list_physical_devices("GPU").size());
  const auto every = std::make_shared<distribute::MirroredStrategy>();
  ASSERT_EQ(every->num_replicas_in_sync(), gpus);
  for (int i = 0; i < gpus; ++i) EXPECT_EQ(every->devices()[static_cast<std::size_t>(i)], Device::gpu(i));
  EXPECT_EQ(message_of([] {
              distribute::MirroredStrategy({Device::gpu(0), Device::gpu(0)});
            }),
            "[MirroredStrategy] devices lists cuda:0 twice; expected each GPU once (NCCL sums across distinct GPUs)");
  Sequential model = classifier(1, "sgd");
  model.to(Device::cpu());
  const auto [x, y] = data(16);
  EXPECT_EQ(message_of([&] { model.fit(x, y, {.batch_size = 8, .verbose = 0, .strategy = every}); }),
            "[fit] the model is on cpu but MirroredStrategy trains replica 0 on cuda:0; expected the model on the "
            "strategy's first device (model.to(strategy->devices()[0]))");
}

// Every GPU of the machine against one GPU alone at the same global batch (machines of two GPUs or
// more).
TEST(MirroredStrategyGpu, EveryGpuEqualsOneGpu) {
  REQUIRE_GPU();
  const auto every = std::make_shared<distribute::MirroredStrategy>();
  if (every->num_replicas_in_sync() < 2) GTEST_SKIP() << "one GPU here; the test needs two or more";
  const auto [x, y] = data(64);
  for (const bool with_bn : {false, true}) {
    SCOPED_TRACE(with_bn ? "synchronized BatchNormalization" : "Dense only");
    const MakeLayer middle =
        with_bn ? MakeLayer([] { return layers::BatchNormalization({.synchronized = true}); }) : nullptr;
    Sequential alone = classifier(6, "adam", middle);
    alone.to(Device::gpu(0));
    const History h1 = alone.fit(x, y, {.batch_size = 16, .epochs = 3, .verbose = 0});
    Sequential spread = classifier(6, "adam", middle);
    spread.to(Device::gpu(0));
    const History h = spread.fit(x, y, {.batch_size = 16, .epochs = 3, .verbose = 0, .strategy = every});
    EXPECT_LE(max_relative_difference(flat_weights(spread), flat_weights(alone)), kTolerance);
    expect_history_near(h, h1, kTolerance);
  }
}
