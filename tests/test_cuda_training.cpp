// Models on the GPU: the same seed gives the same initial weights and nearly the same training as
// on the CPU; a batch too large for the GPU raises OutOfMemoryError and training goes on after it;
// tensors of different devices never mix silently.
#include <gtest/gtest.h>

#include <cmath>

#include "kiln/kiln.h"
#include "test_support.h"

using namespace kiln;

namespace {

Sequential seed_cnn(Device device, uint64_t seed) {
  set_default_device(device);
  utils::set_random_seed(seed);
  Sequential model({layers::Conv2D(8, {3, 3}, {.activation = "relu", .input_shape = {12, 12, 3}}),
                    layers::MaxPooling2D({2, 2}), layers::Flatten(), layers::Dense(16, {.activation = "relu"}),
                    layers::Dense(10)});
  set_default_device(Device::cpu());
  model.compile(optimizers::Adam(), losses::SparseCategoricalCrossentropy({.from_logits = true}), {"accuracy"});
  return model;
}

}  // namespace

TEST(CudaTraining, SameSeedSameInitialWeightsOnBothDevices) {
  REQUIRE_GPU();
  Sequential cpu_model = seed_cnn(Device::cpu(), 7), gpu_model = seed_cnn(Device::gpu(), 7);
  EXPECT_TRUE(gpu_model.device().is_cuda());
  const auto cw = cpu_model.trainable_weights(), gw = gpu_model.trainable_weights();
  ASSERT_EQ(cw.size(), gw.size());
  for (std::size_t i = 0; i < cw.size(); ++i) {
    EXPECT_TRUE(gw[i].device().is_cuda());
    EXPECT_EQ(cw[i].to_vector<float>(), gw[i].to_vector<float>()) << "weight " << i;
  }
}

TEST(CudaTraining, FitOnGpuTracksFitOnCpu) {
  REQUIRE_GPU();
  Generator gen(3);
  const Tensor x = Tensor::uniform({64, 12, 12, 3}, 0, 1, gen);
  std::vector<int32_t> labels(64);
  for (int i = 0; i < 64; ++i) labels[i] = i % 10;
  const Tensor y = Tensor::from_vector(labels);
  Sequential cpu_model = seed_cnn(Device::cpu(), 11), gpu_model = seed_cnn(Device::gpu(), 11);
  utils::set_random_seed(5);
  const History hc = cpu_model.fit(x, y, {.batch_size = 10, .epochs = 3, .verbose = 0});
  utils::set_random_seed(5);
  const History hg = gpu_model.fit(x, y, {.batch_size = 10, .epochs = 3, .verbose = 0});
  // Float32 on both; sums run in another order on the GPU, so the losses agree to rounding, not bits.
  for (int e = 0; e < 3; ++e) EXPECT_NEAR(hg.history.at("loss")[e], hc.history.at("loss")[e], 1e-4) << "epoch " << e;
  const auto pc = cpu_model.predict(x).to_vector<float>(), pg = gpu_model.predict(x).to_vector<float>();
  double worst = 0;
  for (std::size_t i = 0; i < pc.size(); ++i) worst = std::max(worst, double(std::fabs(pc[i] - pg[i])));
  EXPECT_LT(worst, 1e-3);
  RecordProperty("worst_prediction_difference", std::to_string(worst));
}

TEST(CudaTraining, HugeBatchRaisesOutOfMemoryThenNormalTrainingWorks) {
  REQUIRE_GPU();
  set_default_device(Device::gpu());
  utils::set_random_seed(0);
  // Each sample's first activation is 64*64*512 floats = 8 MiB, so a batch of 20,000 needs about
  // 160 GiB: more than any single GPU holds.
  Sequential model({layers::Conv2D(512, {3, 3}, {.padding = "same", .activation = "relu", .input_shape = {64, 64, 3}}),
                    layers::MaxPooling2D({8, 8}), layers::Flatten(), layers::Dense(10)});
  set_default_device(Device::cpu());
  model.compile(optimizers::Adam(), losses::SparseCategoricalCrossentropy({.from_logits = true}));
  const int64_t n = 20000;
  const Tensor x = Tensor::zeros({n, 64, 64, 3});
  const Tensor y = Tensor::zeros({n}, DType::Int32);
  try {
    model.fit(x, y, {.batch_size = n, .epochs = 1, .verbose = 0});
    FAIL() << "expected OutOfMemoryError";
  } catch (const OutOfMemoryError& e) {
    const std::string what = e.what();
    EXPECT_GT(e.requested_bytes(), std::size_t(1) << 30) << what;
    EXPECT_NE(what.find("batch_size"), std::string::npos) << what;
  }
  // The model, the process and the allocator are still usable.
  const History h = model.fit(x.slice_rows(0, 64), y.slice_rows(0, 64), {.batch_size = 16, .epochs = 2, .verbose = 0});
  EXPECT_TRUE(std::isfinite(h.history.at("loss").back()));
}

TEST(CudaTraining, MixingDevicesIsAnErrorNamingBoth) {
  REQUIRE_GPU();
  const Tensor a = Tensor::ones({2, 2}), b = Tensor::ones({2, 2}).to(Device::gpu());
  try {
    add(a, b);
    FAIL();
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(),
                 "[add] inputs are on different devices (cpu and cuda:0); expected both on one device "
                 "(move one with .to())");
  }
}
