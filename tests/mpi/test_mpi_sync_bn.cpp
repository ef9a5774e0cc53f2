// BatchNormalization(synchronized=true) on the ranks of mpirun (every rank runs every test): the op
// over two ranks' halves equals fused_batch_norm over the whole batch in float64, and a model that
// uses it, trained on 2 ranks at global batch B, equals one process at batch B (weights, moving
// statistics, losses); without synchronized it does not (each rank normalizes its own shard).
// A last batch that would leave a replica without rows is refused by fit before any step.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "distribute/replica_context.h"
#include "kiln/kiln.h"
#include "mpi_test_util.h"

using namespace kiln;
using namespace kiln::mpi_test;

namespace {

constexpr double kTolerance = 1e-6;  // float32, as test_mpi_fit.cpp's

Sequential bn_model(bool synchronized) {
  utils::set_random_seed(17);
  Sequential model({layers::Dense(8, {.activation = "relu", .input_shape = {4}}),
                    layers::BatchNormalization({.momentum = 0.8, .synchronized = synchronized}), layers::Dense(3)});
  model.compile(optimizers::SGD({.learning_rate = 0.1, .momentum = 0.9}),
                losses::SparseCategoricalCrossentropy({.from_logits = true}));
  return model;
}

struct Trained {
  std::vector<float> weights;  // every weight, the moving statistics too
  std::vector<double> losses;
};

// `bucket_bytes` 1: one gradient per bucket, so buckets' all-reduces start during backward, between
// the layer's sums.
Trained train(bool synchronized, int64_t samples, int64_t batch_size, bool spread, int64_t bucket_bytes = 4 << 20) {
  const auto [x, y] = data(samples);
  Sequential model = bn_model(synchronized);
  FitOptions options{.batch_size = batch_size, .epochs = 3, .verbose = 0};
  if (spread)
    options.strategy = std::make_shared<distribute::MultiWorkerMirroredStrategy>(
        distribute::MultiWorkerMirroredStrategyOptions{.bucket_bytes = bucket_bytes, .check_replicas = true});
  const History h = model.fit(x, y, options);
  return {flat_weights(model), h.history.at("loss")};
}

std::vector<double> doubles(const Tensor& t) { return t.to_vector<double>(); }

void expect_near(const std::vector<double>& got, const std::vector<double>& want, double tol, const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (std::size_t i = 0; i < want.size(); ++i)
    EXPECT_NEAR(got[i], want[i], tol * std::max(1.0, std::fabs(want[i]))) << what << " at " << i;
}

}  // namespace

// The op itself in float64, as fit uses it: each rank normalizes its part of a batch of 13 rows (6
// and 7) with sums over the ranks and differentiates its own mean loss, whose share of the global
// mean loss is its rows over 13; y, the statistics, and the gradients weighted by the share (dgamma
// and dbeta summed over the ranks) equal one process's fused_batch_norm over the whole batch.
TEST(SynchronizedBatchNorm, HalvesOverTwoRanksEqualTheWholeBatchInFloat64) {
  ASSERT_EQ(ranks(), 2) << "run under mpirun -np 2";
  Generator gen(31);
  const Tensor x0 = Tensor::uniform({13, 2, 3}, -2, 3, gen, DType::Float64);
  const Tensor r = Tensor::uniform(x0.shape(), 0.5, 1.5, gen, DType::Float64);
  const Tensor gamma0 = Tensor::uniform({3}, 0.5, 2, gen, DType::Float64);
  const Tensor beta0 = Tensor::uniform({3}, -1, 1, gen, DType::Float64);
  const int64_t first = rank() == 0 ? 0 : 6, rows = rank() == 0 ? 6 : 7;

  Tensor x = x0.detach(), gamma = gamma0.detach(), beta = beta0.detach();
  for (Tensor* t : {&x, &gamma, &beta}) t->set_requires_grad(true);
  const FusedBatchNorm whole = fused_batch_norm(x, gamma, beta, 1e-3);
  mul(sum(mul(whole.y, r)), 1.0 / 13.0).backward();

  distribute::ReplicaContext context(strategy()->communicator());
  Tensor xs = slice(x0, {first, 0, 0}, {rows, 2, 3}).detach(), gs = gamma0.detach(), bs = beta0.detach();
  for (Tensor* t : {&xs, &gs, &bs}) t->set_requires_grad(true);
  const double share = static_cast<double>(rows) / 13.0;
  const FusedBatchNorm half = synchronized_batch_norm(
      xs, gs, bs, 1e-3,
      {.count = 13 * 2, .sum = [&](Tensor& t) { context.all_reduce_sum(t, "a test's sums"); }, .share = share});
  mul(sum(mul(half.y, slice(r, {first, 0, 0}, {rows, 2, 3}))), 1.0 / static_cast<double>(rows)).backward();
  Tensor dgamma = mul(gs.grad(), share), dbeta = mul(bs.grad(), share);  // this rank's parts
  context.all_reduce_sum(dgamma, "dgamma");
  context.all_reduce_sum(dbeta, "dbeta");

  const double tol = 1e-12;
  expect_near(doubles(half.y), doubles(slice(whole.y, {first, 0, 0}, {rows, 2, 3})), tol, "y");
  expect_near(doubles(half.mean), doubles(whole.mean), tol, "mean");
  expect_near(doubles(half.variance), doubles(whole.variance), tol, "variance");
  expect_near(doubles(mul(xs.grad(), share)), doubles(slice(x.grad(), {first, 0, 0}, {rows, 2, 3})), tol, "dx");
  expect_near(doubles(dgamma), doubles(gamma.grad()), tol, "dgamma");
  expect_near(doubles(dbeta), doubles(beta.grad()), tol, "dbeta");
}

// Two ranks at global batch B train like one process at B: the same weights and moving statistics
// (equal on both ranks: check_replicas), the same losses.
TEST(SynchronizedBatchNorm, TwoRanksEqualOneProcess) {
  ASSERT_EQ(ranks(), 2) << "run under mpirun -np 2";
  struct Case {
    int64_t samples, batch_size, bucket_bytes;
  };
  // Full batches; shards of 7 and 8 (the last batch 2 and 3); one-gradient buckets.
  for (const Case& c : {Case{64, 16, 4 << 20}, Case{50, 15, 4 << 20}, Case{50, 15, 1}}) {
    SCOPED_TRACE("samples " + std::to_string(c.samples) + ", batch_size " + std::to_string(c.batch_size) +
                 ", bucket_bytes " + std::to_string(c.bucket_bytes));
    const Trained spread = train(true, c.samples, c.batch_size, true, c.bucket_bytes),
                  alone = train(true, c.samples, c.batch_size, false);
    const double d = max_relative_difference(spread.weights, alone.weights);
    EXPECT_LE(d, kTolerance);
    if (rank() == 0) std::cout << "  max relative difference of the weights from one process: " << d << '\n';
    expect_near(spread.losses, alone.losses, kTolerance, "loss");
    EXPECT_GT(max_relative_difference(alone.weights, flat_weights(bn_model(true))), 1e-3) << "training moved them";
  }
}

// The option does something: with each rank's own statistics (the default) the run differs.
TEST(SynchronizedBatchNorm, WithoutItTwoRanksDifferFromOneProcess) {
  ASSERT_EQ(ranks(), 2) << "run under mpirun -np 2";
  const Trained spread = train(false, 64, 16, true), alone = train(false, 64, 16, false);
  EXPECT_GT(max_relative_difference(spread.weights, alone.weights), 1e-3);
}

// 49 samples at batch 16: the last batch has one row, so rank 0's shard is empty and it runs no
// forward pass; rank 1, which has the row, refuses the step before its first sum (the layer's error)
// and rank 0 is named by the deadline of the gradient all-reduce it waits in (3 s here).
TEST(SynchronizedBatchNorm, LastBatchWithoutARowPerReplicaIsRefusedAtFitStart) {
  // Every rank refuses alike before any step (49 = 3 x 16 + 1: the last batch has 1 row for 2).
  ASSERT_EQ(ranks(), 2);
  const auto [x, y] = data(49);
  Sequential model = bn_model(true);
  const std::vector<float> before = flat_weights(model);
  std::string message;
  try {
    model.fit(x, y, {.batch_size = 16, .epochs = 1, .verbose = 0, .strategy = strategy()});
  } catch (const Error& e) {
    message = e.what();
  }
  EXPECT_EQ(message,
            "[fit] batch_normalization is synchronized, and the last batch of 1 rows leaves some of the 2 replicas "
            "without rows; expected every batch to give each replica a row (drop the last 1 samples, or choose a "
            "batch_size that divides the 49 samples or leaves at least 2)");
  EXPECT_EQ(flat_weights(model), before);
  // The ranks are still in step: a fit that gives every replica rows runs.
  const auto [x2, y2] = data(48);
  EXPECT_NO_THROW(model.fit(x2, y2, {.batch_size = 16, .epochs = 1, .verbose = 0, .strategy = strategy()}));
}
