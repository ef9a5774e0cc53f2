// Keras' weight constraints: each formula against Keras' written out in double (UnitNorm and MaxNorm
// over leading, inner and several axes; NonNeg), their configs through Dense and Conv2D and Keras'
// config form, their errors, and fit projecting the weights after every update (frozen weights
// left alone). On a GPU: the recorded step equal to the eager one with constraints.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "kiln/kiln.h"
#include "step_equivalence.h"
#include "test_support.h"

using namespace kiln;
using kiln::testing::message_of;

namespace {

// The norms of w [2, 3, 4] over `axes` (a subset of {0, 1, 2}), broadcast back to every element.
std::vector<double> slice_norms(const std::vector<double>& w, const std::vector<int64_t>& axes) {
  auto reduced = [&](int64_t d) { return std::find(axes.begin(), axes.end(), d) != axes.end(); };
  std::vector<double> out(w.size());
  for (int64_t i = 0; i < 24; ++i) {
    const int64_t c[3] = {i / 12, (i / 4) % 3, i % 4};
    double s = 0;
    for (int64_t j = 0; j < 24; ++j) {
      const int64_t d[3] = {j / 12, (j / 4) % 3, j % 4};
      bool same = true;
      for (int k = 0; k < 3; ++k)
        if (!reduced(k) && d[k] != c[k]) same = false;
      if (same) s += w[static_cast<std::size_t>(j)] * w[static_cast<std::size_t>(j)];
    }
    out[static_cast<std::size_t>(i)] = std::sqrt(s);
  }
  return out;
}

Tensor sample_weight() {
  Generator gen(2);
  return Tensor::uniform({2, 3, 4}, -2, 2, gen).astype(DType::Float64);
}

}  // namespace

TEST(Constraints, UnitNormFollowsKerasOverAnyAxes) {
  const Tensor w = sample_weight();
  const auto v = w.to_vector<double>();
  for (const std::vector<int64_t>& axes : {std::vector<int64_t>{0}, {1}, {2}, {0, 1}, {0, 2}, {1, 2}, {0, 1, 2}}) {
    const auto got = constraints::UnitNorm(axes)(w).to_vector<double>();
    const auto n = slice_norms(v, axes);
    for (std::size_t i = 0; i < v.size(); ++i) EXPECT_NEAR(got[i], v[i] / (1e-7 + n[i]), 1e-14) << axes.size();
  }
}

TEST(Constraints, MaxNormScalesOnlySlicesAboveTheBound) {
  const Tensor w = sample_weight();
  const auto v = w.to_vector<double>();
  const auto got = constraints::MaxNorm(1.5, {1})(w).to_vector<double>();
  const auto n = slice_norms(v, {1});
  int scaled = 0;
  for (std::size_t i = 0; i < v.size(); ++i) {
    EXPECT_NEAR(got[i], v[i] * std::min(n[i], 1.5) / (1e-7 + n[i]), 1e-14);
    scaled += n[i] > 1.5;
  }
  EXPECT_GT(scaled, 0);
  EXPECT_LT(scaled, 24);  // both kinds of slices are exercised
}

TEST(Constraints, NonNegZeroesNegativeEntries) {
  const Tensor w = Tensor::from_vector(std::vector<float>{-1.5f, 0.0f, 2.0f, -0.25f}, Shape{4});
  EXPECT_EQ(constraints::NonNeg()(w).to_vector<float>(), (std::vector<float>{0.0f, 0.0f, 2.0f, 0.0f}));
}

TEST(Constraints, ConfigsRoundTripThroughLayers) {
  layers::Conv2D conv(
      4, {3, 3}, {.kernel_constraint = constraints::unit_norm({0, 1, 2}), .bias_constraint = constraints::non_neg()});
  const Config config = conv.get_config();
  EXPECT_EQ(config.at("kernel_constraint"), (Config{{"class_name", "UnitNorm"}, {"config", {{"axis", {0, 1, 2}}}}}));
  EXPECT_EQ(layers::Conv2D::from_config(config).get_config(), config);
  layers::Dense dense(3, {.kernel_constraint = constraints::max_norm(3.0)});
  const Config dense_config = dense.get_config();
  EXPECT_EQ(dense_config.at("kernel_constraint").at("config"), (Config{{"max_value", 3.0}, {"axis", 0}}));
  EXPECT_TRUE(dense_config.at("bias_constraint").is_null());
  EXPECT_EQ(layers::Dense::from_config(dense_config).get_config(), dense_config);
}

TEST(Constraints, BadArgumentsSayWhatWasExpected) {
  EXPECT_NE(message_of([] { constraints::MaxNorm(0.0); }).find("max_value is 0"), std::string::npos);
  EXPECT_NE(message_of([] { constraints::UnitNorm({1, 1}); }).find("listed twice"), std::string::npos);
  EXPECT_NE(message_of([] { constraints::UnitNorm({-1}); }).find("negative"), std::string::npos);
  EXPECT_NE(message_of([] { constraints::UnitNorm({3})(sample_weight()); }).find("out of range"), std::string::npos);
  EXPECT_NE(message_of([] {
              constraint_registry().make("UnitNorm", {{"axis", "x"}});
            }).find("\"axis\""),
            std::string::npos);
}

TEST(Constraints, FitProjectsTrainedWeightsAfterEveryUpdate) {
  utils::set_random_seed(6);
  Generator gen(6);
  const Tensor x = Tensor::uniform({32, 5}, -1, 1, gen);
  const Tensor y = Tensor::uniform({32, 3}, -1, 1, gen);
  Sequential model({layers::Dense(6, {.kernel_constraint = constraints::unit_norm(), .input_shape = {5}}),
                    layers::Dense(3, {.kernel_constraint = constraints::max_norm(0.1)})});
  model.layers()[1]->set_weight_trainable("kernel", false);  // frozen: no update, so no projection
  const Tensor frozen = model.layers()[1]->named_weights()[0].second.astype(DType::Float32);
  model.compile(optimizers::SGD({.learning_rate = 0.5, .momentum = 0.9}), losses::MeanSquaredError());
  model.fit(x, y, {.batch_size = 8, .epochs = 2, .verbose = 0});
  const auto kernel = model.layers()[0]->named_weights()[0].second.to(Device::cpu()).to_vector<float>();
  for (int c = 0; c < 6; ++c) {
    double s = 0;
    for (int r = 0; r < 5; ++r) s += double(kernel[r * 6 + c]) * kernel[r * 6 + c];
    EXPECT_NEAR(std::sqrt(s), 1.0, 1e-5) << "column " << c;
  }
  EXPECT_EQ(model.layers()[1]->named_weights()[0].second.to(Device::cpu()).to_vector<float>(),
            frozen.to(Device::cpu()).to_vector<float>());
}

TEST(CudaConstraints, RecordedStepEqualsEager) {
  EXPECT_RECORDED_STEP_EQUALS_EAGER([] {
    Sequential model(
        {layers::Conv2D(4, {3, 3}, {.kernel_constraint = constraints::unit_norm({0, 1, 2}), .input_shape = {6, 6, 2}}),
         layers::Flatten(), layers::Dense(3, {.kernel_constraint = constraints::max_norm(0.5)})});
    model.compile(optimizers::SGD({.learning_rate = 0.1, .momentum = 0.9}),
                  losses::SparseCategoricalCrossentropy({.from_logits = true}));
    return model;
  });
}
