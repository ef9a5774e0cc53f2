// LossScaleOptimizer on a GPU: fit recorded (CUDA graphs) equals fit run eagerly bit for bit while
// steps overflow and are skipped and the scale halves and grows, the check and the skip running on
// the device inside the recorded step; and a mixed_float16 model (wrapped by compile) the same.
// Skipped without a GPU.
#include <gtest/gtest.h>

#include <cmath>
#include <string>

#include "kiln/kiln.h"
#include "kiln/mixed_precision.h"
#include "step_equivalence.h"
#include "test_support.h"

using namespace kiln;
using optimizers::LossScaleOptimizer;

namespace {

struct ScaledRun {
  kiln::testing::TrainedRun run;
  double scale = 0;
  int64_t counter = 0;
};

// Trains a small regression model on GPU 0 whose first steps overflow at 2^127 (large targets).
ScaledRun train(bool graphs) {
  utils::set_random_seed(21);
  Sequential model({layers::Dense(16, {.activation = "relu", .input_shape = {6}}), layers::Dense(3)});
  model.compile(LossScaleOptimizer(optimizers::Adam({.learning_rate = 0.01}),
                                   {.initial_scale = std::ldexp(1.0, 127), .dynamic_growth_steps = 3}),
                losses::MeanSquaredError());
  model.to(Device::gpu(0));
  Generator gen(22);
  const Tensor x = Tensor::uniform({51, 6}, -1, 1, gen);
  const Tensor y = mul(Tensor::uniform({51, 3}, -1, 1, gen), 30.0);
  ScaledRun out;
  out.run.history = model.fit(x, y, {.batch_size = 8, .epochs = 3, .verbose = 0, .cuda_graphs = graphs});
  std::tie(out.run.trainable, out.run.non_trainable) = kiln::testing::weight_bits(model);
  out.run.report = model.last_fit_execution();
  auto& opt = dynamic_cast<LossScaleOptimizer&>(*model.optimizer());
  out.run.iterations = opt.iterations();
  out.scale = opt.dynamic_scale();
  out.counter = opt.step_counter();
  return out;
}

}  // namespace

TEST(CudaLossScale, RecordedStepSkipsOnTheDeviceAndEqualsEager) {
  REQUIRE_GPU();
  const ScaledRun eager = train(false), recorded = train(true);
  EXPECT_TRUE(recorded.run.report.recorded) << recorded.run.report.reason;
  EXPECT_EQ(recorded.run.report.reason, "");  // the update is recorded too: nothing ran eagerly beside it
  EXPECT_FALSE(eager.run.report.recorded);
  // Some of the 21 steps were skipped, and the scale moved.
  EXPECT_LT(eager.run.iterations, 21);
  EXPECT_GT(eager.run.iterations, 0);
  EXPECT_LT(eager.scale, std::ldexp(1.0, 127));
  EXPECT_EQ(recorded.run.iterations, eager.run.iterations);
  EXPECT_EQ(recorded.scale, eager.scale);
  EXPECT_EQ(recorded.counter, eager.counter);
  kiln::testing::expect_same_bits(eager.run.trainable, recorded.run.trainable);
  EXPECT_EQ(eager.run.history.history.at("loss"), recorded.run.history.history.at("loss"));
}

TEST(CudaLossScale, MixedFloat16ModelRecordedEqualsEager) {
  kiln::testing::RestoreGlobalPolicy guard;
  EXPECT_RECORDED_STEP_EQUALS_EAGER([] {
    mixed_precision::set_global_policy("mixed_float16");
    Sequential model({layers::Dense(16, {.activation = "relu", .input_shape = {6}}), layers::Dense(4)});
    model.compile("adam", "sparse_categorical_crossentropy");
    EXPECT_NE(dynamic_cast<const LossScaleOptimizer*>(model.optimizer()), nullptr);
    return model;
  });
}
