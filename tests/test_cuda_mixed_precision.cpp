// Mixed precision on the GPU: a CNN with BatchNormalization and Dropout under mixed_bfloat16 and
// mixed_float16 trains with float32 weights, the recorded step equals the eager one bit for bit,
// and the GPU's 16-bit forward pass agrees with the CPU's.
#include <gtest/gtest.h>

#include <cmath>

#include "kiln/kiln.h"
#include "model_weights.h"
#include "test_support.h"

namespace kiln {
namespace {

using testing::all_weights;

using testing::ModeSetting;

// Puts the global policy back after each test.
class CudaMixedPrecision : public ::testing::Test {
 protected:
  void TearDown() override { mixed_precision::set_global_policy(previous_); }
  mixed_precision::DTypePolicy previous_ = mixed_precision::global_policy();
};

// Conv-BN-ReLU, pooling, Dropout and a float32 softmax head (Keras' advice under mixed policies).
Sequential mixed_cnn(const std::string& policy, uint64_t seed, Device device) {
  mixed_precision::set_global_policy(policy);
  utils::set_random_seed(seed);
  layers::Dense head(10, {.activation = "softmax"});
  head.set_dtype_policy("float32");
  Sequential model({layers::Conv2D(16, {3, 3}, {.padding = "same", .input_shape = {8, 8, 3}}),
                    layers::BatchNormalization(), layers::Activation("relu"), layers::MaxPooling2D({2, 2}),
                    layers::Conv2D(32, {3, 3}, {.padding = "same", .activation = "relu"}),
                    layers::GlobalAveragePooling2D(), layers::Dropout(0.2), head});
  model.to(device);
  model.compile(optimizers::Adam({.learning_rate = 0.01}), losses::SparseCategoricalCrossentropy(), {"accuracy"});
  return model;
}

std::pair<Tensor, Tensor> data(int64_t n) {
  Generator gen(21);
  const Tensor x = Tensor::uniform({n, 8, 8, 3}, 0, 1, gen);
  std::vector<int32_t> labels(static_cast<std::size_t>(n));
  const std::vector<float> xs = x.to_vector<float>();
  for (std::size_t i = 0; i < labels.size(); ++i) labels[i] = static_cast<int32_t>(xs[i * 192] * 9.99f);
  return {x, Tensor::from_vector(labels, Shape{n})};
}

struct Run {
  std::vector<double> loss;
  std::vector<std::vector<float>> weights;
};

Run train(const std::string& policy, bool graphs) {
  const auto [x, y] = data(96);
  Sequential model = mixed_cnn(policy, 5, Device::gpu(0));
  Run run;
  run.loss = model.fit(x, y, {.batch_size = 16, .epochs = 3, .verbose = 0, .cuda_graphs = graphs}).history.at("loss");
  for (const Tensor& w : all_weights(model)) {
    EXPECT_EQ(w.dtype(), DType::Float32);
    run.weights.push_back(w.cpu().to_vector<float>());
  }
  return run;
}

void expect_recorded_equals_eager(const std::string& policy) {
  const ModeSetting determinism(config::enable_op_determinism, config::op_determinism_enabled, true);
  const Run eager = train(policy, false);
  const Run recorded = train(policy, true);
  EXPECT_EQ(eager.loss, recorded.loss) << policy;
  ASSERT_EQ(eager.weights.size(), recorded.weights.size());
  for (std::size_t i = 0; i < eager.weights.size(); ++i)
    EXPECT_TRUE(testing::bitwise_equal(eager.weights[i], recorded.weights[i])) << policy << ", weight " << i;
  for (double l : eager.loss) EXPECT_TRUE(std::isfinite(l)) << policy;
  EXPECT_LT(eager.loss.back(), eager.loss.front()) << policy;  // it learns
}

TEST_F(CudaMixedPrecision, RecordedStepEqualsEagerUnderMixedBFloat16) {
  REQUIRE_GPU();
  expect_recorded_equals_eager("mixed_bfloat16");
}

TEST_F(CudaMixedPrecision, RecordedStepEqualsEagerUnderMixedFloat16) {
  REQUIRE_GPU();
  expect_recorded_equals_eager("mixed_float16");
}

TEST_F(CudaMixedPrecision, GpuForwardAgreesWithTheCpu) {
  REQUIRE_GPU();
  const auto [x, y] = data(32);
  for (const char* policy : {"mixed_bfloat16", "mixed_float16"}) {
    Sequential cpu = mixed_cnn(policy, 6, Device::cpu());
    Sequential gpu = mixed_cnn(policy, 6, Device::gpu(0));
    const std::vector<float> p_cpu = cpu.predict(x).to_vector<float>();
    const std::vector<float> p_gpu = gpu.predict(x).cpu().to_vector<float>();
    // Both devices round the same operands once per layer; the convolutions sum in different
    // orders, which can move a 16-bit intermediate by one ulp (2^-8 relative for bfloat16) and the
    // float32 softmax output by about that much.
    EXPECT_LT(testing::relative_error(p_gpu, p_cpu), std::string(policy) == "mixed_bfloat16" ? 2e-2 : 4e-3) << policy;
  }
}

}  // namespace
}  // namespace kiln
