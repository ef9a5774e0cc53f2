// The built-in optimizers on a GPU: every rule with weight decay, each clip and the moving average
// against the CPU over three steps (many parameters, so the fused update spans several launches),
// and fit recorded (CUDA graphs) bit for bit equal to fit run eagerly, schedules and clipping
// included. Skipped without a GPU.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "kiln/kiln.h"
#include "step_equivalence.h"
#include "tensor/tensor_impl.h"
#include "test_support.h"

using namespace kiln;

namespace {

using OptimizerFactory = std::function<std::unique_ptr<Optimizer>()>;

// Parameters of assorted sizes (one large enough for many blocks), more of them than
// one launch of the fused update takes.
const std::vector<int64_t> kSizes = {1, 7, 300, 5000, 33, 2, 129, 64, 1, 17, 900, 3, 70000, 12, 5};

// Trains the same parameters with `make()` on the CPU and on GPU 0 for three steps of the same
// random gradients, and expects the weights and every slot to agree to float32 rounding.
void expect_gpu_matches_cpu(const OptimizerFactory& make) {
  Generator gen(11);
  std::vector<Tensor> cpu_params, gpu_params;
  for (int64_t n : kSizes) {
    Tensor p = Tensor::uniform({n}, -1, 1, gen);
    Tensor q = p.to(Device::gpu(0));
    p.set_requires_grad();
    q.set_requires_grad();
    cpu_params.push_back(p);
    gpu_params.push_back(q);
  }
  auto on_cpu = make(), on_gpu = make();
  for (int step = 0; step < 3; ++step) {
    for (std::size_t i = 0; i < kSizes.size(); ++i) {
      const Tensor g = Tensor::uniform({kSizes[i]}, -3, 3, gen);
      cpu_params[i].impl()->grad = g;
      gpu_params[i].impl()->grad = g.to(Device::gpu(0));
    }
    on_cpu->step(cpu_params);
    on_gpu->step(gpu_params);
  }
  auto expect_near = [](const Tensor& a, const Tensor& b, const std::string& what) {
    const auto x = a.to_vector<float>(), y = b.to(Device::cpu()).to_vector<float>();
    ASSERT_EQ(x.size(), y.size()) << what;
    for (std::size_t j = 0; j < x.size(); ++j)
      ASSERT_NEAR(x[j], y[j], 2e-6 + 2e-5 * std::fabs(x[j])) << what << "[" << j << "]";
  };
  for (std::size_t i = 0; i < kSizes.size(); ++i) {
    expect_near(cpu_params[i], gpu_params[i], "param " + std::to_string(i));
    for (std::size_t s = 0; s < on_cpu->slot_names().size(); ++s)
      expect_near(on_cpu->slots()[i][s], on_gpu->slots()[i][s],
                  "param " + std::to_string(i) + " slot " + on_cpu->slot_names()[s]);
  }
}

template <typename O, typename Options>
OptimizerFactory factory(Options options) {
  return [options] { return std::make_unique<O>(options); };
}

}  // namespace

TEST(CudaOptimizers, SgdMatchesCpu) {
  REQUIRE_GPU();
  expect_gpu_matches_cpu(factory<optimizers::SGD>(optimizers::SGDOptions{
      .learning_rate = 0.05, .momentum = 0.9, .nesterov = true, .weight_decay = 0.01, .clipnorm = 2.0}));
}

TEST(CudaOptimizers, AdamWMatchesCpu) {
  REQUIRE_GPU();
  expect_gpu_matches_cpu(factory<optimizers::AdamW>(optimizers::AdamWOptions{
      .learning_rate = schedules::CosineDecay(
          {.initial_learning_rate = 0.0, .decay_steps = 10, .warmup_target = 0.01, .warmup_steps = 2}),
      .global_clipnorm = 5.0,
      .use_ema = true}));
}

TEST(CudaOptimizers, RmspropMatchesCpu) {
  REQUIRE_GPU();
  for (const bool centered : {false, true})
    expect_gpu_matches_cpu(factory<optimizers::RMSprop>(optimizers::RMSpropOptions{
        .learning_rate = 0.01, .momentum = centered ? 0.5 : 0.0, .centered = centered, .clipvalue = 1.0}));
}

TEST(CudaOptimizers, AdagradMatchesCpu) {
  REQUIRE_GPU();
  expect_gpu_matches_cpu(factory<optimizers::Adagrad>(optimizers::AdagradOptions{
      .learning_rate = 0.1, .weight_decay = 0.004, .use_ema = true, .ema_overwrite_frequency = 2}));
}

namespace {
// A small model for the recorded-vs-eager check, with `opt`.
kiln::testing::ModelFactory small_model(const OptimizerFactory& opt) {
  return [opt] {
    Sequential model({layers::Dense(16, {.activation = "relu", .input_shape = {6}}), layers::Dense(4)});
    model.compile(*opt(), losses::SparseCategoricalCrossentropy({.from_logits = true}));
    return model;
  };
}
}  // namespace

TEST(CudaOptimizers, RecordedAdamWWithCosineWarmupAndGlobalClipnormEqualsEager) {
  EXPECT_RECORDED_STEP_EQUALS_EAGER(small_model(factory<optimizers::AdamW>(optimizers::AdamWOptions{
      .learning_rate = schedules::CosineDecay(
          {.initial_learning_rate = 0.0, .decay_steps = 12, .alpha = 0.1, .warmup_target = 0.01, .warmup_steps = 5}),
      .global_clipnorm = 0.5})));
}

TEST(CudaOptimizers, RecordedRmspropEqualsEager) {
  EXPECT_RECORDED_STEP_EQUALS_EAGER(small_model(factory<optimizers::RMSprop>(
      optimizers::RMSpropOptions{.learning_rate = 0.01, .momentum = 0.5, .centered = true})));
}

TEST(CudaOptimizers, RecordedAdagradWithClipnormAndEmaEqualsEager) {
  EXPECT_RECORDED_STEP_EQUALS_EAGER(small_model(factory<optimizers::Adagrad>(optimizers::AdagradOptions{
      .learning_rate = 0.05, .clipnorm = 0.3, .use_ema = true, .ema_overwrite_frequency = 4})));
}

TEST(CudaOptimizers, RecordedSgdWithScheduledEmaMomentumEqualsEager) {
  // Lookahead through the moving average: momentum 1 between overwrites, a rising m_t every 3rd step.
  EXPECT_RECORDED_STEP_EQUALS_EAGER(small_model(factory<optimizers::SGD>(
      optimizers::SGDOptions{.learning_rate = 0.05,
                             .momentum = 0.9,
                             .nesterov = true,
                             .use_ema = true,
                             .ema_momentum = std::function<double(int64_t)>([](int64_t t) {
                               return (t + 1) % 3 == 0 ? 0.5 + 0.01 * static_cast<double>(t % 40) : 1.0;
                             }),
                             .ema_overwrite_frequency = 3})));
}

TEST(CudaOptimizers, RecordedLearningRateMultipliersEqualEager) {
  // Per-weight multiples of the rate (a BatchNormalization beta at 64x, a kernel at 0.5x).
  EXPECT_RECORDED_STEP_EQUALS_EAGER([] {
    Sequential model({layers::Dense(16, {.input_shape = {6}}), layers::BatchNormalization({.scale = false}),
                      layers::Activation("gelu"), layers::Dense(4)});
    model.layers()[0]->set_learning_rate_multiplier("kernel", 0.5);
    model.layers()[1]->set_learning_rate_multiplier("beta", 64.0);
    model.compile(optimizers::SGD({.learning_rate = 0.01, .momentum = 0.85, .nesterov = true, .weight_decay = 0.01}),
                  losses::SparseCategoricalCrossentropy({.from_logits = true}));
    return model;
  });
}

TEST(CudaOptimizers, RecordedSgdWithWeightDecayAndStaircaseEqualsEager) {
  EXPECT_RECORDED_STEP_EQUALS_EAGER(small_model(
      factory<optimizers::SGD>(optimizers::SGDOptions{.learning_rate = schedules::ExponentialDecay({0.1, 4, 0.5, true}),
                                                      .momentum = 0.9,
                                                      .weight_decay = 0.01,
                                                      .clipvalue = 0.2})));
}

TEST(CudaOptimizers, LearningRateSetBetweenEpochsReachesTheRecordedStep) {
  REQUIRE_GPU();
  // Two one-epoch fits with a rate set between them, recorded and eager: the same weights.
  auto run = [](bool graphs) {
    utils::set_random_seed(4);
    Sequential model = small_model(factory<optimizers::SGD>(optimizers::SGDOptions{.learning_rate = 0.1}))();
    model.to(Device::gpu(0));
    const auto [x, y] = kiln::testing::random_data_for(model, 51, 9);
    model.fit(x, y, {.batch_size = 8, .epochs = 1, .verbose = 0, .cuda_graphs = graphs});
    model.optimizer()->set_learning_rate(0.01);
    model.fit(x, y, {.batch_size = 8, .epochs = 1, .verbose = 0, .cuda_graphs = graphs});
    EXPECT_EQ(model.last_fit_execution().recorded, graphs) << model.last_fit_execution().reason;
    return kiln::testing::weight_bits(model).first;
  };
  kiln::testing::expect_same_bits(run(false), run(true));
}
