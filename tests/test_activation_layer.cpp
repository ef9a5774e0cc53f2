// The activation table and the Activation layer: every registered name works in Dense, Conv2D and
// Activation (values, gradients, training), Keras' default parameters of each name, configs, and
// the unknown-name messages that list the known names.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "gradcheck.h"
#include "kiln/kiln.h"
#include "test_support.h"

using namespace kiln;
using kiln::layers::Activation;
using kiln::testing::gradcheck;
using kiln::testing::message_of;
using kiln::testing::random_input;

namespace {

using In = const std::vector<Tensor>&;

const std::vector<std::string> kKerasNames = {"elu",     "gelu", "leaky_relu", "linear", "relu",
                                              "sigmoid", "silu", "softmax",    "swish",  "tanh"};

void expect_near_all(const Tensor& got, const Tensor& want, double tol, const std::string& what) {
  ASSERT_EQ(got.shape(), want.shape()) << what;
  const auto g = got.to_vector<double>(), w = want.to_vector<double>();
  for (std::size_t i = 0; i < g.size(); ++i) ASSERT_NEAR(g[i], w[i], tol) << what << " at " << i;
}

Sequential seeded(std::vector<LayerRef> layers, uint64_t seed) {
  utils::set_random_seed(seed);
  Sequential model(std::move(layers));
  return model;
}

}  // namespace

TEST(ActivationTable, HoldsKerasNames) {
  const std::vector<std::string> names = activation_registry().names();
  for (const std::string& name : kKerasNames)
    EXPECT_NE(std::find(names.begin(), names.end(), name), names.end()) << name;
}

TEST(ActivationTable, KerasDefaultParameters) {
  const Tensor x = Tensor::from_vector<double>({-1.0, 1.0}, Shape{2});
  // gelu is the exact (erf) form: 1 * Phi(1) = 0.8413447460685429 (the tanh form gives 0.8411920).
  EXPECT_NEAR(activations::apply("gelu", x).to_vector<double>()[1], 0.8413447460685429, 1e-15);
  EXPECT_EQ(activations::apply("leaky_relu", x).to_vector<double>(), (std::vector<double>{-0.2, 1.0}));
  EXPECT_NEAR(activations::apply("elu", x).to_vector<double>()[0], std::expm1(-1.0), 1e-15);
  EXPECT_EQ(activations::apply("swish", x).to_vector<double>(), activations::apply("silu", x).to_vector<double>());
  EXPECT_NEAR(activations::apply("silu", x).to_vector<double>()[1], 1.0 / (1.0 + std::exp(-1.0)), 1e-15);
  EXPECT_EQ(activations::apply("linear", x).to_vector<double>(), x.to_vector<double>());
}

TEST(ActivationLayer, EveryNameEqualsTheFunctionAndHasItsGradient) {
  for (const std::string& name : kKerasNames) {
    Activation layer(name);
    EXPECT_EQ(layer.name(), "activation");
    const Tensor x = random_input({3, 4}, 7, -3.0, 3.0);
    expect_near_all(layer.call(x, false), activations::apply(name, x), 0, name);
    EXPECT_EQ(layer.compute_output_shape(Shape{2, 5, 7}), (Shape{2, 5, 7}));
    EXPECT_TRUE(gradcheck([&](In in) { return layer.call(in[0], true); }, {random_input({3, 4}, 8, -3.0, 3.0)}))
        << name;
  }
}

TEST(ActivationLayer, EmptyNameIsTheIdentityAndConfigsRoundTrip) {
  const Tensor x = random_input({2, 3}, 9).detach();
  EXPECT_EQ(Activation("").call(x, false).to_vector<double>(), x.to_vector<double>());
  const Activation swish("swish");
  EXPECT_EQ(swish.get_config(), (Config{{"activation", "swish"}}));
  const auto copy = layer_registry().make("Activation", swish.get_config());
  EXPECT_EQ(copy->class_name(), "Activation");
  EXPECT_EQ(copy->get_config(), swish.get_config());
}

// Dense and Conv2D with each activation give the linear layer's output through that activation (the
// same seed draws the same weights whatever the activation), and train.
TEST(ActivationNames, WorkInDenseAndConv2D) {
  Generator gen(2);
  const Tensor xd = Tensor::uniform({6, 3}, -2, 2, gen), xc = Tensor::uniform({6, 5, 5, 2}, -2, 2, gen);
  for (const std::string& name : kKerasNames) {
    Sequential dense = seeded({layers::Dense(4, {.activation = name, .input_shape = {3}})}, 11);
    Sequential dense_linear = seeded({layers::Dense(4, {.input_shape = {3}})}, 11);
    expect_near_all(dense.predict(xd), activations::apply(name, dense_linear.predict(xd)), 1e-6, "Dense " + name);

    Sequential conv = seeded({layers::Conv2D(3, {3, 3}, {.activation = name, .input_shape = {5, 5, 2}})}, 12);
    Sequential conv_linear = seeded({layers::Conv2D(3, {3, 3}, {.input_shape = {5, 5, 2}})}, 12);
    expect_near_all(conv.predict(xc), activations::apply(name, conv_linear.predict(xc)), 1e-6, "Conv2D " + name);

    Sequential model = seeded({layers::Conv2D(3, {3, 3}, {.activation = name, .input_shape = {5, 5, 2}}),
                               layers::Flatten(), layers::Dense(2, {.activation = name})},
                              13);
    model.compile("adam", "mean_squared_error");
    const Tensor before = model.trainable_weights()[0].clone();
    const History h = model.fit(xc, Tensor::uniform({6, 2}, 0, 1, gen), {.epochs = 2, .verbose = 0});
    EXPECT_TRUE(std::isfinite(h.history.at("loss").back())) << name;
    EXPECT_NE(model.trainable_weights()[0].to_vector<float>(), before.to_vector<float>()) << name;
  }
}

// A softmax Activation layer keeps its input as logits for the cross-entropy, as a softmax Dense does
// (Keras caches them on the output in both cases).
TEST(ActivationLayer, SoftmaxLayerLossEqualsSoftmaxDense) {
  Generator gen(4);
  const Tensor x = Tensor::uniform({8, 5}, -20, 20, gen);  // confident: clipped probabilities would differ
  const Tensor y = Tensor::from_vector<int32_t>({0, 1, 2, 3, 0, 1, 2, 3});
  Sequential fused = seeded({layers::Dense(4, {.activation = "softmax", .input_shape = {5}})}, 21);
  Sequential split = seeded({layers::Dense(4, {.input_shape = {5}}), Activation("softmax")}, 21);
  const losses::SparseCategoricalCrossentropy loss;
  EXPECT_EQ(loss(y, fused(x)).item(), loss(y, split(x)).item());
}

TEST(ActivationNamesErrors, UnknownNamesListTheKnownOnes) {
  const std::string msg = message_of([] { Activation("gleu"); });
  EXPECT_EQ(msg.rfind("[activation] unknown activation 'gleu'; expected one of ", 0), 0u) << msg;
  for (const std::string& name : kKerasNames) EXPECT_NE(msg.find(name), std::string::npos) << name;
  EXPECT_EQ(message_of([] { layers::Dense(2, {.activation = "gleu"}); }).rfind("[dense] unknown activation 'gleu'", 0),
            0u);
  EXPECT_EQ(message_of([] {
              layers::Conv2D(2, {3, 3}, {.activation = "Relu"});
            }).rfind("[conv2d] unknown activation 'Relu'; expected one of ", 0),
            0u);
  const std::string bad_config = message_of([] { layer_registry().make("Activation", Config{{"activation", 3}}); });
  EXPECT_EQ(bad_config.rfind("[from_config] the Activation config: \"activation\" is 3; expected a string", 0), 0u)
      << bad_config;
}
