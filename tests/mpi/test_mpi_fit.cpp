// Data-parallel fit on the ranks of mpirun (every rank runs every test): training on 2 ranks at
// a global batch equals one process at that batch, each rank trains on exactly its shard of every
// global batch, replicas stay bit-identical, logs and History are global, checkpoints come from
// rank 0 only and every rank resumes from them, and bad use is refused with a clear error.
//
// Equality with one process is within 1e-6 relative, not exact: one process computes a batch's
// gradient with one matrix product over all its rows, two ranks each over their half, and the
// halves' sums are then added; float32 rounds the two orders differently.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <iostream>
#include <map>
#include <string>
#include <vector>

#include "kiln/kiln.h"
#include "mpi_test_util.h"

using namespace kiln;
using namespace kiln::mpi_test;
namespace fs = std::filesystem;

namespace {

constexpr double kTolerance = 1e-6;

// Every rank's copy of `weights`, bit for bit, compared with rank 0's.
void expect_identical_across_ranks(const std::vector<float>& weights) {
  std::vector<int32_t> bits(weights.size());
  std::memcpy(bits.data(), weights.data(), weights.size() * sizeof(float));
  const auto all = all_gather(bits);
  ASSERT_EQ(all.size(), bits.size() * static_cast<std::size_t>(ranks()));
  for (int r = 1; r < ranks(); ++r)
    EXPECT_TRUE(std::equal(bits.begin(), bits.end(), all.begin() + static_cast<std::ptrdiff_t>(r * bits.size())))
        << "rank " << r << "'s weights differ from rank 0's";
}

struct Case {
  int64_t samples, batch_size;
  std::string optimizer;
  std::shared_ptr<distribute::MultiWorkerMirroredStrategy> strategy = mpi_test::strategy();
};

// P ranks at global batch B against this process alone at batch B, from the same seed.
void expect_equal_to_one_process(const Case& c) {
  SCOPED_TRACE("samples " + std::to_string(c.samples) + ", batch_size " + std::to_string(c.batch_size) + ", " +
               c.optimizer);
  const auto [x, y] = data(c.samples);
  const auto [xv, yv] = data(21, 11);
  Sequential spread = classifier(42, c.optimizer);
  const History h = spread.fit(
      x, y,
      {.batch_size = c.batch_size, .epochs = 3, .verbose = 0, .validation_data = {{xv, yv}}, .strategy = c.strategy});
  Sequential alone = classifier(42, c.optimizer);
  const History h1 =
      alone.fit(x, y, {.batch_size = c.batch_size, .epochs = 3, .verbose = 0, .validation_data = {{xv, yv}}});
  const double d = max_relative_difference(flat_weights(spread), flat_weights(alone));
  EXPECT_LE(d, kTolerance);
  if (rank() == 0) std::cout << "  max relative difference of the weights from one process: " << d << '\n';
  EXPECT_GT(max_relative_difference(flat_weights(alone), flat_weights(classifier(42, c.optimizer))), 1e-3)
      << "training moved the weights";
  expect_history_near(h, h1, kTolerance);
  expect_identical_across_ranks(flat_weights(spread));
}

}  // namespace

TEST(Fit, TwoRanksEqualOneProcess) {
  ASSERT_EQ(ranks(), 2) << "run under mpirun -np 2";
  expect_equal_to_one_process({.samples = 64, .batch_size = 16, .optimizer = "sgd"});   // full batches
  expect_equal_to_one_process({.samples = 50, .batch_size = 16, .optimizer = "sgd"});   // last batch of 2
  expect_equal_to_one_process({.samples = 50, .batch_size = 15, .optimizer = "adam"});  // shards of 7 and 8
  expect_equal_to_one_process(
      {.samples = 49, .batch_size = 16, .optimizer = "adam"});  // last batch of 1: one empty shard
}

// Buckets of one gradient each: every bucket's all-reduce starts while backward goes on (as soon as
// its gradient is complete), in the same order on both ranks, and the result is the same.
TEST(Fit, SmallBucketsStartedDuringBackwardEqualOneProcess) {
  ASSERT_EQ(ranks(), 2) << "run under mpirun -np 2";
  const auto small = std::make_shared<distribute::MultiWorkerMirroredStrategy>(
      distribute::MultiWorkerMirroredStrategyOptions{.bucket_bytes = 16});
  expect_equal_to_one_process({.samples = 64, .batch_size = 16, .optimizer = "adam", .strategy = small});
  expect_equal_to_one_process({.samples = 49, .batch_size = 16, .optimizer = "sgd", .strategy = small});
}

namespace {

// An identity layer that records the first feature (a sample's number) of every training batch.
class Recorder : public Layer {
 public:
  explicit Recorder(std::vector<std::vector<int32_t>>* seen) : seen_(seen) { name_ = "recorder"; }
  std::string class_name() const override { return "Recorder"; }
  Shape compute_output_shape(const Shape& input_shape) const override { return input_shape; }
  Tensor call(const Tensor& x, bool training) override {
    if (training) {
      const auto v = x.to_vector<float>();
      auto& batch = seen_->emplace_back();
      for (std::size_t i = 0; i < v.size(); i += 2) batch.push_back(static_cast<int32_t>(v[i]));
    }
    return x;
  }

 private:
  std::vector<std::vector<int32_t>>* seen_;
};

}  // namespace

TEST(Fit, EachRankTrainsOnItsShardOfEveryGlobalBatch) {
  const int64_t n = 23, batch = 8, epochs = 2;
  std::vector<float> xs;
  std::vector<float> ys;
  for (int64_t i = 0; i < n; ++i) {
    xs.push_back(static_cast<float>(i));
    xs.push_back(0.5F);
    ys.push_back(static_cast<float>(i % 3));
  }
  std::vector<std::vector<int32_t>> seen;
  utils::set_random_seed(5);
  Sequential model({Recorder(&seen), layers::Dense(1)});
  model.build({2});
  model.compile("sgd", "mean_squared_error");
  Generator shuffles = model.generator();  // draws the permutations fit will draw
  model.fit(Tensor::from_vector(xs, {n, 2}), Tensor::from_vector(ys, {n, 1}),
            {.batch_size = batch, .epochs = static_cast<int>(epochs), .verbose = 0, .strategy = strategy()});

  const int64_t steps = (n + batch - 1) / batch;
  std::vector<std::vector<int32_t>> shards;  // this rank's expected shards, with empty ones left out
  std::vector<std::vector<int32_t>> globals;
  for (int64_t e = 0; e < epochs; ++e) {
    const auto order = shuffles.permutation(n);
    for (int64_t s = 0; s < steps; ++s) {
      const int64_t first = s * batch, rows = std::min(n, first + batch) - first;
      const int64_t begin = first + rows * rank() / ranks(), end = first + rows * (rank() + 1) / ranks();
      globals.emplace_back(order.begin() + first, order.begin() + first + rows);
      if (end > begin) shards.emplace_back(order.begin() + begin, order.begin() + end);
    }
  }
  EXPECT_EQ(seen, shards);
  // The union of the ranks' shards of every step is its global batch, each sample once.
  std::vector<int32_t> flat;
  for (const auto& s : seen) flat.insert(flat.end(), s.begin(), s.end());
  const auto all = all_gather(flat);
  std::vector<int32_t> want;
  for (const auto& g : globals) want.insert(want.end(), g.begin(), g.end());
  auto sorted_all = all, sorted_want = want;
  std::sort(sorted_all.begin(), sorted_all.end());
  std::sort(sorted_want.begin(), sorted_want.end());
  EXPECT_EQ(sorted_all, sorted_want);
  EXPECT_EQ(static_cast<int64_t>(all.size()), n * epochs);
}

TEST(Fit, BatchNormalizationReplicasStayIdentical) {
  // Per-replica batch statistics; moving statistics averaged after every step: every rank keeps
  // the same weights (check_replicas compares them after every epoch too).
  const auto checked = std::make_shared<distribute::MultiWorkerMirroredStrategy>(
      distribute::MultiWorkerMirroredStrategyOptions{.check_replicas = true});
  const auto [x, y] = data(50);
  Sequential model = classifier(3, "adam", batch_norm);
  const auto before = flat_weights(model);
  model.fit(x, y, {.batch_size = 10, .epochs = 3, .verbose = 0, .strategy = checked});
  expect_identical_across_ranks(flat_weights(model));
  EXPECT_NE(flat_weights(model), before);
  const auto moving_mean = model.layers()[1]->named_weights()[2];
  ASSERT_EQ(moving_mean.first, "moving_mean");
  EXPECT_NE(moving_mean.second.to_vector<float>(), std::vector<float>(8, 0.0F)) << "the moving mean was updated";
}

TEST(Fit, DropoutCountersStayEqualWithEmptyShards) {
  // 49 samples at batch 16: the last batch has one row, so one rank's shard is empty and it runs no
  // forward pass; the random layers' counters are still kept equal (check_replicas hashes them).
  const auto checked = std::make_shared<distribute::MultiWorkerMirroredStrategy>(
      distribute::MultiWorkerMirroredStrategyOptions{.check_replicas = true});
  utils::set_random_seed(17);
  Sequential model(
      {layers::Dense(8, {.activation = "relu", .input_shape = {4}}), layers::Dropout(0.25), layers::Dense(3)});
  model.compile(optimizers::SGD({.learning_rate = 0.1}), losses::SparseCategoricalCrossentropy({.from_logits = true}));
  const auto [x, y] = data(49);
  const Tensor before = model.layers()[1]->all_weights()[0].value.clone();
  EXPECT_NO_THROW(model.fit(x, y, {.batch_size = 16, .epochs = 2, .verbose = 0, .strategy = checked}));
  const Tensor counter = model.layers()[1]->all_weights()[0].value;
  EXPECT_EQ(counter.to_vector<int64_t>()[0] - before.to_vector<int64_t>()[0], 8) << "one draw per step, 4 steps a pass";
  expect_identical_across_ranks(flat_weights(model));
}

namespace {

// Changes one weight on rank 1 after every epoch, as a bug in the update would.
class SpoilRankOne : public Callback {
 public:
  bool on_epoch_end(Model& model, int /*epoch*/, const std::map<std::string, double>& /*logs*/) override {
    if (rank() == 1) {
      Tensor w = model.trainable_weights()[0];
      w.data<float>()[0] += 1.0F;
    }
    return true;
  }
};

}  // namespace

TEST(Fit, CheckReplicasNamesTheRankThatDiffers) {
  const auto checked = std::make_shared<distribute::MultiWorkerMirroredStrategy>(
      distribute::MultiWorkerMirroredStrategyOptions{.check_replicas = true});
  const auto [x, y] = data(20);
  Sequential model = classifier(4);
  try {
    model.fit(x, y,
              {.batch_size = 10,
               .epochs = 2,
               .verbose = 0,
               .callbacks = {std::make_shared<SpoilRankOne>()},
               .strategy = checked});
    FAIL() << "check_replicas missed the difference";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()),
              "[fit] after epoch 1 the weights of rank(s) 1 differ from rank 0's (check_replicas); expected "
              "bit-identical replicas (the same summed gradients and update on every rank)");
  }
}

TEST(Fit, CheckpointsAreWrittenByRankZeroAndReadByEveryRank) {
  const std::string dir = shared_dir("checkpoint");
  const fs::path mine = fs::path(dir) / ("rank" + std::to_string(rank()));  // each rank's own folder
  fs::create_directories(mine);
  const auto [x, y] = data(40);
  Sequential model = classifier(9);
  model.fit(x, y,
            {.batch_size = 8,
             .epochs = 2,
             .verbose = 0,
             .callbacks = {std::make_shared<callbacks::ModelCheckpoint>((mine / "ckpt-{epoch}.kiln").string()),
                           std::make_shared<callbacks::CSVLogger>((mine / "log.csv").string())},
             .strategy = strategy()});
  barrier();
  if (rank() == 0) {
    EXPECT_TRUE(fs::exists(mine / "ckpt-1.kiln"));
    EXPECT_TRUE(fs::exists(mine / "ckpt-2.kiln"));
    EXPECT_TRUE(fs::exists(mine / "log.csv"));
  } else {
    EXPECT_TRUE(fs::is_empty(mine)) << "rank " << rank() << " wrote files";
  }
  // Every rank reads rank 0's checkpoint: the weights every rank holds.
  const Model loaded = load_model((fs::path(dir) / "rank0" / "ckpt-2.kiln").string());
  EXPECT_EQ(flat_weights(loaded), flat_weights(model));
  barrier();
  if (rank() == 0) fs::remove_all(dir);
}

namespace {

// Stops fit by throwing after epoch `at` (0-based), as a killed job would stop.
class Interrupt : public Callback {
 public:
  explicit Interrupt(int at) : at_(at) {}
  bool on_epoch_end(Model& /*model*/, int epoch, const std::map<std::string, double>& /*logs*/) override {
    if (epoch == at_) throw std::runtime_error("interrupted");
    return true;
  }

 private:
  int at_;
};

}  // namespace

TEST(Fit, EveryRankResumesFromRankZerosBackup) {
  const std::string dir = shared_dir("backup");
  const auto [x, y] = data(40);
  const FitOptions base{.batch_size = 8, .epochs = 4, .verbose = 0, .strategy = strategy()};
  Sequential straight = classifier(13);
  const History whole = straight.fit(x, y, base);

  Sequential first = classifier(13);
  FitOptions interrupted = base;
  interrupted.callbacks = {std::make_shared<callbacks::BackupAndRestore>(dir), std::make_shared<Interrupt>(1)};
  EXPECT_THROW(first.fit(x, y, interrupted), std::runtime_error);
  barrier();  // rank 0's backup is written before any rank looks for it
  EXPECT_TRUE(fs::exists(fs::path(dir) / "latest.kiln"));

  Sequential resumed = classifier(13);
  FitOptions again = base;
  again.callbacks = {std::make_shared<callbacks::BackupAndRestore>(dir)};
  const History rest = resumed.fit(x, y, again);
  EXPECT_EQ(rest.epoch, (std::vector<int>{2, 3}));
  EXPECT_EQ(flat_weights(resumed), flat_weights(straight)) << "resuming repeats the uninterrupted run bit for bit";
  EXPECT_EQ(rest.history.at("loss").back(), whole.history.at("loss").back());
  expect_identical_across_ranks(flat_weights(resumed));
  barrier();
  if (rank() == 0) fs::remove_all(dir);
}

TEST(Fit, RanksWithOtherDataAreRefused) {
  const auto [x, y] = data(rank() == 0 ? 50 : 48);
  Sequential model = classifier(1);
  try {
    model.fit(x, y, {.batch_size = 10, .verbose = 0, .strategy = strategy()});
    FAIL() << "fit accepted different data on the ranks";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()),
              "[fit] the ranks disagree on training samples: rank 0 has 50, rank(s) 1 another value; expected every "
              "rank to call fit with the same data, model and options (each trains on its shard of every global "
              "batch)");
  }
}

TEST(Fit, GlobalBatchSmallerThanTheRanksIsRefused) {
  const auto [x, y] = data(10);
  Sequential model = classifier(1);
  try {
    model.fit(x, y, {.batch_size = 1, .verbose = 0, .strategy = strategy()});
    FAIL() << "fit accepted batch_size 1 on 2 ranks";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()),
              "[fit] batch_size 1 is smaller than the 2 replicas of MultiWorkerMirroredStrategy; expected the global "
              "batch, at least one sample per replica (batch_size >= 2)");
  }
}
