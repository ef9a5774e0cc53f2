// Random layers in a data-parallel fit: each rank's shard draws what one process draws for those
// rows of the global batch (Dropout's masks, the random image layers' transforms), so 2 ranks at a
// global batch train as one process at that batch, last partial batches and empty shards included.
//
// Equality is within 1e-6 relative, not exact, for test_mpi_fit.cpp's reason (the gradient's sums
// are split differently); a shard drawing the masks of its row positions instead misses by far more.
#include <gtest/gtest.h>

#include <functional>
#include <iostream>
#include <string>

#include "kiln/kiln.h"
#include "mpi_test_util.h"

using namespace kiln;
using namespace kiln::mpi_test;

namespace {

constexpr double kTolerance = 1e-6;

// Dense(16, relu) -> Dropout -> Dense(3) on 4 features, built from `seed` (the unseeded Dropout's
// counter starts where the model's generator says, the same on every rank).
Sequential dropout_classifier(uint64_t seed, std::optional<int64_t> dropout_seed) {
  utils::set_random_seed(seed);
  Sequential model({layers::Dense(16, {.activation = "relu", .input_shape = {4}}),
                    layers::Dropout(0.4, {.seed = dropout_seed}), layers::Dense(3)});
  model.compile(optimizers::SGD({.learning_rate = 0.1, .momentum = 0.9}),
                losses::SparseCategoricalCrossentropy({.from_logits = true}), {"accuracy"});
  return model;
}

// RandomFlip -> RandomTranslation -> Flatten -> Dense(3) on 6x5x2 images, built from `seed`.
Sequential augmenting_classifier(uint64_t seed) {
  utils::set_random_seed(seed);
  Sequential model({layers::RandomFlip("horizontal_and_vertical", {.input_shape = {6, 5, 2}}),
                    layers::RandomTranslation(0.3, 0.4, {.seed = 8}), layers::Flatten(), layers::Dense(3)});
  model.compile(optimizers::Adam({.learning_rate = 0.01}), losses::SparseCategoricalCrossentropy({.from_logits = true}),
                {"accuracy"});
  return model;
}

// n random images of 6x5x2 and labels in 0..2 (deterministic).
std::pair<Tensor, Tensor> images(int64_t n) {
  Generator gen(13);
  return {Tensor::uniform({n, 6, 5, 2}, 0, 1, gen), data(n, 5).second};
}

struct Case {
  int64_t samples, batch_size;
};

// 2 ranks at global batch B against this process alone at B, both models made by `make`.
void expect_equal_to_one_process(const std::function<Sequential()>& make, const Tensor& x, const Tensor& y,
                                 const Case& c) {
  SCOPED_TRACE("samples " + std::to_string(c.samples) + ", batch_size " + std::to_string(c.batch_size));
  const Tensor xs = x.slice_rows(0, c.samples), ys = y.slice_rows(0, c.samples);
  Sequential spread = make();
  const History h = spread.fit(xs, ys, {.batch_size = c.batch_size, .epochs = 3, .verbose = 0, .strategy = strategy()});
  Sequential alone = make();
  const History h1 = alone.fit(xs, ys, {.batch_size = c.batch_size, .epochs = 3, .verbose = 0});
  const double d = max_relative_difference(flat_weights(spread), flat_weights(alone));
  EXPECT_LE(d, kTolerance);
  if (rank() == 0) std::cout << "  max relative difference of the weights from one process: " << d << '\n';
  EXPECT_GT(max_relative_difference(flat_weights(alone), flat_weights(make())), 1e-3) << "training moved the weights";
  ASSERT_TRUE(h.history.contains("loss"));
  for (std::size_t e = 0; e < h1.history.at("loss").size(); ++e)
    EXPECT_NEAR(h.history.at("loss")[e], h1.history.at("loss")[e], kTolerance * std::max(1.0, h1.history.at("loss")[e]))
        << "epoch " << e;
}

const Case kCases[] = {
    {.samples = 64, .batch_size = 16},  // full batches
    {.samples = 50, .batch_size = 16},  // last batch of 2
    {.samples = 50, .batch_size = 15},  // shards of 7 and 8 (odd rows: offsets inside Philox blocks)
    {.samples = 49, .batch_size = 16},  // last batch of 1: one empty shard
};

}  // namespace

TEST(RandomLayers, DropoutOnTwoRanksEqualsOneProcess) {
  ASSERT_EQ(ranks(), 2) << "run under mpirun -np 2";
  const auto [x, y] = data(64);
  for (const Case& c : kCases) {
    expect_equal_to_one_process([] { return dropout_classifier(21, std::nullopt); }, x, y, c);
    expect_equal_to_one_process([] { return dropout_classifier(22, 5); }, x, y, c);
  }
}

TEST(RandomLayers, ImageAugmentationOnTwoRanksEqualsOneProcess) {
  ASSERT_EQ(ranks(), 2) << "run under mpirun -np 2";
  const auto [x, y] = images(64);
  for (const Case& c : kCases) expect_equal_to_one_process([] { return augmenting_classifier(31); }, x, y, c);
}
