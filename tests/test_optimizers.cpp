// The built-in optimizers against Keras 3's formulas worked out step by step in double (float64
// parameters, so the comparison is tight): each rule for three steps, decoupled weight decay, each
// clip, the moving average (EMA), learning-rate schedules inside the update, configs and errors.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>

#include "kiln/kiln.h"
#include "tensor/tensor_impl.h"
#include "test_support.h"

using namespace kiln;
using kiln::testing::message_of;

namespace {

// Three steps' gradients of a two-element parameter starting at kStart.
constexpr double kStart[2] = {0.5, -0.25};
constexpr double kGrads[3][2] = {{0.1, -0.2}, {0.3, 0.05}, {-0.4, 0.2}};

Tensor param64(const double (&v)[2]) {
  Tensor t = Tensor::from_vector(std::vector<double>{v[0], v[1]}, Shape{2});
  t.set_requires_grad();
  return t;
}

void set_grad(Tensor& p, std::vector<double> g) { p.impl()->grad = Tensor::from_vector(g, p.shape()); }

// Runs `opt` for the three steps of kGrads on a float64 parameter; returns its values.
std::vector<double> run3(Optimizer& opt, Tensor* out = nullptr) {
  Tensor w = param64(kStart);
  for (const auto& g : kGrads) {
    set_grad(w, {g[0], g[1]});
    opt.step({w});
  }
  if (out) *out = w;
  return w.to_vector<double>();
}

void expect_close(const std::vector<double>& got, const double (&want)[2]) {
  ASSERT_EQ(got.size(), 2u);
  for (int i = 0; i < 2; ++i)
    EXPECT_NEAR(got[static_cast<std::size_t>(i)], want[i], 1e-14 + 1e-12 * std::fabs(want[i]));
}

}  // namespace

TEST(Optimizers, SgdWeightDecayIsDecoupledAndComesFirst) {
  optimizers::SGD opt({.learning_rate = 0.1, .momentum = 0.9, .nesterov = true, .weight_decay = 0.05});
  double w[2] = {kStart[0], kStart[1]}, v[2] = {0, 0};
  for (const auto& g : kGrads)
    for (int i = 0; i < 2; ++i) {
      w[i] = w[i] - w[i] * 0.05 * 0.1;  // Keras: variable - variable * wd * lr, before the update
      v[i] = v[i] * 0.9 - g[i] * 0.1;
      w[i] = w[i] + (v[i] * 0.9 - g[i] * 0.1);
    }
  expect_close(run3(opt), w);
  EXPECT_EQ(opt.slot_names(), std::vector<std::string>{"momentum"});
}

TEST(Optimizers, AdamWFollowsKerasWithItsDefaults) {
  optimizers::AdamW opt;
  EXPECT_EQ(opt.options().weight_decay, std::optional<double>(0.004));
  EXPECT_EQ(opt.options().learning_rate, 0.001);
  double w[2] = {kStart[0], kStart[1]}, m[2] = {0, 0}, v[2] = {0, 0};
  for (int t = 1; t <= 3; ++t)
    for (int i = 0; i < 2; ++i) {
      const double g = kGrads[t - 1][i];
      w[i] = w[i] - w[i] * 0.004 * 0.001;
      const double alpha = 0.001 * std::sqrt(1 - std::pow(0.999, t)) / (1 - std::pow(0.9, t));
      m[i] = m[i] + (g - m[i]) * (1 - 0.9);
      v[i] = v[i] + (g * g - v[i]) * (1 - 0.999);
      w[i] = w[i] - m[i] * alpha / (std::sqrt(v[i]) + 1e-7);
    }
  expect_close(run3(opt), w);
  EXPECT_EQ(opt.class_name(), "AdamW");
  EXPECT_EQ(opt.slot_names(), (std::vector<std::string>{"momentum", "velocity"}));
}

namespace {
// Keras' RMSprop, in double.
std::vector<double> rmsprop_reference(double lr, double rho, double momentum, double eps, bool centered) {
  double w[2] = {kStart[0], kStart[1]}, vel[2] = {0, 0}, mom[2] = {0, 0}, avg[2] = {0, 0};
  for (const auto& gs : kGrads)
    for (int i = 0; i < 2; ++i) {
      const double g = gs[i];
      vel[i] = rho * vel[i] + (1 - rho) * (g * g);
      double denominator = vel[i] + eps;
      if (centered) {
        avg[i] = rho * avg[i] + (1 - rho) * g;
        denominator = vel[i] - avg[i] * avg[i] + eps;
      }
      const double increment = lr * g / std::sqrt(denominator);
      if (momentum > 0) {
        mom[i] = momentum * mom[i] + increment;
        w[i] -= mom[i];
      } else {
        w[i] -= increment;
      }
    }
  return {w[0], w[1]};
}
}  // namespace

TEST(Optimizers, RmspropPlainCenteredAndMomentumFollowKeras) {
  for (const bool centered : {false, true})
    for (const double momentum : {0.0, 0.5}) {
      SCOPED_TRACE(std::string("centered ") + (centered ? "true" : "false") + ", momentum " + std::to_string(momentum));
      optimizers::RMSprop opt({.learning_rate = 0.01, .momentum = momentum, .centered = centered});
      const auto want = rmsprop_reference(0.01, 0.9, momentum, 1e-7, centered);
      expect_close(run3(opt), {want[0], want[1]});
      std::vector<std::string> slots{"velocity"};
      if (momentum > 0) slots.push_back("momentum");
      if (centered) slots.push_back("average_gradient");
      EXPECT_EQ(opt.slot_names(), slots);
    }
}

TEST(Optimizers, RmspropDefaultsAreKeras) {
  const optimizers::RMSpropOptions o;
  EXPECT_EQ(o.learning_rate, 0.001);
  EXPECT_EQ(o.rho, 0.9);
  EXPECT_EQ(o.momentum, 0.0);
  EXPECT_EQ(o.epsilon, 1e-7);
  EXPECT_FALSE(o.centered);
  optimizers::RMSprop opt;
  const auto want = rmsprop_reference(0.001, 0.9, 0.0, 1e-7, false);
  expect_close(run3(opt), {want[0], want[1]});
}

TEST(Optimizers, AdagradStartsItsAccumulatorAtTheInitialValue) {
  optimizers::Adagrad opt;  // Keras: 0.001, initial_accumulator_value 0.1, epsilon 1e-7
  double w[2] = {kStart[0], kStart[1]}, acc[2] = {0.1, 0.1};
  for (const auto& g : kGrads)
    for (int i = 0; i < 2; ++i) {
      acc[i] += g[i] * g[i];
      w[i] -= 0.001 * g[i] / std::sqrt(acc[i] + 1e-7);
    }
  expect_close(run3(opt), w);
  ASSERT_EQ(opt.slots().size(), 1u);
  const auto a = opt.slots()[0][0].to_vector<double>();
  EXPECT_NEAR(a[0], acc[0], 1e-15);
  EXPECT_NEAR(a[1], acc[1], 1e-15);
}

TEST(Optimizers, ClipnormScalesEachGradientToItsNorm) {
  // Two parameters: the first's gradient (3, 4) has norm 5 > 1 and is scaled; the second's
  // (0.3, 0.4), norm 0.5, stays. SGD with lr 1 shows the clipped gradient in the weights.
  optimizers::SGD opt({.learning_rate = 1.0, .clipnorm = 1.0});
  Tensor a = param64({0.0, 0.0}), b = param64({0.0, 0.0});
  set_grad(a, {3, 4});
  set_grad(b, {0.3, 0.4});
  opt.step({a, b});
  expect_close(a.to_vector<double>(), {-3 * 1.0 / 5, -4 * 1.0 / 5});
  expect_close(b.to_vector<double>(), {-0.3, -0.4});
}

TEST(Optimizers, GlobalClipnormScalesAllGradientsTogether) {
  optimizers::SGD opt({.learning_rate = 1.0, .global_clipnorm = 2.0});
  Tensor a = param64({0.0, 0.0}), b = param64({0.0, 0.0});
  set_grad(a, {3, 4});
  set_grad(b, {0, 12});  // global norm sqrt(9 + 16 + 144) = 13
  opt.step({a, b});
  const double scale = 2.0 * std::min(1.0 / 13.0, 1.0 / 2.0);
  expect_close(a.to_vector<double>(), {-3 * scale, -4 * scale});
  expect_close(b.to_vector<double>(), {0.0, -12 * scale});
  // Below the limit the gradients pass as Keras scales them: clipnorm * (1 / clipnorm).
  set_grad(a, {0.3, 0.4});
  set_grad(b, {0, 0});
  opt.step({a, b});
  const double unit = 2.0 * (1.0 / 2.0);
  expect_close(a.to_vector<double>(), {-3 * scale - 0.3 * unit, -4 * scale - 0.4 * unit});
}

TEST(Optimizers, GlobalClipnormOfANonFiniteNormGivesNaN) {
  optimizers::SGD opt({.learning_rate = 1.0, .global_clipnorm = 1.0});
  Tensor a = param64({0.0, 0.0});
  set_grad(a, {INFINITY, 1});
  opt.step({a});
  for (double v : a.to_vector<double>()) EXPECT_TRUE(std::isnan(v));
}

TEST(Optimizers, ClipvalueClipsEachElement) {
  optimizers::Adagrad opt({.learning_rate = 1.0, .initial_accumulator_value = 0.0, .clipvalue = 0.5});
  Tensor a = param64({0.0, 0.0});
  set_grad(a, {2.0, -0.25});
  opt.step({a});
  // Adagrad's first step moves by lr g / sqrt(g^2 + eps) with the clipped g = (0.5, -0.25).
  expect_close(a.to_vector<double>(), {-0.5 / std::sqrt(0.25 + 1e-7), 0.25 / std::sqrt(0.0625 + 1e-7)});
}

TEST(Optimizers, EmaAveragesTheWeightsAndFinalizeCopiesThem) {
  optimizers::SGD opt({.learning_rate = 0.1, .use_ema = true, .ema_momentum = 0.9});
  Tensor w;
  const auto trained = run3(opt, &w);
  double e[2] = {kStart[0], kStart[1]}, avg[2] = {0, 0};
  for (int t = 0; t < 3; ++t)
    for (int i = 0; i < 2; ++i) {
      e[i] -= kGrads[t][i] * 0.1;
      const double m = t == 0 ? 0.0 : 0.9;  // Keras: the first update copies the weights
      avg[i] = m * avg[i] + (1 - m) * e[i];
    }
  expect_close(trained, e);
  EXPECT_EQ(opt.slot_names(), std::vector<std::string>{"average"});
  expect_close(opt.slots()[0][0].to_vector<double>(), avg);
  opt.finalize_variable_values({w});
  expect_close(w.to_vector<double>(), avg);
}

TEST(Optimizers, EmaOverwriteFrequencyCopiesTheAverageEveryNSteps) {
  optimizers::SGD opt({.learning_rate = 0.1, .use_ema = true, .ema_momentum = 0.5, .ema_overwrite_frequency = 2});
  double e[2] = {kStart[0], kStart[1]}, avg[2] = {0, 0};
  for (int t = 0; t < 3; ++t)
    for (int i = 0; i < 2; ++i) {
      e[i] -= kGrads[t][i] * 0.1;
      const double m = t == 0 ? 0.0 : 0.5;
      avg[i] = m * avg[i] + (1 - m) * e[i];
      if ((t + 1) % 2 == 0) e[i] = avg[i];  // Keras: (iterations + 1) % frequency == 0
    }
  expect_close(run3(opt), e);
}

TEST(Optimizers, LearningRateMultiplierScalesTheRuleNotTheDecay) {
  // SGD with Nesterov momentum and decoupled decay: the multiplier scales lr in the rule only.
  optimizers::SGD sgd({.learning_rate = 0.1, .momentum = 0.9, .nesterov = true, .weight_decay = 0.05});
  Tensor w = param64(kStart);
  w.impl()->learning_rate_multiplier = 4.0;
  double e[2] = {kStart[0], kStart[1]}, v[2] = {0, 0};
  for (const auto& g : kGrads) {
    set_grad(w, {g[0], g[1]});
    sgd.step({w});
    for (int i = 0; i < 2; ++i) {
      e[i] = e[i] - e[i] * 0.05 * 0.1;
      v[i] = v[i] * 0.9 - g[i] * (0.1 * 4.0);
      e[i] = e[i] + (v[i] * 0.9 - g[i] * (0.1 * 4.0));
    }
  }
  expect_close(w.to_vector<double>(), e);
  // Adam: the bias-corrected step size alpha times the multiplier.
  optimizers::Adam adam({.learning_rate = 0.01});
  Tensor a = param64(kStart);
  a.impl()->learning_rate_multiplier = 0.5;
  double x[2] = {kStart[0], kStart[1]}, m[2] = {0, 0}, u[2] = {0, 0};
  for (int t = 0; t < 3; ++t) {
    set_grad(a, {kGrads[t][0], kGrads[t][1]});
    adam.step({a});
    const double alpha = 0.01 * std::sqrt(1 - std::pow(0.999, t + 1)) / (1 - std::pow(0.9, t + 1));
    for (int i = 0; i < 2; ++i) {
      m[i] += (kGrads[t][i] - m[i]) * (1 - 0.9);
      u[i] += (kGrads[t][i] * kGrads[t][i] - u[i]) * (1 - 0.999);
      x[i] -= m[i] * (alpha * 0.5) / (std::sqrt(u[i]) + 1e-7);
    }
  }
  expect_close(a.to_vector<double>(), x);
}

TEST(Optimizers, LayerLearningRateMultiplierReachesTraining) {
  // Multiplier 0 on Dense's bias: fit moves the kernel only; 1 restores the default.
  utils::set_random_seed(3);
  Sequential model({layers::Dense(2, {.bias_initializer = "ones", .input_shape = {3}})});
  auto dense = model.layers()[0];
  EXPECT_EQ(dense->learning_rate_multiplier("bias"), 1.0);
  dense->set_learning_rate_multiplier("bias", 0.0);
  EXPECT_EQ(dense->learning_rate_multiplier("bias"), 0.0);
  model.compile(optimizers::SGD({.learning_rate = 0.1, .momentum = 0.5}), losses::MeanSquaredError());
  const Tensor x = Tensor::from_vector(std::vector<float>{1, 2, 3, -1, 0, 2, 0.5F, -2, 1, 2, 2, 2}, {4, 3});
  const Tensor y = Tensor::from_vector(std::vector<float>{1, 0, 0, 1, 1, 1, -1, 2}, {4, 2});
  const auto kernel_before = model.layers()[0]->named_weights()[0].second.to_vector<float>();
  model.fit(x, y, {.batch_size = 2, .epochs = 2, .verbose = 0, .shuffle = false});
  EXPECT_EQ(model.layers()[0]->named_weights()[1].second.to_vector<float>(), std::vector<float>({1, 1}));
  EXPECT_NE(model.layers()[0]->named_weights()[0].second.to_vector<float>(), kernel_before);
  dense->set_learning_rate_multiplier("bias", 1.0);
  model.fit(x, y, {.batch_size = 2, .epochs = 1, .verbose = 0, .shuffle = false});
  EXPECT_NE(model.layers()[0]->named_weights()[1].second.to_vector<float>(), std::vector<float>({1, 1}));
}

TEST(Optimizers, LayerLearningRateMultiplierErrorsNameTheProblem) {
  layers::Dense unbuilt(2);
  auto has = [](const std::string& message, const std::string& part) {
    return message.find(part) != std::string::npos;
  };
  EXPECT_TRUE(
      has(kiln::testing::message_of([&] { unbuilt.set_learning_rate_multiplier("bias", 2.0); }), "is not built"));
  Sequential model({layers::Dense(2, {.input_shape = {3}}), layers::BatchNormalization()});
  auto dense = model.layers()[0];
  auto bn = model.layers()[1];
  EXPECT_TRUE(has(kiln::testing::message_of([&] { dense->set_learning_rate_multiplier("gamma", 2.0); }),
                  "has no weight named 'gamma'"));
  EXPECT_TRUE(has(kiln::testing::message_of([&] { dense->set_learning_rate_multiplier("bias", -1.0); }),
                  "is -1.000000; expected a finite number >= 0"));
  EXPECT_TRUE(has(kiln::testing::message_of([&] { bn->set_learning_rate_multiplier("moving_mean", 2.0); }),
                  "weight 'moving_mean' is not trained by the optimizer"));
  bn->set_learning_rate_multiplier("beta", 64.0);
  EXPECT_EQ(bn->learning_rate_multiplier("beta"), 64.0);
}

TEST(Optimizers, EmaMomentumScheduleMakesLookahead) {
  // Momentum 1 between overwrites and m_t on every second step: the average moves only there, by
  // 1 - m_t toward the fast weights, which then restart from it (Lookahead with k = 2).
  auto momentum = [](int64_t t) { return (t + 1) % 2 == 0 ? 0.25 * static_cast<double>(t) : 1.0; };
  optimizers::SGD opt({.learning_rate = 0.1,
                       .use_ema = true,
                       .ema_momentum = std::function<double(int64_t)>(momentum),
                       .ema_overwrite_frequency = 2});
  double fast[2] = {kStart[0], kStart[1]}, slow[2] = {0, 0};
  for (int t = 0; t < 3; ++t)
    for (int i = 0; i < 2; ++i) {
      fast[i] -= kGrads[t][i] * 0.1;
      if (t == 0) slow[i] = fast[i];  // Keras: the average starts as the weights after the first update
      if ((t + 1) % 2 == 0) {
        const double m = momentum(t);
        slow[i] = m * slow[i] + (1 - m) * fast[i];
        fast[i] = slow[i];
      }
    }
  expect_close(run3(opt), fast);
  expect_close(opt.slots()[0].back().to_vector<double>(), slow);
}

TEST(Optimizers, EmaMomentumScheduleOutsideTheUnitIntervalSaysWhere) {
  optimizers::SGD opt({.learning_rate = 0.1,
                       .use_ema = true,
                       .ema_momentum = std::function<double(int64_t)>([](int64_t t) { return t == 1 ? 1.5 : 0.5; })});
  Tensor w = param64({1.0, 2.0});
  set_grad(w, {0.1, 0.1});
  opt.step({w});
  set_grad(w, {0.1, 0.1});
  const std::string message = kiln::testing::message_of([&] { opt.step({w}); });
  for (const char* part : {"ema_momentum's schedule gives 1.5", "at iteration 1", "expected a value in [0, 1]"})
    EXPECT_NE(message.find(part), std::string::npos) << message;
}

TEST(Optimizers, EmaMomentumScheduleRoundTripsAndBadConfigsNameIt) {
  optimizers::SGD opt({.use_ema = true, .ema_momentum = schedules::PiecewiseConstantDecay({10}, {0.5, 0.9})});
  const Config config = opt.get_config();
  EXPECT_EQ(config["ema_momentum"]["class_name"], "PiecewiseConstantDecay");
  EXPECT_EQ(optimizers::SGD::from_config(config).get_config(), config);
  EXPECT_EQ(optimizers::SGD({.use_ema = true}).get_config()["ema_momentum"], 0.99);  // a number stays one
  const std::string message = kiln::testing::message_of(
      [] { optimizers::SGD::from_config(Config::parse(R"({"ema_momentum": {"config": {}}})")); });
  EXPECT_NE(message.find("the SGD config: ema_momentum"), std::string::npos) << message;
}

TEST(Optimizers, EmaAlsoAveragesParametersWithoutAGradient) {
  optimizers::Adam opt({.use_ema = true});
  Tensor a = param64({1.0, 2.0}), frozen = param64({3.0, 4.0});
  set_grad(a, {0.1, 0.1});
  opt.step({a, frozen});
  expect_close(opt.slots()[1][2].to_vector<double>(), {3.0, 4.0});
  expect_close(frozen.to_vector<double>(), {3.0, 4.0});
}

TEST(Optimizers, ScheduleGivesEachStepItsRate) {
  // Keras evaluates the schedule at optimizer.iterations before the update: 0, 1, 2.
  optimizers::SGD opt({.learning_rate = schedules::PiecewiseConstantDecay({0, 1}, {1.0, 0.5, 0.25})});
  EXPECT_EQ(opt.learning_rate(), 1.0);
  double w[2] = {kStart[0], kStart[1]};
  const double rates[3] = {1.0, 0.5, 0.25};
  for (int t = 0; t < 3; ++t)
    for (int i = 0; i < 2; ++i) w[i] -= kGrads[t][i] * rates[t];
  expect_close(run3(opt), w);
  EXPECT_EQ(opt.learning_rate(), 0.25);
}

TEST(Optimizers, WeightDecayUsesTheScheduledRate) {
  optimizers::SGD opt(
      {.learning_rate = std::function<double(int64_t)>([](int64_t s) { return 0.1 * (s + 1); }), .weight_decay = 0.5});
  double w[2] = {kStart[0], kStart[1]};
  for (int t = 0; t < 3; ++t) {
    const double lr = 0.1 * (t + 1);
    for (int i = 0; i < 2; ++i) {
      w[i] = w[i] - w[i] * 0.5 * lr;
      w[i] -= kGrads[t][i] * lr;
    }
  }
  expect_close(run3(opt), w);
}

TEST(Optimizers, LearningRateIsSettableUnlessScheduled) {
  optimizers::RMSprop opt;
  EXPECT_EQ(opt.learning_rate(), 0.001);
  opt.set_learning_rate(0.0005);
  EXPECT_EQ(opt.learning_rate(), 0.0005);
  EXPECT_EQ(opt.options().learning_rate, 0.0005);
  EXPECT_EQ(opt.clone()->learning_rate(), 0.0005);
  EXPECT_EQ(message_of([&] { opt.set_learning_rate(NAN); }),
            "[RMSprop] set_learning_rate(nan); expected a finite number >= 0");
  optimizers::Adam scheduled({.learning_rate = schedules::ExponentialDecay({0.1, 10, 0.5})});
  EXPECT_EQ(message_of([&] { scheduled.set_learning_rate(0.01); }),
            "[Adam] the learning rate is a schedule, so it cannot be set; expected an optimizer made with a number "
            "as its learning_rate");
}

TEST(Optimizers, UserOptimizerHasNoLearningRate) {
  struct Plain : Optimizer {
    std::string name() const override { return "plain"; }
    std::string class_name() const override { return "Plain"; }
    Config get_config() const override { return Config::object(); }
    std::vector<std::string> slot_names() const override { return {}; }
    std::unique_ptr<Optimizer> clone() const override { return std::make_unique<Plain>(); }
  } plain;
  EXPECT_EQ(message_of([&] { (void)plain.learning_rate(); }),
            "[plain] the optimizer has no learning rate; expected one of Keras' optimizers");
  Tensor w = param64({1.0, 1.0});
  set_grad(w, {1, 1});
  EXPECT_EQ(message_of([&] { plain.step({w}); }),
            "[plain] the optimizer defines no update; expected an override of update() or apply()");
}

TEST(Optimizers, ConfigsRoundTripThroughTheRegistry) {
  std::vector<std::unique_ptr<Optimizer>> all;
  all.push_back(std::make_unique<optimizers::SGD>(optimizers::SGDOptions{
      .learning_rate = 0.02, .momentum = 0.5, .nesterov = true, .weight_decay = 0.01, .clipnorm = 1.5}));
  all.push_back(std::make_unique<optimizers::AdamW>(optimizers::AdamWOptions{
      .learning_rate = schedules::CosineDecay(
          {.initial_learning_rate = 0.0, .decay_steps = 100, .alpha = 0.1, .warmup_target = 0.01, .warmup_steps = 10}),
      .weight_decay = 0.02,
      .global_clipnorm = 1.0}));
  all.push_back(std::make_unique<optimizers::RMSprop>(
      optimizers::RMSpropOptions{.learning_rate = schedules::PiecewiseConstantDecay({10, 20}, {0.1, 0.01, 0.001}),
                                 .rho = 0.8,
                                 .momentum = 0.3,
                                 .epsilon = 1e-6,
                                 .centered = true,
                                 .clipvalue = 0.5,
                                 .use_ema = true,
                                 .ema_momentum = 0.95,
                                 .ema_overwrite_frequency = 7}));
  all.push_back(std::make_unique<optimizers::Adagrad>(optimizers::AdagradOptions{
      .learning_rate = schedules::PolynomialDecay({.initial_learning_rate = 0.1, .decay_steps = 50, .cycle = true}),
      .initial_accumulator_value = 0.2}));
  all.push_back(std::make_unique<optimizers::Adam>(
      optimizers::AdamOptions{.learning_rate = schedules::ExponentialDecay({0.1, 10, 0.9, true})}));
  for (const auto& opt : all) {
    SCOPED_TRACE(opt->class_name());
    const Config config = opt->get_config();
    const auto back = optimizer_registry().make(opt->class_name(), config);
    EXPECT_EQ(back->class_name(), opt->class_name());
    EXPECT_EQ(back->get_config(), config);
    EXPECT_EQ(back->slot_names(), opt->slot_names());
  }
  EXPECT_EQ(all[0]->get_config()["clipnorm"], 1.5);
  EXPECT_TRUE(all[0]->get_config()["clipvalue"].is_null());
  EXPECT_EQ(all[1]->get_config()["learning_rate"]["class_name"], "CosineDecay");
  for (const char* alias : {"adamw", "rmsprop", "adagrad", "AdamW", "RMSprop", "Adagrad"})
    EXPECT_TRUE(optimizer_registry().contains(alias)) << alias;
  EXPECT_EQ(optimizers::get("adamw")->get_config()["weight_decay"], 0.004);
}

TEST(Optimizers, ReadsKerasConfigs) {
  // The fields Keras writes, nulls included.
  const Config keras = Config::parse(R"({"name": "adamw", "learning_rate": 0.002, "weight_decay": 0.01,
      "clipnorm": null, "global_clipnorm": 1.0, "clipvalue": null, "use_ema": false, "ema_momentum": 0.99,
      "ema_overwrite_frequency": null, "loss_scale_factor": null, "gradient_accumulation_steps": null,
      "beta_1": 0.8, "beta_2": 0.99, "epsilon": 1e-07, "amsgrad": false})");
  const auto opt = optimizers::AdamW::from_config(keras);
  EXPECT_EQ(opt.options().learning_rate, 0.002);
  EXPECT_EQ(opt.options().weight_decay, std::optional<double>(0.01));
  EXPECT_EQ(opt.options().global_clipnorm, std::optional<double>(1.0));
  EXPECT_EQ(opt.options().beta_1, 0.8);
  // An older kiln config (learning rate and momentum only) keeps the other defaults.
  const auto sgd = optimizers::SGD::from_config(Config::parse(R"({"learning_rate": 0.05, "momentum": 0.9})"));
  EXPECT_FALSE(sgd.options().weight_decay.has_value());
  EXPECT_FALSE(sgd.options().use_ema);
}

TEST(Optimizers, BadOptionsSayWhatWasExpected) {
  EXPECT_EQ(message_of([] { optimizers::SGD({.clipnorm = 1.0, .global_clipnorm = 1.0}); }),
            "[SGD] clipnorm, clipvalue and global_clipnorm are 2 set; expected at most one of them");
  EXPECT_EQ(message_of([] { optimizers::Adam({.clipnorm = 1.0, .clipvalue = 1.0, .global_clipnorm = 1.0}); }),
            "[Adam] clipnorm, clipvalue and global_clipnorm are 3 set; expected at most one of them");
  EXPECT_EQ(message_of([] { optimizers::AdamW({.clipnorm = -1.0}); }),
            "[AdamW] clipnorm is -1; expected a positive number (or none)");
  EXPECT_EQ(message_of([] { optimizers::RMSprop({.use_ema = true, .ema_momentum = 1.5}); }),
            "[RMSprop] ema_momentum is 1.5; expected a value in [0, 1]");
  EXPECT_EQ(message_of([] { optimizers::Adagrad({.use_ema = true, .ema_overwrite_frequency = 0}); }),
            "[Adagrad] ema_overwrite_frequency is 0; expected an integer >= 1 (or none)");
  EXPECT_EQ(message_of([] { optimizers::SGD({.weight_decay = -0.1}); }),
            "[SGD] weight_decay is -0.1; expected a number >= 0 (or none)");
  EXPECT_EQ(message_of([] { optimizers::RMSprop({.rho = 1.0}); }),
            "[RMSprop] rho is 1.000000; expected a value in [0, 1)");
  EXPECT_EQ(message_of([] { optimizers::Adagrad({.initial_accumulator_value = -1}); }),
            "[Adagrad] initial_accumulator_value is -1.000000; expected a finite number >= 0");
  EXPECT_EQ(message_of([] { optimizers::AdamW::from_config(Config::parse(R"({"weight_decay": null})")); }),
            "[from_config] the AdamW config: \"weight_decay\" is null; expected a number (AdamW needs one)");
  EXPECT_EQ(message_of([] { optimizers::Adam::from_config(Config::parse(R"({"amsgrad": true})")); }),
            "[from_config] the Adam config: \"amsgrad\" is true; expected false (AMSGrad is not supported)");
  EXPECT_EQ(message_of([] { optimizers::SGD::from_config(Config::parse(R"({"gradient_accumulation_steps": 2})")); }),
            "[from_config] the SGD config: \"gradient_accumulation_steps\" is set; expected null (not supported)");
  EXPECT_EQ(message_of([] {
              optimizers::SGD::from_config(Config::parse(R"({"learning_rate": {"class_name": "Nope"}})"));
            }).substr(0, 55),
            "[learning-rate schedule] unknown learning-rate schedule");
}

TEST(Optimizers, GlobalClipnormNeedsOneDeviceAndDtype) {
  optimizers::SGD opt({.global_clipnorm = 1.0});
  Tensor a = param64({1.0, 1.0});
  Tensor b = Tensor::from_vector(std::vector<float>{1.0f}, Shape{1});
  b.set_requires_grad();
  set_grad(a, {1, 1});
  b.impl()->grad = Tensor::from_vector(std::vector<float>{1.0f}, Shape{1});
  EXPECT_EQ(message_of([&] {
              opt.step({a, b});
            }),
            "[SGD] global_clipnorm needs one norm over all gradients, but the parameters differ in device or dtype; "
            "expected them on one device with one dtype");
}

TEST(Optimizers, Float32UpdatesRoundLikeKeras) {
  // In float32 the rule's constants are rounded as Keras rounds its Python floats (1 - rho in
  // double, then to float32); checked against the same arithmetic in float.
  optimizers::RMSprop opt({.learning_rate = 0.01, .momentum = 0.5, .centered = true});
  Tensor w = Tensor::from_vector(std::vector<float>{0.5f, -0.25f}, Shape{2});
  w.set_requires_grad();
  float e[2] = {0.5f, -0.25f}, vel[2] = {0, 0}, mom[2] = {0, 0}, avg[2] = {0, 0};
  const float rho = 0.9f, omr = static_cast<float>(1.0 - 0.9), lr = 0.01f, eps = 1e-7f, mo = 0.5f;
  for (const auto& g64 : kGrads) {
    w.impl()->grad = Tensor::from_vector(std::vector<float>{float(g64[0]), float(g64[1])}, Shape{2});
    opt.step({w});
    for (int i = 0; i < 2; ++i) {
      const float g = static_cast<float>(g64[i]);
      vel[i] = rho * vel[i] + omr * (g * g);
      avg[i] = rho * avg[i] + omr * g;
      const float inc = lr * g / std::sqrt(vel[i] - avg[i] * avg[i] + eps);
      mom[i] = mo * mom[i] + inc;
      e[i] = e[i] - mom[i];
    }
  }
  const auto got = w.to_vector<float>();
  EXPECT_EQ(got[0], e[0]);
  EXPECT_EQ(got[1], e[1]);
}

TEST(Optimizers, SavedModelResumesExactly) {
  // RMSprop with every slot (velocity, momentum, average_gradient, EMA average) and a schedule:
  // a checkpoint written after epoch 2 of a three-epoch fit, loaded and trained for the third epoch,
  // equals the three epochs straight. (A model saved after fit returns holds the EMA weights,
  // which fit swaps in at its end as Keras does, so resuming from it is another run.)
  const auto path = (std::filesystem::temp_directory_path() /
                     ("kiln_optimizers_resume_" + std::to_string(kiln::testing::process_id()) + ".kiln"))
                        .string();
  auto make = [] {
    utils::set_random_seed(3);
    Sequential m({layers::Dense(4, {.activation = "relu", .input_shape = {3}}), layers::Dense(2)});
    m.compile(optimizers::RMSprop({.learning_rate = schedules::ExponentialDecay({0.01, 5, 0.5}),
                                   .momentum = 0.5,
                                   .centered = true,
                                   .weight_decay = 0.01,
                                   .global_clipnorm = 1.0,
                                   .use_ema = true}),
              losses::MeanSquaredError());
    return m;
  };
  Generator gen(5);
  const Tensor x = Tensor::uniform({16, 3}, 0, 1, gen), y = Tensor::uniform({16, 2}, 0, 1, gen);
  Sequential straight = make();
  auto checkpoint = std::make_shared<callbacks::ModelCheckpoint>(path);
  {
    struct SaveAfterTwo : Callback {
      std::shared_ptr<callbacks::ModelCheckpoint> to;
      bool on_epoch_end(Model& m, int epoch, const std::map<std::string, double>& logs) override {
        return epoch != 1 || to->on_epoch_end(m, epoch, logs);
      }
    };
    auto save = std::make_shared<SaveAfterTwo>();
    save->to = checkpoint;
    straight.fit(x, y, {.batch_size = 4, .epochs = 3, .verbose = 0, .shuffle = false, .callbacks = {save}});
  }
  Sequential resumed = load_model(path);
  std::filesystem::remove(path);
  EXPECT_EQ(resumed.optimizer()->iterations(), 8);
  EXPECT_EQ(resumed.optimizer()->slot_names(),
            (std::vector<std::string>{"velocity", "momentum", "average_gradient", "average"}));
  resumed.fit(x, y, {.batch_size = 4, .epochs = 3, .verbose = 0, .shuffle = false, .initial_epoch = 2});
  // Both fits swapped their averages in at the end; the averages themselves must agree too.
  const auto a = straight.trainable_weights(), b = resumed.trainable_weights();
  ASSERT_EQ(a.size(), b.size());
  for (std::size_t i = 0; i < a.size(); ++i) EXPECT_EQ(a[i].to_vector<float>(), b[i].to_vector<float>()) << i;
  for (std::size_t i = 0; i < a.size(); ++i)
    for (std::size_t s = 0; s < 4; ++s)
      EXPECT_EQ(straight.optimizer()->slots()[i][s].to_vector<float>(),
                resumed.optimizer()->slots()[i][s].to_vector<float>())
          << i << "/" << s;
}

TEST(Optimizers, SavingAFunctionScheduleSaysSo) {
  Sequential m({layers::Dense(1, {.input_shape = {1}})});
  m.compile(optimizers::SGD({.learning_rate = std::function<double(int64_t)>([](int64_t) { return 0.1; })}),
            losses::MeanSquaredError());
  const auto path =
      (std::filesystem::temp_directory_path() / ("kiln_fn_schedule_" + std::to_string(kiln::testing::process_id())))
          .string();
  const std::string message = message_of([&] { m.save(path); });
  EXPECT_NE(message.find("the learning rate is a C++ function of the step, which cannot be saved"), std::string::npos)
      << message;
  std::filesystem::remove(path);
}
