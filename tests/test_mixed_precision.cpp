// Dtype policies (Keras' mixed precision): names and errors, the global policy taken at layer
// construction, the differentiable cast, layers computing in 16 bits with float32 weights, losses
// and metrics in float32, BatchNormalization's float32 math, and policies kept by save and load.
#include <gtest/gtest.h>

#include <cmath>

#include "io/layer_config.h"
#include "kiln/kiln.h"
#include "model_weights.h"
#include "test_support.h"

namespace kiln {
namespace {

using testing::all_weights;

using mixed_precision::DTypePolicy;
using testing::message_of;

// Sets the global policy for one test and puts back the previous one afterwards.
class MixedPrecision : public testing::CpuTestInFolder {
 protected:
  void TearDown() override {
    mixed_precision::set_global_policy(previous_);
    CpuTestInFolder::TearDown();
  }
  DTypePolicy previous_ = mixed_precision::global_policy();
};

Tensor uniform(const Shape& shape, uint64_t seed) {
  Generator gen(seed);
  return Tensor::uniform(shape, -1, 1, gen);
}

std::vector<float> floats(const Tensor& t) { return t.astype(DType::Float32).to_vector<float>(); }

TEST_F(MixedPrecision, PoliciesHaveKerasNamesAndDtypes) {
  EXPECT_EQ(DTypePolicy().name(), "float32");
  const DTypePolicy bf16("mixed_bfloat16"), f16("mixed_float16");
  EXPECT_EQ(bf16.compute_dtype(), DType::BFloat16);
  EXPECT_EQ(bf16.variable_dtype(), DType::Float32);
  EXPECT_TRUE(bf16.is_mixed());
  EXPECT_EQ(f16.compute_dtype(), DType::Float16);
  EXPECT_EQ(f16.variable_dtype(), DType::Float32);
  EXPECT_FALSE(DTypePolicy("float32").is_mixed());
}

TEST_F(MixedPrecision, UnknownPoliciesAndSixteenBitWeightsAreRefused) {
  const std::string unknown = message_of([] { mixed_precision::set_global_policy("mixed_float8"); });
  EXPECT_NE(unknown.find("unknown dtype policy \"mixed_float8\"; expected one of \"float32\", \"mixed_float16\", "
                         "\"mixed_bfloat16\""),
            std::string::npos)
      << unknown;
  const std::string f64 = message_of([] { DTypePolicy("float64"); });
  EXPECT_NE(f64.find("policy \"float64\" is not supported: kiln's layers keep float32 weights"), std::string::npos)
      << f64;
  const std::string half = message_of([] { DTypePolicy("bfloat16"); });
  EXPECT_NE(half.find("use \"mixed_bfloat16\""), std::string::npos) << half;
  EXPECT_EQ(mixed_precision::global_policy().name(), "float32");  // a refused name changes nothing
}

TEST_F(MixedPrecision, LayersTakeTheGlobalPolicyWhenConstructed) {
  const layers::Dense before(2);
  mixed_precision::set_global_policy("mixed_bfloat16");
  const layers::Dense after(2);
  EXPECT_EQ(before.dtype_policy().name(), "float32");
  EXPECT_EQ(after.dtype_policy().name(), "mixed_bfloat16");
  EXPECT_EQ(after.compute_dtype(), DType::BFloat16);
}

TEST_F(MixedPrecision, CastIsDifferentiableBetweenFloatingTypes) {
  Tensor x = uniform({6}, 1);
  x.set_requires_grad(true);
  const Tensor w = uniform({6}, 2);
  const Tensor y = cast(x, DType::BFloat16);
  EXPECT_EQ(y.dtype(), DType::BFloat16);
  EXPECT_EQ(floats(y), floats(x.detach().astype(DType::BFloat16)));
  sum(mul(cast(y, DType::Float32), w)).backward();
  // d/dx flows back through both casts: w rounded to bfloat16 on its way through y, then widened.
  EXPECT_EQ(x.grad().dtype(), DType::Float32);
  EXPECT_EQ(x.grad().to_vector<float>(), floats(w.astype(DType::BFloat16)));
  EXPECT_EQ(cast(x, DType::Float32).dtype(), DType::Float32);
  const std::string undefined = message_of([] { cast(Tensor(), DType::Float32); });
  EXPECT_NE(undefined.find("[cast] input is an undefined tensor"), std::string::npos) << undefined;
}

TEST_F(MixedPrecision, DenseComputesInBFloat16WithFloat32Weights) {
  mixed_precision::set_global_policy("mixed_bfloat16");
  utils::set_random_seed(4);
  Sequential model({layers::Dense(5, {.activation = "relu", .bias_initializer = "random_normal", .input_shape = {7}})});
  const Tensor x = uniform({3, 7}, 5);
  const Tensor out = model.predict(x);
  EXPECT_EQ(out.dtype(), DType::BFloat16);
  for (const Tensor& w : all_weights(model)) EXPECT_EQ(w.dtype(), DType::Float32);
  // The layer's math is the float32 math on bfloat16-rounded operands, rounded once at the end.
  const auto round = [](const Tensor& t) { return t.astype(DType::BFloat16).astype(DType::Float32); };
  const Tensor kernel = model.layers()[0]->named_weights()[0].second;
  const Tensor bias = model.layers()[0]->named_weights()[1].second;
  const Tensor expected = dense(round(x), round(kernel), round(bias), "relu").astype(DType::BFloat16);
  EXPECT_EQ(floats(out), floats(expected));
}

TEST_F(MixedPrecision, AFloat32HeadComputesInFloat32AndLossesAreFloat32) {
  mixed_precision::set_global_policy("mixed_bfloat16");
  layers::Dense head(3, {.activation = "softmax"});
  head.set_dtype_policy("float32");
  Sequential model({layers::Dense(4, {.activation = "relu", .input_shape = {6}}), head});
  model.compile("sgd", "sparse_categorical_crossentropy", {"accuracy"});
  const Tensor x = uniform({5, 6}, 6);
  EXPECT_EQ(model.predict(x).dtype(), DType::Float32);

  Sequential all_mixed({layers::Dense(3, {.activation = "softmax", .input_shape = {6}})});
  all_mixed.compile("sgd", "sparse_categorical_crossentropy");
  const Tensor pred = all_mixed.predict(x);
  EXPECT_EQ(pred.dtype(), DType::BFloat16);
  const Tensor labels = Tensor::from_vector<int32_t>({0, 1, 2, 0, 1});
  const Tensor loss = all_mixed.compute_loss({labels}, {pred});
  EXPECT_EQ(loss.dtype(), DType::Float32);
}

TEST_F(MixedPrecision, TheDtypeOptionSetsALayersPolicy) {
  // Keras' Dense(3, dtype="float32") under a mixed global policy: the option of every layer.
  mixed_precision::set_global_policy("mixed_float16");
  Sequential model({layers::Dense(4, {.activation = "relu", .input_shape = {6}}),
                    layers::Dense(3, {.dtype = "float32"}), layers::Activation("softmax", {.dtype = "float32"})});
  EXPECT_EQ(model.layers()[0]->dtype_policy().name(), "mixed_float16");
  EXPECT_EQ(model.layers()[1]->dtype_policy().name(), "float32");
  EXPECT_EQ(model.predict(uniform({2, 6}, 8)).dtype(), DType::Float32);
  EXPECT_EQ(layers::Conv2D(2, {3, 3}, {.dtype = "mixed_bfloat16"}).dtype_policy().name(), "mixed_bfloat16");
  EXPECT_EQ(layers::Concatenate({.dtype = "float32"}).dtype_policy().name(), "float32");
  EXPECT_EQ(layers::RandomFlip("horizontal", {.dtype = "float32"}).dtype_policy().name(), "float32");
  // Saved as the base's "dtype" field, as set_dtype_policy's, and read back.
  mixed_precision::set_global_policy("float32");
  const layers::Dense mixed(2, {.dtype = "mixed_bfloat16"});
  const auto saved = io::layer_to_json(mixed);
  EXPECT_EQ(saved["config"]["dtype"], "mixed_bfloat16");
  EXPECT_EQ(io::layer_from_json(saved, "test")->dtype_policy().name(), "mixed_bfloat16");
  const std::string unknown = message_of([] { layers::Dense(2, {.dtype = "half"}); });
  EXPECT_NE(unknown.find("unknown dtype policy \"half\""), std::string::npos) << unknown;
}

TEST_F(MixedPrecision, APolicyCannotChangeAfterTheLayerIsBuilt) {
  Sequential model({layers::Dense(2, {.input_shape = {3}})});
  model.predict(uniform({1, 3}, 7));
  const std::string late = message_of([&] { model.layers()[0]->set_dtype_policy("mixed_bfloat16"); });
  EXPECT_NE(late.find("after the layer was built under \"float32\"; expected it before the model is built"),
            std::string::npos)
      << late;
  const std::string unknown = message_of([] { layers::Dense(2).set_dtype_policy("half"); });
  EXPECT_NE(unknown.find("unknown dtype policy \"half\""), std::string::npos) << unknown;
}

TEST_F(MixedPrecision, BatchNormalizationNormalizesInFloat32) {
  mixed_precision::set_global_policy("mixed_bfloat16");
  Sequential model({layers::Dense(4, {.input_shape = {3}}), layers::BatchNormalization()});
  model.compile("sgd", "mse");
  const Tensor x = uniform({16, 3}, 8), y = uniform({16, 4}, 9);
  model.fit(x, y, {.batch_size = 16, .epochs = 1, .verbose = 0});
  EXPECT_EQ(model.predict(x).dtype(), DType::BFloat16);
  for (const auto& [name, w] : model.layers()[1]->named_weights()) EXPECT_EQ(w.dtype(), DType::Float32) << name;
  // The moving mean moved from its zeros towards the batch's float32 mean of the bfloat16 output.
  const std::vector<float> moving_mean = model.layers()[1]->named_weights()[2].second.to_vector<float>();
  bool moved = false;
  for (float m : moving_mean) moved = moved || m != 0.0f;
  EXPECT_TRUE(moved);
}

// A small CNN of the seed's kind under `policy`: its float32 weights after two epochs, and the losses.
std::pair<std::vector<float>, std::vector<double>> train_small_cnn(const std::string& policy) {
  mixed_precision::set_global_policy(policy);
  utils::set_random_seed(11);
  Sequential model({layers::Conv2D(8, {3, 3}, {.activation = "relu", .input_shape = {8, 8, 3}}),
                    layers::MaxPooling2D({2, 2}), layers::Flatten(), layers::Dropout(0.1),
                    layers::Dense(4, {.activation = "softmax"})});
  model.compile(optimizers::Adam({.learning_rate = 0.01}), losses::SparseCategoricalCrossentropy(), {"accuracy"});
  const Tensor x = uniform({64, 8, 8, 3}, 12);
  std::vector<int32_t> labels(64);
  const std::vector<float> xs = x.to_vector<float>();
  for (std::size_t i = 0; i < labels.size(); ++i) labels[i] = xs[i * 192] > 0 ? (xs[i * 192 + 1] > 0 ? 1 : 2) : 3;
  const History h = model.fit(x, Tensor::from_vector(labels), {.batch_size = 16, .epochs = 4, .verbose = 0});
  for (const Tensor& w : all_weights(model)) EXPECT_EQ(w.dtype(), DType::Float32);
  return {all_weights(model)[0].to_vector<float>(), h.history.at("loss")};
}

TEST_F(MixedPrecision, ACnnTrainsUnderMixedBFloat16LikeUnderFloat32) {
  const auto [w32, loss32] = train_small_cnn("float32");
  const auto [w16, loss16] = train_small_cnn("mixed_bfloat16");
  ASSERT_EQ(loss16.size(), 4u);
  for (double l : loss16) EXPECT_TRUE(std::isfinite(l));
  EXPECT_LT(loss16.back(), loss16.front());  // it learns
  // bfloat16 keeps 8 significant bits (relative rounding 2^-9 per value), so the two runs drift
  // apart slowly; after 16 steps their first-epoch losses agree to a few percent.
  EXPECT_NEAR(loss16.front(), loss32.front(), 0.05 * loss32.front());
  EXPECT_NE(w16, w32);  // the 16-bit math really ran
}

TEST_F(MixedPrecision, SavedPoliciesComeBackUnderAnotherGlobalPolicy) {
  mixed_precision::set_global_policy("mixed_bfloat16");
  layers::Dense head(2);
  head.set_dtype_policy("float32");
  Sequential model({layers::Dense(4, {.activation = "relu", .input_shape = {3}}), head});
  model.compile("adam", "mse");
  const Tensor x = uniform({6, 3}, 13);
  model.fit(x, uniform({6, 2}, 14), {.batch_size = 6, .epochs = 1, .verbose = 0});
  model.save(path("mixed.kiln"));
  const std::vector<float> before = floats(model.predict(x));

  mixed_precision::set_global_policy("float32");
  Model again = load_model(path("mixed.kiln"));
  EXPECT_EQ(again.layers()[0]->dtype_policy().name(), "mixed_bfloat16");
  EXPECT_EQ(again.layers()[1]->dtype_policy().name(), "float32");
  for (const Tensor& w : all_weights(again)) EXPECT_EQ(w.dtype(), DType::Float32);
  EXPECT_EQ(floats(again.predict(x)), before);
#if KILN_WITH_LIBZIP
  model.save(path("mixed.keras"));
  Model keras = load_model(path("mixed.keras"));
  EXPECT_EQ(keras.layers()[0]->dtype_policy().name(), "mixed_bfloat16");
  EXPECT_EQ(keras.layers()[1]->dtype_policy().name(), "float32");
  EXPECT_EQ(floats(keras.predict(x)), before);
#endif
}

}  // namespace
}  // namespace kiln
