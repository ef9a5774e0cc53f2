// Losses (CategoricalCrossentropy, BinaryCrossentropy, MeanAbsoluteError, Huber, label smoothing
// of SparseCategoricalCrossentropy) and metrics (accuracy family, top-k, mae, mse): values from
// Keras' formulas worked out by hand, float64 gradchecks, bad targets, configs, fit and evaluate.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "gradcheck.h"
#include "kiln/kiln.h"
#include "step_equivalence.h"
#include "test_support.h"

namespace kiln {
namespace {

using testing::gradcheck;
using testing::message_of;
using testing::random_input;
using In = std::vector<Tensor>;

Tensor f32(const std::vector<float>& v, const Shape& s) { return Tensor::from_vector<float>(v, s); }
Tensor f64(const std::vector<double>& v, const Shape& s) { return Tensor::from_vector<double>(v, s); }
double value(const Tensor& t) { return t.item(); }

// ---- CategoricalCrossentropy ----

TEST(CategoricalCrossentropy, FromProbabilitiesNormalizesRowsThenClips) {
  const losses::CategoricalCrossentropy cce;
  // Keras' docstring example: -log(0.95) and -log(0.1), averaged.
  EXPECT_NEAR(value(cce(f32({0, 1, 0, 0, 0, 1}, {2, 3}), f32({0.05f, 0.95f, 0, 0.1f, 0.8f, 0.1f}, {2, 3}))),
              (-std::log(0.95) - std::log(0.1)) / 2, 1e-6);
  // A row summing to 4 is divided by 4 first: q = [0.25, 0.5, 0.25].
  EXPECT_NEAR(value(cce(f32({0, 1, 0}, {1, 3}), f32({1, 2, 1}, {1, 3}))), -std::log(0.5), 1e-6);
  // A zero probability is clipped to 1e-7.
  EXPECT_NEAR(value(cce(f32({1, 0, 0}, {1, 3}), f32({0, 1, 0}, {1, 3}))), -std::log(1e-7), 1e-4);
}

TEST(CategoricalCrossentropy, FromLogitsWithLabelSmoothing) {
  const losses::CategoricalCrossentropy cce({.from_logits = true, .label_smoothing = 0.3});
  // Targets [0, 0, 1] smoothed: 0.7 t + 0.1 = [0.1, 0.1, 0.8]; log_softmax(1, 2, 3) = x - lse.
  const double lse = std::log(std::exp(1.0) + std::exp(2.0) + std::exp(3.0));
  const double expected = -(0.1 * (1 - lse) + 0.1 * (2 - lse) + 0.8 * (3 - lse));
  EXPECT_NEAR(value(cce(f32({0, 0, 1}, {1, 3}), f32({1, 2, 3}, {1, 3}))), expected, 1e-6);
}

TEST(CategoricalCrossentropy, SoftmaxOutputIsScoredFromItsLogits) {
  // softmax(0, 0, 30)[0] ~ 9e-14 is below epsilon: clipping would give -log(1e-7) ~ 16.1; Keras 3
  // takes the logits: lse(0, 0, 30) - 0 = 30 + log(1 + 2 e^-30).
  const Tensor p = activations::apply("softmax", f32({0, 0, 30}, {1, 3}));
  const double expected = 30 + std::log1p(2 * std::exp(-30.0));
  EXPECT_NEAR(value(losses::CategoricalCrossentropy()(f32({1, 0, 0}, {1, 3}), p)), expected, 1e-4);
  EXPECT_NEAR(value(losses::CategoricalCrossentropy({.from_logits = true})(f32({1, 0, 0}, {1, 3}), p)), expected, 1e-4);
}

TEST(CategoricalCrossentropy, GradcheckFromLogitsAndFromProbabilities) {
  const Tensor t = f64({0.1, 0.7, 0.2, 1, 0, 0, 0, 0, 1, 0.3, 0.3, 0.4}, {4, 3});
  const losses::CategoricalCrossentropy logits({.from_logits = true, .label_smoothing = 0.2});
  EXPECT_TRUE(gradcheck([&](In v) { return logits(t, v[0]); }, {random_input({4, 3}, 1, -2, 2)}));
  const losses::CategoricalCrossentropy probs({.label_smoothing = 0.1});
  EXPECT_TRUE(gradcheck([&](In v) { return probs(t, v[0]); }, {random_input({4, 3}, 2, 0.05, 1.0)}));
  // Rank 3: [batch, steps, classes], the mean over every row.
  const Tensor t3 = f64({1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 1, 0}, {2, 2, 3});
  EXPECT_TRUE(gradcheck([&](In v) { return logits(t3, v[0]); }, {random_input({2, 2, 3}, 3, -2, 2)}));
}

TEST(CategoricalCrossentropy, BadTargetsAndOptions) {
  const losses::CategoricalCrossentropy cce;
  EXPECT_EQ(message_of([&] {
              cce.prepare_targets(f32({0, 2}, {2}), Shape{3}, "fit");
            }),
            "[fit] y has shape [2] for a model that outputs [3]; expected one-hot targets of the output's shape "
            "[N, 3] (for integer class indices use sparse_categorical_crossentropy)");
  EXPECT_EQ(message_of([&] {
              cce.prepare_targets(f32({0, 2, 0}, {1, 3}), Shape{3}, "fit");
            }),
            "[fit] target 2 at flat index 1 of y [1, 3] is outside [0, 1]; expected one-hot or probability targets "
            "in [0, 1] for categorical_crossentropy");
  EXPECT_EQ(message_of([] { losses::CategoricalCrossentropy({.label_smoothing = 1.5}); }),
            "[CategoricalCrossentropy] label_smoothing is 1.5; expected a number in [0, 1]");
  EXPECT_EQ(message_of([] { losses::CategoricalCrossentropy({.axis = 1}); }),
            "[CategoricalCrossentropy] axis is 1; expected -1 (the classes on the last axis)");
  EXPECT_EQ(message_of([&] {
              cce(f32({1, 0}, {1, 2}), f32({1, 0, 0}, {1, 3}));
            }),
            "[categorical_crossentropy] targets have shape [1, 2] and predictions [1, 3]; expected equal shapes "
            "[batch, ..., classes]");
  const Tensor ok = cce.prepare_targets(Tensor::from_vector<int32_t>({0, 1, 1, 0}, Shape{2, 2}), Shape{2}, "fit");
  EXPECT_EQ(ok.dtype(), DType::Float32);
}

// ---- SparseCategoricalCrossentropy's label smoothing ----

TEST(SparseCategoricalCrossentropy, LabelSmoothingIsTheOneHotLossOfSmoothedTargets) {
  const Tensor logits = f32({1, -2, 0.5f, 3, 0, 0, 2, 1, -1}, {3, 3});
  const Tensor labels = Tensor::from_vector<int32_t>({2, 0, 1}, Shape{3});
  const Tensor onehot = f32({0, 0, 1, 1, 0, 0, 0, 1, 0}, {3, 3});
  for (bool from_logits : {true, false}) {
    // From logits, and from a softmax output (scored from its logits either way).
    const Tensor pred = from_logits ? logits : activations::apply("softmax", logits);
    const double sparse = value(
        losses::SparseCategoricalCrossentropy({.from_logits = from_logits, .label_smoothing = 0.25})(labels, pred));
    const double dense =
        value(losses::CategoricalCrossentropy({.from_logits = from_logits, .label_smoothing = 0.25})(onehot, pred));
    EXPECT_NEAR(sparse, dense, 1e-6) << from_logits;
    const double plain = value(losses::SparseCategoricalCrossentropy({.from_logits = from_logits})(labels, pred));
    EXPECT_GT(std::abs(sparse - plain), 1e-3);  // the smoothing changes the loss
  }
  const Tensor labels64 = Tensor::from_vector<int32_t>({2, 0, 1, 1}, Shape{4});
  const losses::SparseCategoricalCrossentropy smoothed({.from_logits = true, .label_smoothing = 0.1});
  EXPECT_TRUE(gradcheck([&](In v) { return smoothed(labels64, v[0]); }, {random_input({4, 3}, 4, -2, 2)}));
  EXPECT_EQ(message_of([] { losses::SparseCategoricalCrossentropy({.label_smoothing = -0.1}); }),
            "[SparseCategoricalCrossentropy] label_smoothing is -0.1; expected a number in [0, 1]");
}

// ---- BinaryCrossentropy ----

TEST(BinaryCrossentropy, FromProbabilitiesClips) {
  const losses::BinaryCrossentropy bce;
  // -(log 0.9 + log(1 - 0.2) + log(1e-7)) / 3: the zero probability of a positive is clipped.
  const double expected = -(std::log(0.9) + std::log(0.8) + std::log(1e-7)) / 3;
  EXPECT_NEAR(value(bce(f32({1, 0, 1}, {3, 1}), f32({0.9f, 0.2f, 0}, {3, 1}))), expected, 1e-5);
}

TEST(BinaryCrossentropy, FromLogitsWithLabelSmoothing) {
  // z' = 0.8 z + 0.1; per element max(x, 0) - x z' + log1p(exp(-|x|)).
  const std::vector<double> x = {-2, 0, 3}, z = {1, 0.5, 0};
  double expected = 0;
  for (int i = 0; i < 3; ++i) {
    const double zs = 0.8 * z[i] + 0.1;
    expected += std::max(x[i], 0.0) - x[i] * zs + std::log1p(std::exp(-std::abs(x[i])));
  }
  const losses::BinaryCrossentropy bce({.from_logits = true, .label_smoothing = 0.2});
  EXPECT_NEAR(value(bce(f32({1, 0.5f, 0}, {3}), f32({-2, 0, 3}, {3}))), expected / 3, 1e-6);
}

TEST(BinaryCrossentropy, SigmoidOutputIsScoredFromItsLogits) {
  // sigmoid(40) rounds to 1 in float32: clipped, the loss would be -log(1e-7); from the logit it is 40.
  const Tensor p = activations::apply("sigmoid", f32({40}, {1, 1}));
  EXPECT_NEAR(value(losses::BinaryCrossentropy()(f32({0}, {1, 1}), p)), 40.0, 1e-4);
}

TEST(BinaryCrossentropy, GradcheckAndTheGradientAtZero) {
  const Tensor z = f64({1, 0, 0.3, 1, 0, 0.5}, {3, 2});
  const losses::BinaryCrossentropy logits({.from_logits = true, .label_smoothing = 0.1});
  EXPECT_TRUE(gradcheck([&](In v) { return logits(z, v[0]); }, {random_input({3, 2}, 5, -3, 3)}));
  const losses::BinaryCrossentropy probs;
  EXPECT_TRUE(gradcheck([&](In v) { return probs(z, v[0]); }, {random_input({3, 2}, 6, 0.05, 0.95)}));
  // The op itself, in both inputs; and at x = 0 the logit's gradient is sigmoid(0) - z = 0.5 - z.
  EXPECT_TRUE(gradcheck([](In v) { return sigmoid_cross_entropy(v[0], v[1]); },
                        {random_input({5}, 7, -4, 4), random_input({5}, 8, 0, 1)}));
  Tensor x = f64({0, 0}, {2});
  x.set_requires_grad(true);
  sum(sigmoid_cross_entropy(x, f64({1, 0.25}, {2}))).backward();
  EXPECT_EQ(x.grad().to_vector<double>(), (std::vector<double>{-0.5, 0.25}));
}

TEST(BinaryCrossentropy, BadTargets) {
  const losses::BinaryCrossentropy bce;
  EXPECT_EQ(message_of([&] {
              bce.prepare_targets(f32({0, 3}, {2}), Shape{1}, "fit");
            }),
            "[fit] target 3 at flat index 1 of y [2, 1] is outside [0, 1]; expected 0/1 labels or probabilities in "
            "[0, 1] for binary_crossentropy");
  EXPECT_EQ(message_of([&] {
              bce.prepare_targets(f32({0, 1, 1, 0}, {2, 2}), Shape{3}, "fit");
            }),
            "[fit] y has per-sample shape [2] but the model outputs [3]; expected targets of the output's shape for "
            "binary_crossentropy");
  EXPECT_EQ(bce.prepare_targets(f32({0, 1}, {2}), Shape{1}, "fit").shape(), (Shape{2, 1}));
}

// ---- MeanAbsoluteError and Huber ----

TEST(MeanAbsoluteError, ValueGradcheckAndErrors) {
  const losses::MeanAbsoluteError mae;
  EXPECT_NEAR(value(mae(f32({1, 2, 3}, {3, 1}), f32({2, 0, 3}, {3, 1}))), (1.0 + 2.0 + 0.0) / 3, 1e-7);
  const Tensor t = f64({0.5, -0.5, 2, 0}, {2, 2});
  EXPECT_TRUE(gradcheck([&](In v) { return mae(t, v[0]); }, {random_input({2, 2}, 9, 3, 4)}));
  EXPECT_EQ(message_of([&] {
              mae.prepare_targets(f32({1, 2, 3}, {3}), Shape{2}, "fit");
            }),
            "[fit] y has per-sample shape [] but the model outputs [2]; expected targets of the output's shape for "
            "mean_absolute_error");
}

TEST(Huber, ValuesOnBothBranchesAndGradcheck) {
  // Errors 0.5, -2, 3 with delta 1: 0.5 * 0.25, 2 - 0.5, 3 - 0.5.
  const Tensor y = f32({0, 0, 0}, {3});
  const Tensor p = f32({0.5f, -2, 3}, {3});
  EXPECT_NEAR(value(losses::Huber()(y, p)), (0.125 + 1.5 + 2.5) / 3, 1e-7);
  // delta 2.5: 0.125, 0.5 * 4, 2.5 * 3 - 0.5 * 6.25.
  EXPECT_NEAR(value(losses::Huber({.delta = 2.5})(y, p)), (0.125 + 2.0 + 4.375) / 3, 1e-6);
  const Tensor t = f64({0, 0, 0, 0, 0, 0}, {3, 2});
  const losses::Huber huber({.delta = 0.7});
  EXPECT_TRUE(gradcheck([&](In v) { return huber(t, v[0]); }, {random_input({3, 2}, 10, -2, 2)}));
  EXPECT_EQ(message_of([] { losses::Huber({.delta = -1}); }), "[Huber] delta is -1; expected a positive finite number");
}

TEST(Abs, ValuesGradientAndNaN) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const std::vector<double> y = abs(f64({-2, 0, 3, nan}, {4})).to_vector<double>();
  EXPECT_EQ(y[0], 2);
  EXPECT_EQ(y[1], 0);
  EXPECT_EQ(y[2], 3);
  EXPECT_TRUE(std::isnan(y[3]));
  Tensor x = f64({-2, 0, 3}, {3});
  x.set_requires_grad(true);
  sum(abs(x)).backward();
  EXPECT_EQ(x.grad().to_vector<double>(), (std::vector<double>{-1, 0, 1}));  // sign, 0 at 0 (TensorFlow's)
  EXPECT_TRUE(gradcheck([](In v) { return abs(v[0]); }, {random_input({6}, 11, 0.1, 1)}));
  EXPECT_TRUE(gradcheck([](In v) { return abs(v[0]); }, {random_input({6}, 12, -1, -0.1)}));
}

// ---- registry and configs ----

TEST(LossConfigs, RoundTripThroughTheRegistryAndKerasNames) {
  const std::vector<std::shared_ptr<Loss>> all = {
      std::make_shared<losses::CategoricalCrossentropy>(
          losses::CategoricalCrossentropyOptions{.from_logits = true, .label_smoothing = 0.2}),
      std::make_shared<losses::BinaryCrossentropy>(
          losses::BinaryCrossentropyOptions{.from_logits = true, .label_smoothing = 0.1}),
      std::make_shared<losses::MeanAbsoluteError>(), std::make_shared<losses::Huber>(losses::HuberOptions{.delta = 2}),
      std::make_shared<losses::SparseCategoricalCrossentropy>(
          losses::SparseCategoricalCrossentropyOptions{.from_logits = true, .label_smoothing = 0.3})};
  for (const auto& loss : all) {
    const std::unique_ptr<Loss> back = loss_registry().make(loss->class_name(), loss->get_config());
    EXPECT_EQ(back->class_name(), loss->class_name());
    EXPECT_EQ(back->get_config(), loss->get_config()) << loss->class_name();
  }
  EXPECT_EQ(losses::CategoricalCrossentropy().get_config(),
            (Config{{"from_logits", false}, {"label_smoothing", 0.0}, {"axis", -1}}));
  EXPECT_EQ(losses::Huber().get_config(), (Config{{"delta", 1.0}}));
  const std::vector<std::pair<std::string, std::string>> names = {
      {"categorical_crossentropy", "CategoricalCrossentropy"},
      {"binary_crossentropy", "BinaryCrossentropy"},
      {"bce", "BinaryCrossentropy"},
      {"mae", "MeanAbsoluteError"},
      {"mean_absolute_error", "MeanAbsoluteError"},
      {"MAE", "MeanAbsoluteError"},
      {"huber", "Huber"},
      {"Huber", "Huber"}};
  for (const auto& [name, cls] : names) EXPECT_EQ(losses::get(name)->class_name(), cls) << name;
  EXPECT_EQ(losses::get("huber")->name(), "huber_loss");
}

// ---- metrics ----

// The metric's sum over one batch, on the CPU.
double metric_sum(const std::string& name, const Tensor& y_true, const Tensor& y_pred) {
  Tensor sum = Tensor::zeros({}, DType::Float32);
  metrics::get(name)->add_batch_sum(y_true, y_pred, sum);
  return sum.item();
}

TEST(Metrics, NamesAreTheStringsGiven) {
  for (const std::string name :
       {"accuracy", "acc", "sparse_categorical_accuracy", "categorical_accuracy", "binary_accuracy",
        "sparse_top_k_categorical_accuracy", "mae", "mean_absolute_error", "mse", "mean_squared_error", "MAE", "MSE"})
    EXPECT_EQ(metrics::get(name)->name(), name);
}

TEST(Metrics, SparseTopKCountsTiesAtTheBoundaryAndMissesNonFiniteRows) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  // Rows of 6 classes; k = 5.
  const Tensor pred = f32({0.1f, 0.2f, 0.3f, 0.4f, 0.5f, 0.6f,  // label 0: 5 greater -> miss
                           0.1f, 0.2f, 0.3f, 0.4f, 0.5f, 0.6f,  // label 1: 4 greater -> hit
                           0.5f, 0.5f, 0.5f, 0.5f, 0.5f, 0.5f,  // all tied -> hit
                           0.1f, 0.2f, 0.3f, 0.4f, 0.5f, nan},  // a NaN in the row -> miss
                          {4, 6});
  const Tensor labels = Tensor::from_vector<int32_t>({0, 1, 3, 5}, Shape{4});
  EXPECT_EQ(metric_sum("sparse_top_k_categorical_accuracy", labels, pred), 2.0);
  Tensor sum = Tensor::zeros({}, DType::Float32);
  metrics::SparseTopKCategoricalAccuracy(1).add_batch_sum(labels, pred, sum);  // k = 1: only the tied row
  EXPECT_EQ(sum.item(), 1.0);
  EXPECT_EQ(message_of([] { metrics::SparseTopKCategoricalAccuracy(0); }),
            "[sparse_top_k_categorical_accuracy] k is 0; expected at least 1");
}

TEST(Metrics, CategoricalBinaryAndRegressionSums) {
  const Tensor onehot = f32({0, 1, 0, 1, 0, 0, 0, 0, 1}, {3, 3});
  const Tensor pred = f32({0.1f, 0.7f, 0.2f, 0.2f, 0.5f, 0.3f, 0.1f, 0.1f, 0.8f}, {3, 3});
  EXPECT_EQ(metric_sum("categorical_accuracy", onehot, pred), 2.0);
  EXPECT_EQ(metric_sum("accuracy", onehot, pred), 2.0);  // same shapes: categorical
  EXPECT_EQ(metric_sum("acc", Tensor::from_vector<int32_t>({1, 1, 2}, Shape{3}), pred), 3.0);  // sparse
  // Binary: (p > 0.5) == z, each sample the mean over its 2 elements: (1 + 0.5 + 0).
  const Tensor z = f32({1, 0, 1, 1, 0, 1}, {3, 2});
  const Tensor p = f32({0.9f, 0.2f, 0.6f, 0.5f, 0.7f, 0.4f}, {3, 2});
  EXPECT_EQ(metric_sum("binary_accuracy", z, p), 1.5);
  EXPECT_EQ(metric_sum("accuracy", f32({1, 0}, {2, 1}), f32({0.7f, 0.7f}, {2, 1})), 1.0);  // last dim 1: binary
  // mae and mse: each sample's mean over its elements, summed: errors (0.1, 0.2), (0.4, 0.5), (0.7, 0.6).
  EXPECT_NEAR(metric_sum("mae", z, p), 0.15 + 0.45 + 0.65, 1e-6);
  EXPECT_NEAR(metric_sum("mse", z, p), (0.01 + 0.04) / 2 + (0.16 + 0.25) / 2 + (0.49 + 0.36) / 2, 1e-6);
  EXPECT_EQ(message_of([&] {
              metric_sum("mae", Tensor::from_vector<int32_t>({1, 1, 2}, Shape{3}), pred);
            }),
            "[mean_absolute_error] targets [3] int32 and predictions [3, 3]; expected float targets of the "
            "predictions' shape");
}

// ---- training ----

TEST(LossesMetricsFit, EveryLossTrainsAndEvaluateMatchesItsMetrics) {
  utils::set_random_seed(3);
  Generator gen(4);
  const Tensor x = Tensor::uniform({40, 4}, -1, 1, gen);
  std::vector<float> onehot(40 * 3, 0.f), bits(40), reg(40);
  std::vector<int32_t> labels(40);
  const std::vector<float> xs = x.to_vector<float>();
  for (int i = 0; i < 40; ++i) {
    labels[i] = xs[4 * i] > 0.3f ? 2 : (xs[4 * i + 1] > 0 ? 1 : 0);
    onehot[3 * i + labels[i]] = 1.f;
    bits[i] = xs[4 * i + 2] > 0 ? 1.f : 0.f;
    reg[i] = 2 * xs[4 * i] - xs[4 * i + 3];
  }
  const Tensor y_onehot = f32(onehot, {40, 3}), y_bits = f32(bits, {40}), y_reg = f32(reg, {40});
  const Tensor y_sparse = Tensor::from_vector<int32_t>(labels, Shape{40});
  struct Case {
    std::string activation;
    std::shared_ptr<Loss> loss;
    Tensor y;
    int64_t units;
    std::vector<std::string> metrics;
  };
  const std::vector<Case> cases = {
      {"softmax",
       std::make_shared<losses::CategoricalCrossentropy>(
           losses::CategoricalCrossentropyOptions{.label_smoothing = 0.1}),
       y_onehot,
       3,
       {"accuracy", "categorical_accuracy", "mae"}},
      {"linear",
       std::make_shared<losses::SparseCategoricalCrossentropy>(
           losses::SparseCategoricalCrossentropyOptions{.from_logits = true, .label_smoothing = 0.1}),
       y_sparse,
       3,
       {"acc", "sparse_top_k_categorical_accuracy"}},
      {"sigmoid", std::make_shared<losses::BinaryCrossentropy>(), y_bits, 1, {"binary_accuracy", "accuracy"}},
      {"linear",
       std::make_shared<losses::BinaryCrossentropy>(losses::BinaryCrossentropyOptions{.from_logits = true}),
       y_bits,
       1,
       {"mse"}},
      {"linear", std::make_shared<losses::MeanAbsoluteError>(), y_reg, 1, {"mse", "mean_absolute_error"}},
      {"linear", std::make_shared<losses::Huber>(), y_reg, 1, {"MAE"}}};
  for (const Case& c : cases) {
    SCOPED_TRACE(c.loss->class_name());
    Sequential model({layers::Dense(c.units, {.activation = c.activation, .input_shape = {4}})});
    model.compile(*optimizers::get("adam"), *c.loss, c.metrics);
    const History h = model.fit(x, c.y, {.batch_size = 8, .epochs = 15, .verbose = 0});
    const std::vector<double>& loss = h.history.at("loss");
    EXPECT_LT(loss.back(), loss.front());
    for (const auto& m : c.metrics) EXPECT_EQ(h.history.at(m).size(), 15u) << m;
    // evaluate's metrics against the same formulas on predict's output.
    const std::map<std::string, double> logs = model.evaluate(x, c.y, {.batch_size = 16, .verbose = 0});
    const Tensor p = model.predict(x);
    const Tensor y = c.loss->prepare_targets(c.y, Shape{c.units}, "test");
    for (const auto& m : c.metrics) EXPECT_NEAR(logs.at(m), metric_sum(m, y, p) / 40, 1e-5) << m;
    EXPECT_NEAR(logs.at("loss"), value((*c.loss)(y, p)), 1e-5);
  }
}

TEST(LossesMetricsFit, RecordedStepEqualsEager) {
  EXPECT_RECORDED_STEP_EQUALS_EAGER([] {
    Sequential model(
        {layers::Dense(5, {.activation = "relu", .input_shape = {6}}), layers::Dense(4, {.activation = "softmax"})});
    model.compile(*optimizers::get("adam"), losses::CategoricalCrossentropy({.label_smoothing = 0.1}),
                  {"accuracy", "mae", "mse"});
    return model;
  });
  EXPECT_RECORDED_STEP_EQUALS_EAGER([] {
    Sequential model({layers::Dense(7, {.input_shape = {6}})});
    model.compile(*optimizers::get("sgd"),
                  losses::SparseCategoricalCrossentropy({.from_logits = true, .label_smoothing = 0.2}),
                  {"sparse_top_k_categorical_accuracy", "accuracy"});
    return model;
  });
  EXPECT_RECORDED_STEP_EQUALS_EAGER([] {
    Sequential model({layers::Dense(2, {.activation = "sigmoid", .input_shape = {6}})});
    model.compile(*optimizers::get("adam"), losses::BinaryCrossentropy({.label_smoothing = 0.1}), {"binary_accuracy"});
    return model;
  });
  EXPECT_RECORDED_STEP_EQUALS_EAGER([] {
    Sequential model({layers::Dense(3, {.input_shape = {6}})});
    model.compile(*optimizers::get("adam"), losses::Huber({.delta = 0.3}), {"mae"});
    return model;
  });
}

}  // namespace
}  // namespace kiln
