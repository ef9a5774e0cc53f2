// End to end: the seed CIFAR-10 recipe on the CPU reaches the accuracy bar after one epoch
// (>= 0.53; PyTorch with Keras' defaults reaches 0.546 on the same files). Needs the data.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>

#include "kiln/datasets/cifar10.h"
#include "kiln/kiln.h"

using namespace kiln;

TEST(Cifar10Training, SeedRecipeReachesTheAccuracyBarAfterOneEpoch) {
  const char* dir = std::getenv("KILN_CIFAR10_DIR");
  if (!dir || !std::filesystem::exists(std::filesystem::path(dir) / "cifar-10-batches-bin" / "test_batch.bin"))
    GTEST_SKIP() << "KILN_CIFAR10_DIR does not point at a prepared CIFAR-10 folder";
  namespace cifar10 = datasets::cifar10;
  const auto data = cifar10::load_data(dir);
  utils::set_random_seed(0);
  Sequential model({layers::Conv2D(32, {3, 3}, {.activation = "relu", .input_shape = {32, 32, 3}}),
                    layers::MaxPooling2D({2, 2}), layers::Flatten(), layers::Dense(64, {.activation = "relu"}),
                    layers::Dense(10)});
  model.compile(optimizers::Adam(), losses::SparseCategoricalCrossentropy({.from_logits = true}), {"accuracy"});
  const History h = model.fit(cifar10::to_float(data.train.images), data.train.labels,
                              {.batch_size = 10,
                               .epochs = 1,
                               .verbose = 0,
                               .validation_data = {{cifar10::to_float(data.test.images), data.test.labels}}});
  const double accuracy = h.history.at("val_accuracy").at(0);
  RecordProperty("test_accuracy_epoch_1", std::to_string(accuracy));
  EXPECT_GE(accuracy, 0.53);
  EXPECT_LT(h.history.at("loss").at(0), 1.6);
}
