// Layer weight options and saving: an L2 kernel_regularizer adds l2 * sum(w^2) to the loss fit
// reports and 2 * l2 * w to the gradient; use_bias = false creates no bias; a model using the new
// layers, activations, initializers and regularizers saves and loads with equal configs and
// bit-identical predictions.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "kiln/kiln.h"
#include "test_support.h"

using namespace kiln;
namespace fs = std::filesystem;
using kiln::testing::message_of;

namespace {

// A fresh directory per test, removed afterwards.
class LayerWeightsTest : public kiln::testing::CpuTestInFolder {};

bool same_bits(const Tensor& a, const Tensor& b) {
  if (a.shape() != b.shape() || a.dtype() != b.dtype()) return false;
  const Tensor ca = a.cpu(), cb = b.cpu();
  return std::memcmp(ca.raw_data(), cb.raw_data(), ca.nbytes()) == 0;
}

Tensor weight_of(const Layer& layer, const std::string& name) {
  for (const auto& [n, t] : layer.named_weights())
    if (n == name) return t;
  return Tensor();
}

}  // namespace

// One Dense layer, MSE, full batch: the loss and the kernel's gradient are computed here in float64
// from the weights, independently of the model's code.
TEST_F(LayerWeightsTest, L2KernelRegularizerAddsItsPenaltyAndGradient) {
  const double l2 = 0.05;
  const int64_t N = 8, K = 4, U = 3;
  utils::set_random_seed(4);
  Sequential model({layers::Dense(U, {.kernel_regularizer = regularizers::l2(l2), .input_shape = {K}})});
  model.compile(optimizers::SGD({.learning_rate = 0.1}), losses::MeanSquaredError());
  Generator gen(6);
  const Tensor x = Tensor::uniform({N, K}, -1, 1, gen), y = Tensor::uniform({N, U}, -1, 1, gen);
  const Layer& dense = *model.layers()[0];
  const std::vector<double> k = weight_of(dense, "kernel").to_vector<double>();
  const std::vector<double> b = weight_of(dense, "bias").to_vector<double>();
  const std::vector<double> xv = x.to_vector<double>(), yv = y.to_vector<double>();

  double data_loss = 0, penalty = 0;
  std::vector<double> residual(N * U);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t u = 0; u < U; ++u) {
      double p = b[u];
      for (int64_t i = 0; i < K; ++i) p += xv[n * K + i] * k[i * U + u];
      residual[n * U + u] = p - yv[n * U + u];
      data_loss += residual[n * U + u] * residual[n * U + u] / double(N * U);
    }
  for (double w : k) penalty += l2 * w * w;
  std::vector<double> want_grad(K * U);
  for (int64_t i = 0; i < K; ++i)
    for (int64_t u = 0; u < U; ++u) {
      double g = 0;
      for (int64_t n = 0; n < N; ++n) g += 2.0 / double(N * U) * xv[n * K + i] * residual[n * U + u];
      want_grad[i * U + u] = g + 2 * l2 * k[i * U + u];
    }

  ASSERT_EQ(dense.losses().size(), 1u);
  EXPECT_NEAR(dense.losses()[0].item(), penalty, 1e-6 * penalty);
  Tensor loss = model.compute_loss(y, model(x, true));
  EXPECT_NEAR(loss.item(), data_loss + penalty, 1e-6 * (data_loss + penalty));
  loss.backward();
  const std::vector<double> grad = weight_of(dense, "kernel").grad().to_vector<double>();
  for (int64_t i = 0; i < K * U; ++i) EXPECT_NEAR(grad[i], want_grad[i], 1e-6) << i;
  weight_of(dense, "kernel").zero_grad();
  weight_of(dense, "bias").zero_grad();

  // fit reports the loss with the penalty (before the update) and steps along the full gradient.
  const History h = model.fit(x, y, {.batch_size = N, .epochs = 1, .verbose = 0, .shuffle = false});
  EXPECT_NEAR(h.history.at("loss")[0], data_loss + penalty, 1e-6 * (data_loss + penalty));
  const std::vector<double> k1 = weight_of(dense, "kernel").to_vector<double>();
  for (int64_t i = 0; i < K * U; ++i) EXPECT_NEAR(k1[i], k[i] - 0.1 * want_grad[i], 1e-6) << i;
}

TEST_F(LayerWeightsTest, RegularizersOfConv2DAndTheirConfigs) {
  utils::set_random_seed(5);
  Sequential model({layers::Conv2D(3, {3, 3},
                                   {.bias_initializer = "ones",
                                    .kernel_regularizer = regularizers::l2(0.01),
                                    .bias_regularizer = regularizers::l2(0.5),
                                    .input_shape = {5, 5, 2}})});
  const Layer& conv = *model.layers()[0];
  ASSERT_EQ(conv.losses().size(), 2u);
  EXPECT_NEAR(conv.losses()[1].item(), 0.5 * 3, 1e-6);  // bias of ones
  EXPECT_EQ(conv.get_config()["kernel_regularizer"], (Config{{"class_name", "L2"}, {"config", {{"l2", 0.01}}}}));
  EXPECT_EQ(layers::Dense(2).get_config()["kernel_regularizer"], Config(nullptr));
  // A frozen layer's penalty has no gradient to give, as in Keras.
  model.layers()[0]->set_trainable(false);
  EXPECT_TRUE(conv.losses().empty());
  EXPECT_EQ(message_of([] { regularizers::l2(-1.0); }), "[l2] factor is -1.000000; expected a finite number >= 0");
}

TEST_F(LayerWeightsTest, OneFrozenWeightStaysWhileTheOthersTrain) {
  // Conv2D's kernel frozen (Keras 3's layer.kernel.trainable = False), its bias trained: fit moves
  // the bias only, the kernel leaves trainable_weights() and its penalty leaves losses().
  utils::set_random_seed(8);
  Sequential model({layers::Conv2D(3, {2, 2}, {.kernel_regularizer = regularizers::l2(0.1), .input_shape = {4, 4, 2}}),
                    layers::Flatten(), layers::Dense(2)});
  Layer& conv = *model.layers()[0];
  conv.set_weight_trainable("kernel", false);
  EXPECT_EQ(model.trainable_weights().size(), 3u);  // conv bias, dense kernel and bias
  EXPECT_EQ(model.non_trainable_weights().size(), 1u);
  EXPECT_TRUE(conv.losses().empty());
  model.compile(optimizers::SGD({.learning_rate = 0.1, .momentum = 0.9}), losses::MeanSquaredError());
  Generator gen(2);
  const Tensor x = Tensor::uniform({8, 4, 4, 2}, -1.0, 1.0, gen), y = Tensor::uniform({8, 2}, -1.0, 1.0, gen);
  const Tensor kernel = weight_of(conv, "kernel").clone(), bias = weight_of(conv, "bias").clone();
  model.fit(x, y, {.batch_size = 4, .epochs = 2, .verbose = 0});
  EXPECT_TRUE(same_bits(weight_of(conv, "kernel"), kernel));
  EXPECT_FALSE(same_bits(weight_of(conv, "bias"), bias));
  // Unfrozen and compiled again, it trains.
  conv.set_weight_trainable("kernel", true);
  EXPECT_EQ(model.trainable_weights().size(), 4u);
  model.compile(optimizers::SGD({.learning_rate = 0.1}), losses::MeanSquaredError());
  model.fit(x, y, {.batch_size = 4, .epochs = 1, .verbose = 0});
  EXPECT_FALSE(same_bits(weight_of(conv, "kernel"), kernel));
  EXPECT_EQ(message_of([&] { conv.set_weight_trainable("gamma", false); }), "[conv2d] has no weight named 'gamma'");
  Sequential bn({layers::BatchNormalization({.input_shape = {3}})});
  EXPECT_EQ(message_of([&] { bn.layers()[0]->set_weight_trainable("moving_mean", true); }),
            "[batch_normalization] weight 'moving_mean' is updated by the layer itself, not by the optimizer; "
            "expected a trainable weight");
}

TEST_F(LayerWeightsTest, UseBiasFalseCreatesNoBias) {
  utils::set_random_seed(6);
  Sequential model({layers::Conv2D(4, {3, 3}, {.use_bias = false, .input_shape = {6, 6, 2}}), layers::Flatten(),
                    layers::Dense(3, {.use_bias = false})});
  for (const auto& layer : {model.layers()[0], model.layers()[2]}) {
    ASSERT_EQ(layer->named_weights().size(), 1u) << layer->name();
    EXPECT_EQ(layer->named_weights()[0].first, "kernel");
  }
  EXPECT_EQ(model.count_params(), 3 * 3 * 2 * 4 + 4 * 4 * 4 * 3);
  // Without a bias, zeros map to zeros.
  EXPECT_EQ(model.predict(Tensor::zeros({2, 6, 6, 2})).to_vector<float>(), std::vector<float>(6, 0.0f));
  EXPECT_EQ(model.layers()[2]->get_config()["use_bias"], false);
}

// Every new layer, activation, initializer and a regularizer in one model: save, load, compare.
TEST_F(LayerWeightsTest, SaveLoadRoundTripOfEverything) {
  using namespace kiln::layers;
  utils::set_random_seed(8);
  Sequential a(
      {Conv2D(6, {3, 3},
              {.padding = "same",
               .activation = "gelu",
               .kernel_initializer = "he_normal",
               .kernel_regularizer = regularizers::l2(1e-3),
               .input_shape = {9, 9, 3}}),
       AveragePooling2D({3, 3}, {.strides = {2, 2}, .padding = "same"}), Activation("elu"),
       Conv2D(5, {3, 3}, {.activation = "leaky_relu", .use_bias = false, .kernel_initializer = "lecun_uniform"}),
       GlobalMaxPooling2D({.keepdims = true}), GlobalAveragePooling2D(),
       Dense(8, {.activation = "swish",
                 .kernel_initializer = "glorot_normal",
                 .bias_initializer = "ones",
                 .kernel_regularizer = regularizers::l2(0.01),
                 .bias_regularizer = regularizers::l2(0.02)}),
       Activation("silu"), Dense(3, {.use_bias = false, .kernel_initializer = "random_normal"})});
  a.compile(optimizers::Adam(), losses::SparseCategoricalCrossentropy({.from_logits = true}));
  Generator gen(2);
  const Tensor x = Tensor::uniform({20, 9, 9, 3}, -1, 1, gen);
  std::vector<int32_t> labels(20);
  for (int i = 0; i < 20; ++i) labels[i] = i % 3;
  const Tensor y = Tensor::from_vector(labels);
  a.fit(x, y, {.batch_size = 5, .epochs = 2, .verbose = 0});
  a.save(path("all.kiln"));
  Sequential b = load_model(path("all.kiln"));

  ASSERT_EQ(b.layers().size(), a.layers().size());
  for (std::size_t i = 0; i < a.layers().size(); ++i) {
    EXPECT_EQ(b.layers()[i]->class_name(), a.layers()[i]->class_name());
    EXPECT_EQ(b.layers()[i]->name(), a.layers()[i]->name());
    EXPECT_EQ(b.layers()[i]->get_config(), a.layers()[i]->get_config()) << a.layers()[i]->name();
    ASSERT_EQ(b.layers()[i]->named_weights().size(), a.layers()[i]->named_weights().size());
    for (std::size_t w = 0; w < a.layers()[i]->named_weights().size(); ++w)
      EXPECT_TRUE(same_bits(a.layers()[i]->named_weights()[w].second, b.layers()[i]->named_weights()[w].second));
    EXPECT_EQ(b.layers()[i]->losses().size(), a.layers()[i]->losses().size()) << a.layers()[i]->name();
  }
  EXPECT_EQ(a.layers()[1]->name(), "average_pooling2d");
  EXPECT_EQ(a.layers()[7]->name(), "activation_1");
  EXPECT_TRUE(same_bits(a.predict(x), b.predict(x)));
  // The regularizers came back too: training on from here gives the same losses.
  const History ha = a.fit(x, y, {.batch_size = 5, .epochs = 3, .verbose = 0, .shuffle = false, .initial_epoch = 2});
  const History hb = b.fit(x, y, {.batch_size = 5, .epochs = 3, .verbose = 0, .shuffle = false, .initial_epoch = 2});
  EXPECT_EQ(ha.history.at("loss"), hb.history.at("loss"));
}
