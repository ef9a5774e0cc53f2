// BatchNormalization then an activation as one op: fused_batch_norm(..., activation) equals the
// activation after fused_batch_norm bit for bit, forward and backward, for relu, gelu and silu and
// every floating dtype on the CPU and the GPU; a model runs a BatchNormalization and the Activation
// layer after it as that op in training, only where the two layers' values cannot tell, and trains
// bit for bit as the two layers apart.
#include <gtest/gtest.h>

#include <vector>

#include "gradcheck.h"
#include "kiln/kiln.h"
#include "step_equivalence.h"
#include "test_support.h"

using namespace kiln;
using kiln::testing::gradcheck;
using kiln::testing::message_of;
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

// The activations fused_batch_norm applies in its own passes.
const char* const kFused[] = {"relu", "gelu", "silu"};

// y, mean, variance, dx, dgamma, dbeta of the fused op (`activation` inside) or of the activation
// after it, on `device`; an undefined gamma or beta stands for none.
std::vector<std::vector<double>> run_op(const Tensor& x0, const Tensor& dy, const Tensor& gamma0, const Tensor& beta0,
                                        const std::string& activation, bool inside, Device device) {
  const auto leaf = [&](const Tensor& t) {
    if (!t.defined()) return Tensor();
    Tensor l = t.to(device).detach();
    l.set_requires_grad(true);
    return l;
  };
  Tensor x = leaf(x0), gamma = leaf(gamma0), beta = leaf(beta0);
  FusedBatchNorm f = fused_batch_norm(x, gamma, beta, 1e-3, inside ? activation : "");
  const Tensor y = inside ? f.y : activations::apply(activation, f.y);
  sum(mul(y, dy.to(device))).backward();
  const auto grad = [](const Tensor& t) { return t.defined() ? doubles(t.grad()) : std::vector<double>(); };
  return {doubles(y), doubles(f.mean), doubles(f.variance), grad(x), grad(gamma), grad(beta)};
}

void expect_op_equals_activation_after(Device device) {
  const int64_t C = 40;  // more than one 32-channel tile of the GPU's sums
  for (const char* activation : kFused)
    for (const DType dtype : {DType::Float64, DType::Float32, DType::BFloat16, DType::Float16}) {
      const DType stats = dtype == DType::Float64 ? DType::Float64 : DType::Float32;
      const Tensor x = channel_data(1200, C, 61).astype(dtype);
      Generator gen(62);
      const Tensor dy = Tensor::uniform(x.shape(), -1, 1, gen).astype(dtype);
      const Tensor gamma = Tensor::uniform({C}, 0.5, 2, gen, stats), beta = Tensor::uniform({C}, -1, 1, gen, stats);
      // With gamma and beta, and without (the backward recomputes the activation's input from both).
      for (const bool affine : {true, false}) {
        const Tensor g = affine ? gamma : Tensor(), b = affine ? beta : Tensor();
        const auto after = run_op(x, dy, g, b, activation, false, device),
                   inside = run_op(x, dy, g, b, activation, true, device);
        const char* names[] = {"y", "mean", "variance", "dx", "dgamma", "dbeta"};
        for (std::size_t i = 0; i < after.size(); ++i)
          EXPECT_EQ(inside[i], after[i]) << names[i] << " " << activation << " " << dtype_name(dtype)
                                         << (affine ? "" : " without gamma and beta") << " on " << device.str();
        // Both sides of 0 in plenty, where the activations bend: a wrong input or mask would show.
        int negative = 0, positive = 0;
        for (const double v : after[0]) ++(v <= 0 ? negative : positive);
        EXPECT_GT(negative, 10000) << activation << " " << dtype_name(dtype);
        EXPECT_GT(positive, 10000) << activation << " " << dtype_name(dtype);
      }
    }
}

// Counts its calls: a model that fuses it into the layer before never calls it.
class CountingActivation : public layers::Activation {
 public:
  explicit CountingActivation(const std::string& activation = "relu") : Activation(activation) {}
  Tensor call(const Tensor& x, bool training) override {
    ++calls;
    return Activation::call(x, training);
  }
  int calls = 0;
};

// Dense -> BatchNormalization -> `act` -> Dense.
Sequential counted_model(const std::shared_ptr<CountingActivation>& act, layers::BatchNormalizationOptions bn = {}) {
  utils::set_random_seed(71);
  Sequential model(
      {layers::Dense(6, {.input_shape = {4}}), layers::BatchNormalization(bn), LayerRef(act), layers::Dense(1)});
  model.compile("sgd", "mean_squared_error");
  return model;
}

std::pair<Tensor, Tensor> regression_data() {
  Generator gen(72);
  return {Tensor::uniform({16, 4}, -1, 2, gen), Tensor::uniform({16, 1}, -1, 1, gen)};
}

// Conv2D -> BatchNormalization -> `activation` -> Flatten -> Dense, the activation alone after the
// normalization (fused in training) or behind a linear Activation (not fused: the layers run apart).
Sequential conv_bn_activation(const std::string& activation, bool apart, Device device) {
  set_default_device(device);
  utils::set_random_seed(81);
  std::vector<LayerRef> stack{layers::Conv2D(6, {3, 3}, {.use_bias = false, .input_shape = {8, 8, 3}}),
                              layers::BatchNormalization()};
  if (apart) stack.emplace_back(layers::Activation("linear"));
  for (const LayerRef& l : {LayerRef(layers::Activation(activation)), LayerRef(layers::Flatten()),
                            LayerRef(layers::Dense(4, {.dtype = "float32"}))})
    stack.push_back(l);
  Sequential model(stack);
  set_default_device(Device::cpu());
  model.compile(optimizers::SGD({.learning_rate = 0.05, .momentum = 0.9}),
                losses::SparseCategoricalCrossentropy({.from_logits = true}));
  return model;
}

// Every weight (trainable, then the moving statistics) and the losses after training on `device`.
std::vector<std::vector<double>> trained(const std::string& activation, bool apart, Device device) {
  Generator gen(82);
  const Tensor x = Tensor::uniform({24, 8, 8, 3}, 0, 1, gen);
  std::vector<int32_t> labels(24);
  for (std::size_t i = 0; i < labels.size(); ++i) labels[i] = static_cast<int32_t>(i % 4);
  Sequential model = conv_bn_activation(activation, apart, device);
  utils::set_random_seed(83);
  std::vector<std::vector<double>> out{
      model.fit(x, Tensor::from_vector(labels), {.batch_size = 8, .epochs = 2, .verbose = 0}).history.at("loss")};
  for (const auto& group : {model.trainable_weights(), model.non_trainable_weights()})
    for (const Tensor& w : group) out.push_back(doubles(w));
  return out;
}

void expect_fused_training_equals_apart(Device device) {
  const kiln::testing::RestoreGlobalPolicy restore;
  for (const char* activation : {"relu", "gelu"})
    for (const char* policy : {"float32", "mixed_bfloat16"}) {
      mixed_precision::set_global_policy(policy);
      const auto apart = trained(activation, true, device), fused = trained(activation, false, device);
      ASSERT_EQ(fused.size(), apart.size());
      for (std::size_t i = 0; i < apart.size(); ++i)
        EXPECT_EQ(fused[i], apart[i]) << (i == 0 ? "losses" : "weight " + std::to_string(i - 1)) << " with "
                                      << activation << " under " << policy << " on " << device.str();
    }
}

}  // namespace

TEST(BatchNormActivation, OpEqualsTheActivationAfterBitForBit) { expect_op_equals_activation_after(Device::cpu()); }

TEST(BatchNormActivation, GradientsMatchCentralDifferences) {
  for (const std::string activation : kFused) {
    SCOPED_TRACE(activation);
    const auto fused = [&](In in) { return fused_batch_norm(in[0], in[1], in[2], 1e-3, activation).y; };
    EXPECT_TRUE(gradcheck(fused, {random_input({6, 4}, 91, -2, 3), random_input({4}, 92), random_input({4}, 93)}));
    EXPECT_TRUE(gradcheck(fused, {random_input({2, 3, 2, 3}, 94), random_input({3}, 95), random_input({3}, 96)}));
    const auto bare = [&](In in) { return fused_batch_norm(in[0], Tensor(), Tensor(), 1e-3, activation).y; };
    EXPECT_TRUE(gradcheck(bare, {random_input({5, 2, 3}, 97)}));
  }
}

TEST(BatchNormActivation, OtherActivationsAreRefusedByName) {
  const Tensor x = channel_data(8, 3, 98);
  // "linear" and "" are the normalization alone.
  EXPECT_EQ(doubles(fused_batch_norm(x, Tensor(), Tensor(), 1e-3, "linear").y),
            doubles(fused_batch_norm(x, Tensor(), Tensor(), 1e-3).y));
  EXPECT_EQ(doubles(fused_batch_norm(x, Tensor(), Tensor(), 1e-3, "swish").y),
            doubles(fused_batch_norm(x, Tensor(), Tensor(), 1e-3, "silu").y));
  for (const std::string other : {"tanh", "softmax", "no_such_activation"})
    EXPECT_EQ(message_of([&] { fused_batch_norm(x, Tensor(), Tensor(), 1e-3, other); }),
              "[fused_batch_norm] activation '" + other +
                  "' is not applied in the normalization's passes; expected gelu, relu, silu, swish, linear or none "
                  "(apply others after it)");
  EXPECT_TRUE(fused_batch_norm_applies("gelu"));
  EXPECT_FALSE(fused_batch_norm_applies("tanh"));
}

TEST(BatchNormActivation, ModelRunsTheActivationInsideTheNormalizationInTraining) {
  const auto [x, y] = regression_data();
  for (const char* name : {"relu", "gelu", "swish"}) {
    auto act = std::make_shared<CountingActivation>(name);
    Sequential model = counted_model(act);
    model.fit(x, y, {.batch_size = 8, .epochs = 1, .verbose = 0});
    EXPECT_EQ(act->calls, 0) << "fit should run " << name << " inside BatchNormalization";
    model.predict(x, {.verbose = 0});  // inference normalizes with the moving statistics, then the activation
    EXPECT_GT(act->calls, 0) << name;
  }
}

TEST(BatchNormActivation, LayersRunApartWhereTheirValuesCouldTell) {
  const auto [x, y] = regression_data();
  const auto calls_in_fit = [&](Sequential& model, const std::shared_ptr<CountingActivation>& act, FitOptions o = {}) {
    o.batch_size = 8, o.epochs = 1, o.verbose = 0;
    model.fit(x, y, o);
    return act->calls;
  };
  {  // an activation the normalization does not apply itself
    auto act = std::make_shared<CountingActivation>("tanh");
    Sequential model = counted_model(act);
    EXPECT_EQ(calls_in_fit(model, act), 2);
  }
  {  // a frozen layer normalizes with its moving statistics
    auto act = std::make_shared<CountingActivation>();
    Sequential model = counted_model(act);
    model.layers()[1]->set_trainable(false);
    model.compile("sgd", "mean_squared_error");
    EXPECT_EQ(calls_in_fit(model, act), 2);
  }
  {  // synchronized statistics run another op
    auto act = std::make_shared<CountingActivation>();
    Sequential model = counted_model(act, {.synchronized = true});
    EXPECT_EQ(calls_in_fit(model, act), 2);
  }
  {  // check_numerics sees every layer's own output
    auto act = std::make_shared<CountingActivation>();
    Sequential model = counted_model(act);
    EXPECT_EQ(calls_in_fit(model, act, {.check_numerics = true}), 2);
  }
  {  // another dtype policy: the activation layer would cast its input
    auto act = std::make_shared<CountingActivation>();
    act->set_dtype_policy("mixed_bfloat16");
    Sequential model = counted_model(act);
    EXPECT_EQ(calls_in_fit(model, act), 2);
  }
  {  // the normalized values are read by another layer too (and are a model output)
    utils::set_random_seed(73);
    auto act = std::make_shared<CountingActivation>();
    const SymbolicTensor in = Input({4});
    const SymbolicTensor h = layers::BatchNormalization()(layers::Dense(6)(in));
    Model model({in}, {layers::Dense(1)((*act)(h)), layers::Dense(1)(h)});
    model.compile("sgd", "mean_squared_error");
    model.fit({x}, {y, y}, {.batch_size = 8, .epochs = 1, .verbose = 0});
    EXPECT_EQ(act->calls, 2);
  }
}

TEST(BatchNormActivation, FusedTrainingEqualsTheLayersApartBitForBit) {
  expect_fused_training_equals_apart(Device::cpu());
}

TEST(CudaBatchNormActivation, OpEqualsTheActivationAfterBitForBit) {
  REQUIRE_GPU();
  expect_op_equals_activation_after(Device::gpu());
}

// The GPU's fused op against the CPU's, at fused_batch_norm's own GPU tolerances (its test says why).
TEST(CudaBatchNormActivation, OpMatchesTheCpu) {
  REQUIRE_GPU();
  for (const char* activation : kFused)
    for (const DType dtype : {DType::Float32, DType::BFloat16}) {
      const double out_tol = dtype == DType::Float32 ? 1e-5 : 1.0 / 128,
                   dx_tol = dtype == DType::Float32 ? 1e-4 : out_tol;
      const Tensor x = channel_data(3000, 40, 63).astype(dtype);
      Generator gen(64);
      const Tensor dy = Tensor::uniform(x.shape(), -1, 1, gen).astype(dtype);
      const Tensor gamma = Tensor::uniform({40}, 0.5, 2, gen), beta = Tensor::uniform({40}, -1, 1, gen);
      const auto cpu = run_op(x, dy, gamma, beta, activation, true, Device::cpu());
      const auto gpu = run_op(x, dy, gamma, beta, activation, true, Device::gpu());
      const double tols[] = {out_tol, 1e-5, 1e-5, dx_tol, 1e-4, 1e-4};
      const char* names[] = {"y", "mean", "variance", "dx", "dgamma", "dbeta"};
      for (std::size_t i = 0; i < cpu.size(); ++i) {
        ASSERT_EQ(gpu[i].size(), cpu[i].size());
        for (std::size_t j = 0; j < cpu[i].size(); ++j)
          ASSERT_NEAR(gpu[i][j], cpu[i][j], tols[i] * std::max(1.0, std::abs(cpu[i][j])))
              << names[i] << " " << activation << " " << dtype_name(dtype) << " at " << j;
      }
    }
}

TEST(CudaBatchNormActivation, FusedTrainingEqualsTheLayersApartBitForBit) {
  REQUIRE_GPU();
  expect_fused_training_equals_apart(Device::gpu());
}

TEST(CudaBatchNormActivation, RecordedStepsTrainAsEagerStepsBitForBit) {
  EXPECT_RECORDED_STEP_EQUALS_EAGER([] { return conv_bn_activation("gelu", false, Device::gpu()); });
}
