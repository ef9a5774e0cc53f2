// Learning-rate schedules at chosen steps, worked out by hand from Keras 3's formulas, their
// configs and their errors.
#include <gtest/gtest.h>

#include <cmath>
#include <numbers>

#include "kiln/kiln.h"
#include "kiln/schedules.h"
#include "test_support.h"

using namespace kiln;
using kiln::testing::message_of;

TEST(Schedules, ExponentialDecaySmoothAndStaircase) {
  const schedules::ExponentialDecay smooth({.initial_learning_rate = 0.1, .decay_steps = 10, .decay_rate = 0.5});
  EXPECT_DOUBLE_EQ(smooth(0), 0.1);
  EXPECT_DOUBLE_EQ(smooth(5), 0.1 * std::sqrt(0.5));  // half a period: 0.5^0.5
  EXPECT_DOUBLE_EQ(smooth(20), 0.025);
  const schedules::ExponentialDecay stairs(
      {.initial_learning_rate = 0.1, .decay_steps = 10, .decay_rate = 0.5, .staircase = true});
  EXPECT_DOUBLE_EQ(stairs(9), 0.1);
  EXPECT_DOUBLE_EQ(stairs(10), 0.05);
  EXPECT_DOUBLE_EQ(stairs(15), 0.05);
}

TEST(Schedules, PiecewiseConstantDecayIncludesEachBoundaryInTheLowerPiece) {
  const schedules::PiecewiseConstantDecay s({100, 110}, {1.0, 0.5, 0.1});
  EXPECT_EQ(s(0), 1.0);
  EXPECT_EQ(s(100), 1.0);  // Keras: step <= boundaries[0]
  EXPECT_EQ(s(101), 0.5);
  EXPECT_EQ(s(110), 0.5);
  EXPECT_EQ(s(111), 0.1);
  EXPECT_EQ(s(100000), 0.1);
}

TEST(Schedules, CosineDecayWithoutWarmup) {
  const schedules::CosineDecay s({.initial_learning_rate = 1.0, .decay_steps = 10, .alpha = 0.1});
  EXPECT_DOUBLE_EQ(s(0), 1.0);
  EXPECT_DOUBLE_EQ(s(5), 0.9 * 0.5 + 0.1);  // cos(pi / 2) = 0
  EXPECT_DOUBLE_EQ(s(10), 0.1);
  EXPECT_DOUBLE_EQ(s(50), 0.1);  // held at alpha * initial after decay_steps
  EXPECT_DOUBLE_EQ(s(2), 0.9 * 0.5 * (1 + std::cos(std::numbers::pi * 0.2)) + 0.1);
}

TEST(Schedules, CosineDecayWarmsUpLinearlyThenDecaysFromTheTarget) {
  // Keras 3: from initial_learning_rate to warmup_target over warmup_steps, then the cosine from
  // warmup_target over decay_steps; the step is capped at warmup_steps + decay_steps.
  const schedules::CosineDecay s(
      {.initial_learning_rate = 0.0, .decay_steps = 10, .warmup_target = 1.0, .warmup_steps = 4});
  EXPECT_DOUBLE_EQ(s(0), 0.0);
  EXPECT_DOUBLE_EQ(s(1), 0.25);
  EXPECT_DOUBLE_EQ(s(2), 0.5);
  EXPECT_DOUBLE_EQ(s(4), 1.0);
  EXPECT_NEAR(s(9), 0.5, 1e-15);  // five of ten decay steps
  EXPECT_NEAR(s(14), 0.0, 1e-15);
  EXPECT_NEAR(s(1000), 0.0, 1e-15);
  const schedules::CosineDecay from(
      {.initial_learning_rate = 0.1, .decay_steps = 4, .alpha = 0.5, .warmup_target = 0.5, .warmup_steps = 2});
  EXPECT_DOUBLE_EQ(from(1), (0.5 - 0.1) * 0.5 + 0.1);
  EXPECT_DOUBLE_EQ(from(4), 0.5 * (0.5 * 0.5 + 0.5));  // halfway through the decay
}

TEST(Schedules, PolynomialDecayClampedAndCycling) {
  const schedules::PolynomialDecay s(
      {.initial_learning_rate = 1.0, .decay_steps = 10, .end_learning_rate = 0.0, .power = 2.0});
  EXPECT_DOUBLE_EQ(s(0), 1.0);
  EXPECT_DOUBLE_EQ(s(5), 0.25);
  EXPECT_DOUBLE_EQ(s(20), 0.0);
  const schedules::PolynomialDecay linear({.initial_learning_rate = 0.1, .decay_steps = 10});  // end 0.0001, power 1
  EXPECT_DOUBLE_EQ(linear(5), (0.1 - 0.0001) * 0.5 + 0.0001);
  const schedules::PolynomialDecay cycle(
      {.initial_learning_rate = 1.0, .decay_steps = 10, .end_learning_rate = 0.0, .power = 2.0, .cycle = true});
  EXPECT_DOUBLE_EQ(cycle(0), 1.0);
  EXPECT_DOUBLE_EQ(cycle(10), 0.0);
  EXPECT_DOUBLE_EQ(cycle(15), 0.0625);  // decay_steps 20: (1 - 15/20)^2
}

TEST(Schedules, FunctionOfTheStep) {
  const LearningRate rate(std::function<double(int64_t)>([](int64_t s) { return 1.0 / double(s + 1); }));
  EXPECT_TRUE(rate.is_schedule());
  EXPECT_EQ(rate.at(3), 0.25);
  EXPECT_EQ(message_of([] { schedules::FunctionSchedule(nullptr); }),
            "[FunctionSchedule] the function is empty; expected a function of the step");
}

TEST(Schedules, ConfigsRoundTripThroughTheRegistry) {
  std::vector<std::shared_ptr<const LearningRateSchedule>> all{
      std::make_shared<schedules::ExponentialDecay>(schedules::ExponentialDecayOptions{0.1, 7, 0.9, true}),
      std::make_shared<schedules::PiecewiseConstantDecay>(std::vector<int64_t>{3, 9}, std::vector<double>{1, 0.5, 0.2}),
      std::make_shared<schedules::CosineDecay>(schedules::CosineDecayOptions{0.0, 40, 0.05, 0.01, 5}),
      std::make_shared<schedules::CosineDecay>(schedules::CosineDecayOptions{0.1, 40}),
      std::make_shared<schedules::PolynomialDecay>(schedules::PolynomialDecayOptions{0.1, 30, 0.001, 0.5, true})};
  for (const auto& s : all) {
    SCOPED_TRACE(s->class_name());
    const auto back = schedule_registry().make(s->class_name(), s->get_config());
    EXPECT_EQ(back->get_config(), s->get_config());
    for (int64_t step : {0, 3, 4, 9, 10, 44, 100}) EXPECT_EQ((*back)(step), (*s)(step)) << step;
  }
  // Keras' own fields, a name included, read as well.
  const auto keras = schedule_registry().make(
      "CosineDecay", Config::parse(R"({"initial_learning_rate": 0.0, "decay_steps": 100, "alpha": 0.0,
          "name": "CosineDecay", "warmup_target": 0.001, "warmup_steps": 10})"));
  EXPECT_DOUBLE_EQ((*keras)(5), 0.0005);
}

TEST(Schedules, BadArgumentsSayWhatWasExpected) {
  EXPECT_EQ(message_of([] {
              schedules::ExponentialDecay({0.1, 0, 0.5});
            }),
            "[ExponentialDecay] decay_steps is 0; expected a positive number of steps");
  EXPECT_EQ(message_of([] { schedules::CosineDecay({.initial_learning_rate = 0.1, .decay_steps = -3}); }),
            "[CosineDecay] decay_steps is -3; expected a positive number of steps");
  EXPECT_EQ(message_of([] {
              schedules::PiecewiseConstantDecay({1, 2}, {0.1, 0.2});
            }),
            "[PiecewiseConstantDecay] got 2 boundaries and 2 values; expected one more value than boundaries");
  EXPECT_EQ(message_of([] {
              schedules::PiecewiseConstantDecay({5, 2}, {0.1, 0.2, 0.3});
            }),
            "[PiecewiseConstantDecay] boundaries must increase; boundary 1 is 2 after 5");
  EXPECT_EQ(message_of([] { schedules::PolynomialDecay({.initial_learning_rate = 0.1, .decay_steps = 0}); }),
            "[PolynomialDecay] decay_steps is 0; expected a positive number of steps");
  EXPECT_EQ(message_of([] {
              schedule_registry().make("ExponentialDecay", Config::parse(R"({"initial_learning_rate": 0.1})"));
            }),
            "[from_config] the ExponentialDecay config: \"decay_steps\" is missing; expected it to be present");
}
