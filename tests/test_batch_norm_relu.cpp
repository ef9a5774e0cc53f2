// BatchNormalization then ReLU as one op: fused_batch_norm(..., relu = true) equals relu after
// fused_batch_norm bit for bit, forward and backward, for every floating dtype on the CPU and the
// GPU; a model runs a BatchNormalization and the Activation("relu") after it as that op in training,
// only where the two layers' values cannot tell, and trains bit for bit as the two layers apart.
#include <gtest/gtest.h>

#include <vector>

#include "gradcheck.h"
#include "kiln/kiln.h"
#include "step_equivalence.h"
#include "test_support.h"

using namespace kiln;
using kiln::testing::gradcheck;
using kiln::testing::random_input;

namespace {

using In = const std::vector<Tensor>&;

std::vector<double> doubles(const Tensor& t) { return t.to_vector<double>(); }

// [rows, C] of C channels with different means and spreads.
Tensor channel_data(int64_t rows, int64_t C, uint64_t seed) {
  Generator gen(seed);
  std::vector<float> v(static_cast<std::size_t>(rows * C));
  for (std::size_t i = 0; i < v.size(); ++i) {
    const double c = static_cast<double>(static_cast<int64_t>(i) % C);
    v[i] = static_cast<float>(0.5 * c + (0.5 + 0.3 * c) * gen.normal());
  }
  return Tensor::from_vector(v, {rows, C});
}

// y, mean, variance, dx, dgamma, dbeta of the fused op (relu inside) or of relu after it, on `device`.
std::vector<std::vector<double>> run_op(const Tensor& x0, const Tensor& dy, const Tensor& gamma0, const Tensor& beta0,
                                        bool inside, Device device) {
  Tensor x = x0.to(device).detach(), gamma = gamma0.to(device).detach(), beta = beta0.to(device).detach();
  for (Tensor* t : {&x, &gamma, &beta}) t->set_requires_grad(true);
  FusedBatchNorm f = fused_batch_norm(x, gamma, beta, 1e-3, inside);
  const Tensor y = inside ? f.y : relu(f.y);
  sum(mul(y, dy.to(device))).backward();
  return {doubles(y),        doubles(f.mean),       doubles(f.variance),
          doubles(x.grad()), doubles(gamma.grad()), doubles(beta.grad())};
}

void expect_op_equals_relu_after(Device device) {
  const int64_t C = 40;  // more than one 32-channel tile of the GPU's sums
  for (const DType dtype : {DType::Float64, DType::Float32, DType::BFloat16, DType::Float16}) {
    const DType stats = dtype == DType::Float64 ? DType::Float64 : DType::Float32;
    const Tensor x = channel_data(1200, C, 61).astype(dtype);
    Generator gen(62);
    const Tensor dy = Tensor::uniform(x.shape(), -1, 1, gen).astype(dtype);
    const Tensor gamma = Tensor::uniform({C}, 0.5, 2, gen, stats), beta = Tensor::uniform({C}, -1, 1, gen, stats);
    const auto after = run_op(x, dy, gamma, beta, false, device), inside = run_op(x, dy, gamma, beta, true, device);
    const char* names[] = {"y", "mean", "variance", "dx", "dgamma", "dbeta"};
    for (std::size_t i = 0; i < after.size(); ++i)
      EXPECT_EQ(inside[i], after[i]) << names[i] << " " << dtype_name(dtype) << " on " << device.str();
    // Both sides of the ReLU in plenty: a wrong mask would show.
    int zeros = 0, positive = 0;
    for (const double v : after[0]) ++(v == 0 ? zeros : positive);
    EXPECT_GT(zeros, 10000) << dtype_name(dtype);
    EXPECT_GT(positive, 10000) << dtype_name(dtype);
  }
}

// Counts its calls: a model that fuses it into the layer before never calls it.
class CountingRelu : public layers::Activation {
 public:
  CountingRelu() : Activation("relu") {}
  Tensor call(const Tensor& x, bool training) override {
    ++calls;
    return Activation::call(x, training);
  }
  int calls = 0;
};

// Dense -> BatchNormalization -> relu -> Dense; `relu` stands between the two last.
Sequential counted_model(const std::shared_ptr<CountingRelu>& relu, layers::BatchNormalizationOptions bn = {}) {
  utils::set_random_seed(71);
  Sequential model(
      {layers::Dense(6, {.input_shape = {4}}), layers::BatchNormalization(bn), LayerRef(relu), layers::Dense(1)});
  model.compile("sgd", "mean_squared_error");
  return model;
}

std::pair<Tensor, Tensor> regression_data() {
  Generator gen(72);
  return {Tensor::uniform({16, 4}, -1, 2, gen), Tensor::uniform({16, 1}, -1, 1, gen)};
}

// Conv2D -> BatchNormalization -> ReLU -> Flatten -> Dense, the ReLU alone after the normalization
// (fused in training) or behind a linear Activation (not fused: the two layers run apart).
Sequential conv_bn_relu(bool apart, Device device) {
  set_default_device(device);
  utils::set_random_seed(81);
  std::vector<LayerRef> stack{layers::Conv2D(6, {3, 3}, {.use_bias = false, .input_shape = {8, 8, 3}}),
                              layers::BatchNormalization()};
  if (apart) stack.emplace_back(layers::Activation("linear"));
  for (const LayerRef& l : {LayerRef(layers::Activation("relu")), LayerRef(layers::Flatten()),
                            LayerRef(layers::Dense(4, {.dtype = "float32"}))})
    stack.push_back(l);
  Sequential model(stack);
  set_default_device(Device::cpu());
  model.compile(optimizers::SGD({.learning_rate = 0.05, .momentum = 0.9}),
                losses::SparseCategoricalCrossentropy({.from_logits = true}));
  return model;
}

// Every weight (trainable, then the moving statistics) and the losses after training on `device`.
std::vector<std::vector<double>> trained(bool apart, Device device) {
  Generator gen(82);
  const Tensor x = Tensor::uniform({24, 8, 8, 3}, 0, 1, gen);
  std::vector<int32_t> labels(24);
  for (std::size_t i = 0; i < labels.size(); ++i) labels[i] = static_cast<int32_t>(i % 4);
  Sequential model = conv_bn_relu(apart, device);
  utils::set_random_seed(83);
  std::vector<std::vector<double>> out{
      model.fit(x, Tensor::from_vector(labels), {.batch_size = 8, .epochs = 2, .verbose = 0}).history.at("loss")};
  for (const auto& group : {model.trainable_weights(), model.non_trainable_weights()})
    for (const Tensor& w : group) out.push_back(doubles(w));
  return out;
}

void expect_fused_training_equals_apart(Device device) {
  const kiln::testing::RestoreGlobalPolicy restore;
  for (const char* policy : {"float32", "mixed_bfloat16"}) {
    mixed_precision::set_global_policy(policy);
    const auto apart = trained(true, device), fused = trained(false, device);
    ASSERT_EQ(fused.size(), apart.size());
    for (std::size_t i = 0; i < apart.size(); ++i)
      EXPECT_EQ(fused[i], apart[i]) << (i == 0 ? "losses" : "weight " + std::to_string(i - 1)) << " under " << policy
                                    << " on " << device.str();
  }
}

}  // namespace

TEST(BatchNormRelu, OpEqualsReluAfterBitForBit) { expect_op_equals_relu_after(Device::cpu()); }

TEST(BatchNormRelu, GradientsMatchCentralDifferences) {
  const auto fused = [](In in) { return fused_batch_norm(in[0], in[1], in[2], 1e-3, true).y; };
  EXPECT_TRUE(gradcheck(fused, {random_input({6, 4}, 91, -2, 3), random_input({4}, 92), random_input({4}, 93)}));
  EXPECT_TRUE(gradcheck(fused, {random_input({2, 3, 2, 3}, 94), random_input({3}, 95), random_input({3}, 96)}));
  const auto bare = [](In in) { return fused_batch_norm(in[0], Tensor(), Tensor(), 1e-3, true).y; };
  EXPECT_TRUE(gradcheck(bare, {random_input({5, 2, 3}, 97)}));
}

TEST(BatchNormRelu, ModelRunsTheReluInsideTheNormalizationInTraining) {
  const auto [x, y] = regression_data();
  auto relu = std::make_shared<CountingRelu>();
  Sequential model = counted_model(relu);
  model.fit(x, y, {.batch_size = 8, .epochs = 1, .verbose = 0});
  EXPECT_EQ(relu->calls, 0) << "fit should run the ReLU inside BatchNormalization";
  model.predict(x, {.verbose = 0});  // inference normalizes with the moving statistics, then the ReLU
  EXPECT_GT(relu->calls, 0);
}

TEST(BatchNormRelu, LayersRunApartWhereTheirValuesCouldTell) {
  const auto [x, y] = regression_data();
  const auto calls_in_fit = [&](Sequential& model, const std::shared_ptr<CountingRelu>& relu, FitOptions o = {}) {
    o.batch_size = 8, o.epochs = 1, o.verbose = 0;
    model.fit(x, y, o);
    return relu->calls;
  };
  {  // a frozen layer normalizes with its moving statistics
    auto relu = std::make_shared<CountingRelu>();
    Sequential model = counted_model(relu);
    model.layers()[1]->set_trainable(false);
    model.compile("sgd", "mean_squared_error");
    EXPECT_EQ(calls_in_fit(model, relu), 2);
  }
  {  // synchronized statistics run another op
    auto relu = std::make_shared<CountingRelu>();
    Sequential model = counted_model(relu, {.synchronized = true});
    EXPECT_EQ(calls_in_fit(model, relu), 2);
  }
  {  // check_numerics sees every layer's own output
    auto relu = std::make_shared<CountingRelu>();
    Sequential model = counted_model(relu);
    EXPECT_EQ(calls_in_fit(model, relu, {.check_numerics = true}), 2);
  }
  {  // another dtype policy: the ReLU layer would cast its input
    auto relu = std::make_shared<CountingRelu>();
    relu->set_dtype_policy("mixed_bfloat16");
    Sequential model = counted_model(relu);
    EXPECT_EQ(calls_in_fit(model, relu), 2);
  }
  {  // the normalized values are read by another layer too (and are a model output)
    utils::set_random_seed(73);
    auto relu = std::make_shared<CountingRelu>();
    const SymbolicTensor in = Input({4});
    const SymbolicTensor h = layers::BatchNormalization()(layers::Dense(6)(in));
    Model model({in}, {layers::Dense(1)((*relu)(h)), layers::Dense(1)(h)});
    model.compile("sgd", "mean_squared_error");
    model.fit({x}, {y, y}, {.batch_size = 8, .epochs = 1, .verbose = 0});
    EXPECT_EQ(relu->calls, 2);
  }
}

TEST(BatchNormRelu, FusedTrainingEqualsTheLayersApartBitForBit) { expect_fused_training_equals_apart(Device::cpu()); }

TEST(CudaBatchNormRelu, OpEqualsReluAfterBitForBit) {
  REQUIRE_GPU();
  expect_op_equals_relu_after(Device::gpu());
}

// The GPU's fused op against the CPU's, at fused_batch_norm's own GPU tolerances (its test says why).
TEST(CudaBatchNormRelu, OpMatchesTheCpu) {
  REQUIRE_GPU();
  for (const DType dtype : {DType::Float32, DType::BFloat16}) {
    const double out_tol = dtype == DType::Float32 ? 1e-5 : 1.0 / 128,
                 dx_tol = dtype == DType::Float32 ? 1e-4 : out_tol;
    const Tensor x = channel_data(3000, 40, 63).astype(dtype);
    Generator gen(64);
    const Tensor dy = Tensor::uniform(x.shape(), -1, 1, gen).astype(dtype);
    const Tensor gamma = Tensor::uniform({40}, 0.5, 2, gen), beta = Tensor::uniform({40}, -1, 1, gen);
    const auto cpu = run_op(x, dy, gamma, beta, true, Device::cpu());
    const auto gpu = run_op(x, dy, gamma, beta, true, Device::gpu());
    const double tols[] = {out_tol, 1e-5, 1e-5, dx_tol, 1e-4, 1e-4};
    const char* names[] = {"y", "mean", "variance", "dx", "dgamma", "dbeta"};
    for (std::size_t i = 0; i < cpu.size(); ++i) {
      ASSERT_EQ(gpu[i].size(), cpu[i].size());
      for (std::size_t j = 0; j < cpu[i].size(); ++j)
        ASSERT_NEAR(gpu[i][j], cpu[i][j], tols[i] * std::max(1.0, std::abs(cpu[i][j])))
            << names[i] << " " << dtype_name(dtype) << " at " << j;
    }
  }
}

TEST(CudaBatchNormRelu, FusedTrainingEqualsTheLayersApartBitForBit) {
  REQUIRE_GPU();
  expect_fused_training_equals_apart(Device::gpu());
}

TEST(CudaBatchNormRelu, RecordedStepsTrainAsEagerStepsBitForBit) {
  EXPECT_RECORDED_STEP_EQUALS_EAGER([] { return conv_bn_relu(false, Device::gpu()); });
}
