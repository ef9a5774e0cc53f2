// BatchNormalization: Keras' formulas in training and inference, the moving statistics against a
// reference computed here, gradients in float64, weights and summary counts, freezing, save/load,
// config and bad input; on a GPU the CPU's numbers and recorded steps equal to eager ones.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <sstream>

#include "gradcheck.h"
#include "kiln/kiln.h"
#include "step_equivalence.h"
#include "test_support.h"

using namespace kiln;
using kiln::testing::gradcheck;
using kiln::testing::message_of;
using kiln::testing::process_id;
using kiln::testing::random_input;
namespace fs = std::filesystem;

namespace {

using In = const std::vector<Tensor>&;

std::vector<float> floats(const Tensor& t) { return t.to_vector<float>(); }
std::vector<double> doubles(const Tensor& t) { return t.to_vector<double>(); }

Tensor weight_of(const Layer& layer, const std::string& name) {
  for (const auto& [n, w] : layer.named_weights())
    if (n == name) return w;
  throw Error("test", "no weight " + name);
}

// Per-channel mean and biased variance of x [..., C], in double (NumPy's x.mean(0), x.var(0)).
std::pair<std::vector<double>, std::vector<double>> reference_moments(const std::vector<double>& x, int64_t C) {
  const int64_t rows = static_cast<int64_t>(x.size()) / C;
  std::vector<double> mean(C, 0.0), var(C, 0.0);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < C; ++c) mean[c] += x[r * C + c] / static_cast<double>(rows);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < C; ++c) var[c] += std::pow(x[r * C + c] - mean[c], 2) / static_cast<double>(rows);
  return {mean, var};
}

// gamma (x - mean) / sqrt(var + eps) + beta, per channel of the last axis.
std::vector<double> reference_normalize(const std::vector<double>& x, const std::vector<double>& mean,
                                        const std::vector<double>& var, const std::vector<double>& gamma,
                                        const std::vector<double>& beta, double eps) {
  const std::size_t C = mean.size();
  std::vector<double> y(x.size());
  for (std::size_t i = 0; i < x.size(); ++i) {
    const std::size_t c = i % C;
    y[i] = gamma[c] * (x[i] - mean[c]) / std::sqrt(var[c] + eps) + beta[c];
  }
  return y;
}

void expect_near(const std::vector<double>& got, const std::vector<double>& want, double tol, const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (std::size_t i = 0; i < want.size(); ++i)
    EXPECT_NEAR(got[i], want[i], tol * std::max(1.0, std::abs(want[i]))) << what << " at " << i;
}

// Channels with different means and spreads, so that every statistic is visible.
Tensor channel_data(const Shape& shape, uint64_t seed) {
  Generator gen(seed);
  const int64_t C = shape[-1];
  std::vector<float> v(static_cast<std::size_t>(shape.numel()));
  for (std::size_t i = 0; i < v.size(); ++i) {
    const int64_t c = static_cast<int64_t>(i) % C;
    v[i] = static_cast<float>(1.5 * static_cast<double>(c) - 1.0 + (0.5 + static_cast<double>(c)) * gen.normal());
  }
  return Tensor::from_vector(v, shape);
}

std::shared_ptr<layers::BatchNormalization> built_bn(const Shape& shape, layers::BatchNormalizationOptions o = {}) {
  auto layer = std::make_shared<layers::BatchNormalization>(std::move(o));
  Generator gen(0);
  layer->build(shape, gen, Device::cpu());
  return layer;
}

// Dense -> BatchNormalization -> Dense, compiled.
Sequential bn_model(uint64_t seed, const Optimizer& opt = optimizers::SGD({.learning_rate = 0.05})) {
  utils::set_random_seed(seed);
  Sequential model(
      {layers::Dense(8, {.input_shape = {4}}), layers::BatchNormalization({.momentum = 0.9}), layers::Dense(2)});
  model.compile(opt, losses::MeanSquaredError());
  return model;
}

std::pair<Tensor, Tensor> regression_data(int64_t n) {
  Generator gen(42);
  return {Tensor::uniform({n, 4}, -1, 3, gen), Tensor::uniform({n, 2}, -1, 1, gen)};
}

class BatchNormalizationIo : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("kiln_bn_" + std::to_string(process_id()) + "_" +
                                        std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }
  fs::path dir_;
};

}  // namespace

TEST(BatchNormalization, WeightsHaveKerasNamesOrderAndRoles) {
  auto bn = built_bn({5, 3});
  std::vector<std::string> names;
  for (const auto& [n, w] : bn->named_weights()) {
    names.push_back(n);
    EXPECT_EQ(w.shape(), Shape{3}) << n;
  }
  EXPECT_EQ(names, (std::vector<std::string>{"gamma", "beta", "moving_mean", "moving_variance"}));
  EXPECT_EQ(floats(weight_of(*bn, "gamma")), std::vector<float>(3, 1.0f));
  EXPECT_EQ(floats(weight_of(*bn, "beta")), std::vector<float>(3, 0.0f));
  EXPECT_EQ(floats(weight_of(*bn, "moving_mean")), std::vector<float>(3, 0.0f));
  EXPECT_EQ(floats(weight_of(*bn, "moving_variance")), std::vector<float>(3, 1.0f));
  ASSERT_EQ(bn->trainable_weights().size(), 2u);
  EXPECT_TRUE(bn->trainable_weights()[0].is_same(weight_of(*bn, "gamma")));
  ASSERT_EQ(bn->non_trainable_weights().size(), 2u);
  EXPECT_TRUE(bn->non_trainable_weights()[0].is_same(weight_of(*bn, "moving_mean")));
  EXPECT_FALSE(weight_of(*bn, "moving_mean").requires_grad());
  auto plain = built_bn({3}, {.center = false, .scale = false});
  ASSERT_EQ(plain->named_weights().size(), 2u);
  EXPECT_EQ(plain->named_weights()[0].first, "moving_mean");
  auto centered = built_bn({3}, {.scale = false, .beta_initializer = "ones"});
  EXPECT_EQ(centered->named_weights()[0].first, "beta");
  EXPECT_EQ(floats(weight_of(*centered, "beta")), std::vector<float>(3, 1.0f));
}

// keras/src/layers/normalization/batch_normalization.py: in training, the batch's mean and biased
// variance (tf.nn.moments) normalize, and moving = moving * momentum + stat * (1 - momentum).
TEST(BatchNormalization, TrainingFollowsKerasFormulas) {
  const double eps = 1e-3, momentum = 0.99;
  auto bn = built_bn({2, 3});
  bn->set_weight("gamma", Tensor::from_vector<float>({0.5f, 2.0f, -1.0f}));
  bn->set_weight("beta", Tensor::from_vector<float>({0.1f, -0.2f, 0.3f}));
  const Tensor x = channel_data({5, 2, 3}, 1);  // 10 rows per channel
  const Tensor y = bn->call(x, true);
  EXPECT_EQ(y.shape(), x.shape());
  const auto xv = doubles(x);
  const auto [mean, var] = reference_moments(xv, 3);
  expect_near(doubles(y), reference_normalize(xv, mean, var, {0.5, 2.0, -1.0}, {0.1, -0.2, 0.3}, eps), 1e-5, "y");
  std::vector<double> want_mm(3), want_mv(3), unbiased_mv(3);
  for (int c = 0; c < 3; ++c) {
    want_mm[c] = 0.0 * momentum + mean[c] * (1 - momentum);
    want_mv[c] = 1.0 * momentum + var[c] * (1 - momentum);
    unbiased_mv[c] = 1.0 * momentum + var[c] * 10.0 / 9.0 * (1 - momentum);
  }
  const auto got_mv = doubles(weight_of(*bn, "moving_variance"));
  expect_near(doubles(weight_of(*bn, "moving_mean")), want_mm, 1e-6, "moving_mean");
  expect_near(got_mv, want_mv, 1e-6, "moving_variance");
  EXPECT_GT(std::abs(got_mv[2] - unbiased_mv[2]), 1e-3) << "the biased variance goes in, as in Keras";
}

TEST(BatchNormalization, InferenceUsesTheMovingStatisticsAndChangesNothing) {
  const double eps = 1e-2;
  auto bn = built_bn({3}, {.epsilon = eps});
  bn->set_weight("gamma", Tensor::from_vector<float>({0.5f, 2.0f, -1.0f}));
  bn->set_weight("beta", Tensor::from_vector<float>({0.1f, -0.2f, 0.3f}));
  bn->set_weight("moving_mean", Tensor::from_vector<float>({1.0f, -2.0f, 0.25f}));
  bn->set_weight("moving_variance", Tensor::from_vector<float>({4.0f, 0.5f, 2.0f}));
  const Tensor x = channel_data({7, 3}, 2);
  const Tensor y = bn->call(x, false);
  expect_near(
      doubles(y),
      reference_normalize(doubles(x), {1.0, -2.0, 0.25}, {4.0, 0.5, 2.0}, {0.5, 2.0, -1.0}, {0.1, -0.2, 0.3}, eps),
      1e-6, "y");
  EXPECT_EQ(floats(weight_of(*bn, "moving_mean")), (std::vector<float>{1.0f, -2.0f, 0.25f}));
  EXPECT_EQ(floats(weight_of(*bn, "moving_variance")), (std::vector<float>{4.0f, 0.5f, 2.0f}));
}

// fit updates the moving statistics once per step with that batch's statistics: with the layer
// first, its inputs are the data itself, so the reference is computed from x batch by batch.
TEST(BatchNormalization, MovingStatisticsAfterFitEqualAReference) {
  const double momentum = 0.8;
  utils::set_random_seed(1);
  Sequential model({layers::BatchNormalization({.momentum = momentum, .input_shape = {3}}), layers::Dense(1)});
  model.compile(optimizers::SGD(), losses::MeanSquaredError());
  const Tensor x = channel_data({50, 3}, 3);
  Generator gen(4);
  const Tensor y = Tensor::uniform({50, 1}, -1, 1, gen);
  const int64_t batch = 8;  // 7 steps per epoch, the last one of 2 rows
  model.fit(x, y, {.batch_size = batch, .epochs = 3, .verbose = 0, .shuffle = false});
  std::vector<double> mm(3, 0.0), mv(3, 1.0);
  const auto xv = doubles(x);
  for (int epoch = 0; epoch < 3; ++epoch)
    for (int64_t b0 = 0; b0 < 50; b0 += batch) {
      const int64_t b1 = std::min<int64_t>(50, b0 + batch);
      const std::vector<double> xb(xv.begin() + b0 * 3, xv.begin() + b1 * 3);
      const auto [mean, var] = reference_moments(xb, 3);
      for (int c = 0; c < 3; ++c) {
        mm[c] = mm[c] * momentum + mean[c] * (1 - momentum);
        mv[c] = mv[c] * momentum + var[c] * (1 - momentum);
      }
    }
  const Layer& bn = *model.layers()[0];
  expect_near(doubles(weight_of(bn, "moving_mean")), mm, 1e-5, "moving_mean");
  expect_near(doubles(weight_of(bn, "moving_variance")), mv, 1e-5, "moving_variance");
  // evaluate and predict run in inference mode: the statistics stay.
  const auto before = floats(weight_of(bn, "moving_mean"));
  model.evaluate(x, y, {.verbose = 0});
  model.predict(x);
  EXPECT_EQ(floats(weight_of(bn, "moving_mean")), before);
}

TEST(BatchNormalization, GradientsMatchCentralDifferences) {
  const auto training = [](In in) {
    const auto [mean, var] = moments(in[0]);
    return batch_normalization(in[0], mean, var, in[2], in[1], 1e-3);
  };
  EXPECT_TRUE(gradcheck(training, {random_input({6, 4}, 1, -2, 3), random_input({4}, 2), random_input({4}, 3)}));
  EXPECT_TRUE(gradcheck(training, {random_input({2, 3, 2, 3}, 4), random_input({3}, 5), random_input({3}, 6)}));
  // A batch of one row per channel: zero variance, epsilon alone keeps the division finite.
  EXPECT_TRUE(gradcheck(training, {random_input({1, 3}, 7), random_input({3}, 8), random_input({3}, 9)}));
  const auto bare = [](In in) {
    const auto [mean, var] = moments(in[0]);
    return batch_normalization(in[0], mean, var, Tensor(), Tensor(), 1e-3);
  };
  EXPECT_TRUE(gradcheck(bare, {random_input({5, 2, 3}, 10)}));
  const auto inference = [](In in) { return batch_normalization(in[0], in[1], in[2], in[3], in[4], 1e-3); };
  EXPECT_TRUE(gradcheck(inference, {random_input({4, 3}, 11), random_input({3}, 12), random_input({3}, 13, 0.5, 1.5),
                                    random_input({3}, 14), random_input({3}, 15)}));
  const auto moments_only = [](In in) {
    const auto [mean, var] = moments(in[0]);
    return add(mean, mul(var, 3.0));
  };
  EXPECT_TRUE(gradcheck(moments_only, {random_input({7, 2}, 16)}));
}

// fused_batch_norm, the training path: its gradients in float64, through the statistics too.
TEST(BatchNormalization, FusedGradientsMatchCentralDifferences) {
  const auto fused = [](In in) { return fused_batch_norm(in[0], in[1], in[2], 1e-3).y; };
  EXPECT_TRUE(gradcheck(fused, {random_input({6, 4}, 21, -2, 3), random_input({4}, 22), random_input({4}, 23)}));
  EXPECT_TRUE(gradcheck(fused, {random_input({2, 3, 2, 3}, 24), random_input({3}, 25), random_input({3}, 26)}));
  EXPECT_TRUE(gradcheck(fused, {random_input({1, 3}, 27), random_input({3}, 28), random_input({3}, 29)}));
  const auto bare = [](In in) { return fused_batch_norm(in[0], Tensor(), Tensor(), 1e-3).y; };
  EXPECT_TRUE(gradcheck(bare, {random_input({5, 2, 3}, 30)}));
  const auto scale_only = [](In in) { return fused_batch_norm(in[0], in[1], Tensor(), 1e-2).y; };
  EXPECT_TRUE(gradcheck(scale_only, {random_input({4, 2}, 31), random_input({2}, 32)}));
}

// The fused op computes the composition's formulas: the same statistics and outputs, and the same
// gradients, in float64 to rounding and in float32 to float32's; on the CPU the forward pass is the
// composition's bit for bit.
TEST(BatchNormalization, FusedEqualsMomentsThenBatchNormalization) {
  for (const DType dtype : {DType::Float64, DType::Float32}) {
    const double tol = dtype == DType::Float64 ? 1e-12 : 2e-5;
    const Tensor x0 = channel_data({3, 40, 7}, 33).astype(dtype);  // 120 rows of 7 channels
    Generator gen(34);
    const Tensor r = Tensor::uniform(x0.shape(), 0.5, 1.5, gen, dtype);
    const Tensor gamma0 = Tensor::uniform({7}, 0.5, 2, gen, dtype), beta0 = Tensor::uniform({7}, -1, 1, gen, dtype);
    const auto run = [&](bool fused) {
      Tensor x = x0.detach(), gamma = gamma0.detach(), beta = beta0.detach();
      for (Tensor* t : {&x, &gamma, &beta}) t->set_requires_grad(true);
      Tensor y, mean, variance;
      if (fused) {
        FusedBatchNorm f = fused_batch_norm(x, gamma, beta, 1e-3);
        EXPECT_FALSE(f.mean.requires_grad() || f.variance.requires_grad());
        y = f.y, mean = f.mean, variance = f.variance;
      } else {
        std::tie(mean, variance) = moments(x);
        y = batch_normalization(x, mean, variance, beta, gamma, 1e-3);
      }
      sum(mul(y, r)).backward();
      return std::vector<std::vector<double>>{doubles(y),        doubles(mean),         doubles(variance),
                                              doubles(x.grad()), doubles(gamma.grad()), doubles(beta.grad())};
    };
    const auto composed = run(false), fused = run(true);
    const char* names[] = {"y", "mean", "variance", "dx", "dgamma", "dbeta"};
    // The CPU's forward pass takes the composition's steps (the same sums, the same roundings):
    // equal bit for bit; the backward's formula is another arrangement of the same derivative.
    for (std::size_t i = 0; i < 3; ++i) EXPECT_EQ(fused[i], composed[i]) << names[i] << " " << dtype_name(dtype);
    for (std::size_t i = 3; i < composed.size(); ++i)
      expect_near(fused[i], composed[i], 10 * tol, std::string(names[i]) + " " + dtype_name(dtype));
  }
}

// A 16-bit input is normalized in float32: y and dx equal the float32 op's on the widened values,
// rounded once; the statistics and the gamma and beta gradients are float32 and equal outright.
TEST(BatchNormalization, FusedSixteenBitInputEqualsFloat32RoundedOnce) {
  for (const DType half : {DType::BFloat16, DType::Float16}) {
    const Tensor x16 = channel_data({300, 5}, 35).astype(half);
    Generator gen(36);
    const Tensor dy16 = Tensor::uniform(x16.shape(), -1, 1, gen).astype(half);
    const Tensor gamma0 = Tensor::uniform({5}, 0.5, 2, gen), beta0 = Tensor::uniform({5}, -1, 1, gen);
    std::vector<std::vector<double>> got[2];
    for (int wide = 0; wide < 2; ++wide) {
      Tensor x = wide ? x16.astype(DType::Float32) : x16.detach(), gamma = gamma0.detach(), beta = beta0.detach();
      for (Tensor* t : {&x, &gamma, &beta}) t->set_requires_grad(true);
      FusedBatchNorm f = fused_batch_norm(x, gamma, beta, 1e-3);
      EXPECT_EQ(f.y.dtype(), x.dtype());
      EXPECT_EQ(f.mean.dtype(), DType::Float32);
      sum(mul(f.y, wide ? dy16.astype(DType::Float32) : dy16)).backward();
      const auto rounded = [&](const Tensor& t) { return doubles(wide ? t.astype(half) : t); };
      got[wide] = {rounded(f.y),      doubles(f.mean),       doubles(f.variance),
                   rounded(x.grad()), doubles(gamma.grad()), doubles(beta.grad())};
    }
    const char* names[] = {"y", "mean", "variance", "dx", "dgamma", "dbeta"};
    for (std::size_t i = 0; i < got[0].size(); ++i)
      EXPECT_EQ(got[0][i], got[1][i]) << names[i] << " " << dtype_name(half);
  }
}

// synchronized_batch_norm as the only replica (the sum leaves its tensor as is): gradients in
// float64, and the numbers of fused_batch_norm.
TEST(BatchNormalization, SynchronizedGradientsMatchCentralDifferences) {
  const auto one = [](const Tensor& x) { return ReplicaSum{.count = x.numel() / x.size(-1), .sum = [](Tensor&) {}}; };
  const auto op = [&](In in) { return synchronized_batch_norm(in[0], in[1], in[2], 1e-3, one(in[0])).y; };
  EXPECT_TRUE(gradcheck(op, {random_input({6, 4}, 41, -2, 3), random_input({4}, 42), random_input({4}, 43)}));
  EXPECT_TRUE(gradcheck(op, {random_input({2, 3, 2, 3}, 44), random_input({3}, 45), random_input({3}, 46)}));
  const auto bare = [&](In in) { return synchronized_batch_norm(in[0], Tensor(), Tensor(), 1e-3, one(in[0])).y; };
  EXPECT_TRUE(gradcheck(bare, {random_input({5, 2, 3}, 47)}));
}

// As the only replica it computes what fused_batch_norm does: the statistics the same way, y and the
// gradients by another arrangement of the same formulas (float64's rounding apart).
TEST(BatchNormalization, SynchronizedAsTheOnlyReplicaEqualsFused) {
  const Tensor x0 = channel_data({4, 10, 3}, 48).astype(DType::Float64);
  Generator gen(49);
  const Tensor r = Tensor::uniform(x0.shape(), 0.5, 1.5, gen, DType::Float64);
  const Tensor gamma0 = Tensor::uniform({3}, 0.5, 2, gen, DType::Float64);
  const Tensor beta0 = Tensor::uniform({3}, -1, 1, gen, DType::Float64);
  int sums = 0;
  const auto run = [&](bool synchronized) {
    Tensor x = x0.detach(), gamma = gamma0.detach(), beta = beta0.detach();
    for (Tensor* t : {&x, &gamma, &beta}) t->set_requires_grad(true);
    FusedBatchNorm f =
        synchronized ? synchronized_batch_norm(x, gamma, beta, 1e-3, {.count = 40, .sum = [&](Tensor&) { ++sums; }})
                     : fused_batch_norm(x, gamma, beta, 1e-3);
    sum(mul(f.y, r)).backward();
    return std::vector<std::vector<double>>{doubles(f.y),      doubles(f.mean),       doubles(f.variance),
                                            doubles(x.grad()), doubles(gamma.grad()), doubles(beta.grad())};
  };
  const auto fused = run(false), synchronized = run(true);
  EXPECT_EQ(sums, 3) << "two sums over the replicas in the forward pass, one in the backward";
  const char* names[] = {"y", "mean", "variance", "dx", "dgamma", "dbeta"};
  for (std::size_t i = 0; i < fused.size(); ++i) expect_near(synchronized[i], fused[i], 1e-12, names[i]);
}

TEST(BatchNormalizationErrors, FusedBatchNormNamesWhatIsWrong) {
  EXPECT_EQ(message_of([] {
              fused_batch_norm(Tensor::zeros({0, 3}), Tensor(), Tensor(), 1e-3);
            }),
            "[fused_batch_norm] input is [0, 3]; expected a non-empty tensor [..., C]");
  EXPECT_EQ(message_of([] {
              fused_batch_norm(Tensor::zeros({2, 3}), Tensor::ones({2}), Tensor(), 1e-3);
            }),
            "[fused_batch_norm] scale is [2]; expected [3], one value per channel of the input's last axis");
  EXPECT_EQ(message_of([] {
              fused_batch_norm(Tensor::zeros({2, 3}), Tensor(), Tensor::zeros({3}, DType::Float64), 1e-3);
            }),
            "[fused_batch_norm] offset is float64 on cpu; expected float32 on cpu for float32 input");
  EXPECT_EQ(message_of([] {
              fused_batch_norm(Tensor::zeros({2, 3}), Tensor(), Tensor(), -1);
            }),
            "[fused_batch_norm] epsilon is -1; expected a finite number >= 0");
}

TEST(BatchNormalizationErrors, SynchronizedBatchNormNamesWhatIsWrong) {
  EXPECT_EQ(message_of([] {
              synchronized_batch_norm(Tensor::zeros({2, 3}), Tensor(), Tensor(), 1e-3, {.count = 2, .sum = nullptr});
            }),
            "[synchronized_batch_norm] no sum over the replicas; expected a function that sums a tensor in place");
  EXPECT_EQ(
      message_of([] {
        synchronized_batch_norm(Tensor::zeros({4, 3}), Tensor(), Tensor(), 1e-3, {.count = 3, .sum = [](Tensor&) {}});
      }),
      "[synchronized_batch_norm] count 3 is smaller than this shard's 4 values per channel; expected the "
      "values per channel over every replica");
  EXPECT_EQ(message_of([] {
              synchronized_batch_norm(Tensor::zeros({0, 3}), Tensor(), Tensor(), 1e-3, {.count = 2, .sum = nullptr});
            }),
            "[synchronized_batch_norm] input is [0, 3]; expected a non-empty tensor [..., C]");
}

// The layer wires its weights into the ops checked above: its float32 gradients agree with the
// float64 ones of the same math.
TEST(BatchNormalization, LayerGradientsAgreeWithTheCheckedMath) {
  auto bn = built_bn({2, 3});
  bn->set_weight("gamma", Tensor::from_vector<float>({0.5f, 2.0f, -1.0f}));
  bn->set_weight("beta", Tensor::from_vector<float>({0.1f, -0.2f, 0.3f}));
  Tensor x = channel_data({4, 2, 3}, 5);
  x.set_requires_grad(true);
  Generator gen(6);
  const Tensor r = Tensor::uniform(x.shape(), 0.5, 1.5, gen);
  sum(mul(bn->call(x, true), r)).backward();
  Tensor x64 = x.detach().astype(DType::Float64), g64 = Tensor::from_vector<double>({0.5, 2.0, -1.0}),
         b64 = Tensor::from_vector<double>({0.1, -0.2, 0.3});
  for (Tensor* t : {&x64, &g64, &b64}) t->set_requires_grad(true);
  const auto [mean, var] = moments(x64);
  sum(mul(batch_normalization(x64, mean, var, b64, g64, 1e-3), r.astype(DType::Float64))).backward();
  expect_near(doubles(x.grad()), doubles(x64.grad()), 1e-4, "dx");
  expect_near(doubles(weight_of(*bn, "gamma").grad()), doubles(g64.grad()), 1e-4, "dgamma");
  expect_near(doubles(weight_of(*bn, "beta").grad()), doubles(b64.grad()), 1e-4, "dbeta");
  EXPECT_FALSE(weight_of(*bn, "moving_mean").grad().defined());
}

TEST(BatchNormalization, SummaryCountsMovingStatisticsAsNonTrainable) {
  utils::set_random_seed(0);
  Sequential model({layers::Dense(8, {.input_shape = {4}}), layers::BatchNormalization(), layers::Dense(2)});
  std::ostringstream os;
  model.summary(os);
  const std::string s = os.str();
  EXPECT_NE(s.find("batch_normalization (BatchNormalization)"), std::string::npos) << s;
  EXPECT_NE(s.find("\u2502 (None, 8)"), std::string::npos) << s;
  EXPECT_NE(s.find("Total params: 90 "), std::string::npos) << s;  // 40 + 4 * 8 + 18
  EXPECT_NE(s.find("Trainable params: 74 "), std::string::npos) << s;
  EXPECT_NE(s.find("Non-trainable params: 16 (64.00 B)"), std::string::npos) << s;  // 2 * C, as Keras
  EXPECT_EQ(model.count_params(), 90);
}

// Keras 3: a frozen BatchNormalization runs in inference mode; fit changes none of its weights.
TEST(BatchNormalization, FrozenLayerUsesMovingStatisticsAndStaysUnchanged) {
  Sequential model = bn_model(2);
  const auto [x, y] = regression_data(40);
  model.fit(x, y, {.batch_size = 8, .epochs = 1, .verbose = 0});  // moving statistics away from 0 and 1
  Layer& bn = *model.layers()[1];
  bn.set_trainable(false);
  model.compile(optimizers::SGD({.learning_rate = 0.05}), losses::MeanSquaredError());
  EXPECT_EQ(model.trainable_weights().size(), 4u);
  EXPECT_EQ(model.non_trainable_weights().size(), 4u);
  std::vector<std::vector<float>> before;
  for (const auto& [n, w] : bn.named_weights()) before.push_back(floats(w));
  const auto dense_before = floats(model.layers()[0]->weights()[0]);
  {
    NoGradGuard no_grad;
    EXPECT_EQ(floats(model(x, true)), floats(model(x, false))) << "frozen: training mode is inference mode";
  }
  model.fit(x, y, {.batch_size = 8, .epochs = 2, .verbose = 0});
  std::size_t i = 0;
  for (const auto& [n, w] : bn.named_weights()) {
    EXPECT_EQ(floats(w), before[i++]) << n;
    EXPECT_FALSE(w.grad().defined()) << n;
  }
  EXPECT_NE(floats(model.layers()[0]->weights()[0]), dense_before) << "the other layers still train";
}

TEST_F(BatchNormalizationIo, SaveLoadRestoresMovingStatisticsAndPredictsBitForBit) {
  Sequential model = bn_model(3, optimizers::Adam());
  const auto [x, y] = regression_data(48);
  model.fit(x, y, {.batch_size = 8, .epochs = 2, .verbose = 0});
  model.save(path("m.kiln"));
  Sequential loaded = load_model(path("m.kiln"));
  EXPECT_EQ(loaded.layers()[1]->class_name(), "BatchNormalization");
  for (const char* name : {"gamma", "beta", "moving_mean", "moving_variance"})
    EXPECT_EQ(floats(weight_of(*loaded.layers()[1], name)), floats(weight_of(*model.layers()[1], name))) << name;
  EXPECT_NE(floats(weight_of(*model.layers()[1], "moving_mean")), std::vector<float>(8, 0.0f));
  EXPECT_EQ(floats(loaded.predict(x)), floats(model.predict(x)));
  model.fit(x, y, {.batch_size = 8, .epochs = 3, .verbose = 0, .initial_epoch = 2});
  loaded.fit(x, y, {.batch_size = 8, .epochs = 3, .verbose = 0, .initial_epoch = 2});
  for (const char* name : {"gamma", "beta", "moving_mean", "moving_variance"})
    EXPECT_EQ(floats(weight_of(*loaded.layers()[1], name)), floats(weight_of(*model.layers()[1], name))) << name;
  // A frozen layer stays frozen through save and load, its weights included (compiled again after
  // freezing, as Keras asks).
  model.layers()[1]->set_trainable(false);
  model.compile(optimizers::Adam(), losses::MeanSquaredError());
  model.save(path("frozen.kiln"));
  Sequential frozen = load_model(path("frozen.kiln"));
  EXPECT_FALSE(frozen.layers()[1]->trainable());
  EXPECT_EQ(floats(weight_of(*frozen.layers()[1], "moving_variance")),
            floats(weight_of(*model.layers()[1], "moving_variance")));
}

TEST(BatchNormalization, ConfigIsKerasAndRoundTrips) {
  const layers::BatchNormalization bn({.axis = 3,
                                       .momentum = 0.9,
                                       .epsilon = 1e-5,
                                       .center = false,
                                       .gamma_initializer = "zeros",
                                       .gamma_regularizer = regularizers::l2(0.01)});
  const Config c = bn.get_config();
  EXPECT_EQ(c.at("axis"), 3);
  EXPECT_EQ(c.at("momentum"), 0.9);
  EXPECT_EQ(c.at("epsilon"), 1e-5);
  EXPECT_EQ(c.at("center"), false);
  EXPECT_EQ(c.at("scale"), true);
  EXPECT_EQ(c.at("gamma_initializer"), "zeros");
  EXPECT_EQ(c.at("moving_variance_initializer"), "ones");
  EXPECT_TRUE(c.at("beta_regularizer").is_null());
  const auto back = layers::BatchNormalization::from_config(c);
  EXPECT_EQ(back.get_config(), c);
  EXPECT_TRUE(layer_registry().contains("BatchNormalization"));
  EXPECT_EQ(c.at("synchronized"), false);
  const Config synced = layers::BatchNormalization({.synchronized = true}).get_config();
  EXPECT_EQ(synced.at("synchronized"), true);
  EXPECT_TRUE(layers::BatchNormalization::from_config(synced).options().synchronized);
  EXPECT_EQ(layers::BatchNormalization::from_config(synced).get_config(), synced);
  // Keras' own fields that kiln leaves at their defaults are accepted.
  EXPECT_NO_THROW(layers::BatchNormalization::from_config({{"synchronized", false}, {"renorm", false}}));
}

// Without a strategy there is one replica: synchronized changes nothing (as in Keras), bit for bit.
TEST(BatchNormalization, SynchronizedWithoutAStrategyTrainsBitForBitAsDefault) {
  const Tensor x = channel_data({32, 4}, 50);
  Generator gen(51);
  const Tensor y = Tensor::uniform({32, 1}, -1, 1, gen);
  std::vector<std::vector<float>> weights[2];
  std::vector<double> losses[2];
  for (int synchronized = 0; synchronized < 2; ++synchronized) {
    utils::set_random_seed(52);
    Sequential model({layers::Dense(6, {.input_shape = {4}}),
                      layers::BatchNormalization({.momentum = 0.5, .synchronized = synchronized == 1}),
                      layers::Dense(1)});
    model.compile("adam", "mean_squared_error");
    losses[synchronized] = model.fit(x, y, {.batch_size = 8, .epochs = 2, .verbose = 0}).history.at("loss");
    for (const auto& group : {model.trainable_weights(), model.non_trainable_weights()})
      for (const Tensor& w : group) weights[synchronized].push_back(floats(w));
  }
  EXPECT_EQ(weights[1], weights[0]);
  EXPECT_EQ(losses[1], losses[0]);
}

TEST(BatchNormalization, PositiveLastAxisWorksLikeMinusOne) {
  utils::set_random_seed(0);
  Sequential a({layers::BatchNormalization({.axis = 3, .input_shape = {4, 4, 2}})});
  const Tensor x = channel_data({3, 4, 4, 2}, 9);
  NoGradGuard no_grad;
  auto b = built_bn({4, 4, 2});
  EXPECT_EQ(floats(a(x, true)), floats(b->call(x, true)));
}

TEST(BatchNormalizationErrors, BadOptionsAndInputs) {
  EXPECT_EQ(message_of([] { layers::BatchNormalization({.axis = 0}); }),
            "[batch_normalization] axis 0 is not supported; expected -1, the last axis (kiln normalizes "
            "channels-last inputs)");
  EXPECT_EQ(message_of([] {
              Sequential({layers::BatchNormalization({.axis = 1, .input_shape = {4, 4, 3}})});
            }),
            "[batch_normalization] axis 1 is not the last axis of inputs [N, 4, 4, 3]; expected -1 (or 3): kiln "
            "normalizes the last axis only");
  EXPECT_EQ(message_of([] { layers::BatchNormalization({.momentum = 1.5}); }),
            "[batch_normalization] momentum is 1.5; expected a value in [0, 1]");
  EXPECT_EQ(message_of([] { layers::BatchNormalization({.epsilon = 0}); }),
            "[batch_normalization] epsilon is 0; expected a positive number");
  EXPECT_EQ(message_of([] { layers::BatchNormalization({.epsilon = -1e-3}); }),
            "[batch_normalization] epsilon is -0.001; expected a positive number");
  EXPECT_NE(
      message_of([] { layers::BatchNormalization({.gamma_initializer = "nope"}); }).find("unknown initializer 'nope'"),
      std::string::npos);
  auto bn = built_bn({3});
  EXPECT_EQ(message_of([&] {
              bn->call(Tensor::zeros({2, 4}), true);
            }),
            "[batch_normalization] input [2, 4] has 4 channels on its last axis, layer expects 3");
  EXPECT_EQ(message_of([&] { bn->call(Tensor::zeros({3}), false); }),
            "[batch_normalization] input [3] has no channels on its last axis, layer expects 3");
  EXPECT_EQ(message_of([] {
              layers::BatchNormalization::from_config({{"renorm", true}});
            }),
            "[from_config] the BatchNormalization config: renorm is true; expected false (batch renormalization is "
            "not supported)");
  EXPECT_EQ(message_of([] {
              moments(Tensor::zeros({0, 3}));
            }),
            "[moments] input is [0, 3]; expected a non-empty tensor [..., C]");
  EXPECT_EQ(
      message_of([] {
        batch_normalization(Tensor::zeros({2, 3}), Tensor::zeros({2}), Tensor::ones({3}), Tensor(), Tensor(), 1e-3);
      }),
      "[batch_normalization] mean is [2]; expected [3], one value per channel of the input's last axis");
}

// ---- GPU: the CPU's numbers, and recorded steps equal to eager ones ----

TEST(CudaBatchNormalization, ForwardAndBackwardMatchTheCpu) {
  REQUIRE_GPU();
  const Tensor x = channel_data({6, 5, 5, 4}, 11);
  Generator gen(12);
  const Tensor r = Tensor::uniform(x.shape(), 0.5, 1.5, gen);
  std::vector<double> out[2], dx[2], dgamma[2], stats[2], inference[2];
  for (int gpu = 0; gpu < 2; ++gpu) {
    const Device device = gpu ? Device::gpu() : Device::cpu();
    auto bn = std::make_shared<layers::BatchNormalization>();
    Generator g(0);
    bn->build({5, 5, 4}, g, device);
    bn->set_weight("gamma", Tensor::from_vector<float>({0.5f, 2.0f, -1.0f, 1.5f}));
    Tensor xd = x.to(device);
    xd.set_requires_grad(true);
    const Tensor y = bn->call(xd, true);
    sum(mul(y, r.to(device))).backward();
    out[gpu] = doubles(y);
    dx[gpu] = doubles(xd.grad());
    dgamma[gpu] = doubles(weight_of(*bn, "gamma").grad());
    stats[gpu] = doubles(weight_of(*bn, "moving_variance"));
    inference[gpu] = doubles(bn->call(x.to(device), false));
  }
  expect_near(out[1], out[0], 1e-5, "y");
  expect_near(dx[1], dx[0], 1e-4, "dx");
  expect_near(dgamma[1], dgamma[0], 1e-4, "dgamma");
  expect_near(stats[1], stats[0], 1e-6, "moving_variance");
  expect_near(inference[1], inference[0], 1e-5, "inference");
}

// The fused op on a shape of several row slices and column tiles (the GPU's sums split both), for
// every floating dtype. Tolerances: float64 to rounding; float32 1e-5 on the outputs and statistics
// (sums in another order), 1e-4 on dx (a difference of such sums); 16-bit y and dx within one unit
// in the last place of the type (2^-7 bfloat16, 2^-10 float16, relative), the float32 statistics and
// gamma and beta gradients as float32's. On the GPU the sums' order is fixed: reruns are bit-equal.
TEST(CudaBatchNormalization, FusedOpMatchesTheCpuForEveryDtype) {
  REQUIRE_GPU();
  struct Case {
    DType dtype;
    double out_tol, stat_tol;
  };
  for (const Case& c : {Case{DType::Float64, 1e-12, 1e-12}, Case{DType::Float32, 1e-5, 1e-5},
                        Case{DType::BFloat16, 1.0 / 128, 1e-5}, Case{DType::Float16, 1.0 / 1024, 1e-5}}) {
    const DType stats = c.dtype == DType::Float64 ? DType::Float64 : DType::Float32;
    const Tensor x = channel_data({3000, 40}, 41).astype(c.dtype);
    Generator gen(42);
    const Tensor dy = Tensor::uniform(x.shape(), -1, 1, gen).astype(c.dtype);
    const Tensor gamma = Tensor::uniform({40}, 0.5, 2, gen, stats), beta = Tensor::uniform({40}, -1, 1, gen, stats);
    std::vector<std::vector<double>> got[3];
    for (int run = 0; run < 3; ++run) {  // the CPU, then the GPU twice
      const Device device = run ? Device::gpu() : Device::cpu();
      Tensor xd = x.to(device), gd = gamma.to(device), bd = beta.to(device);
      for (Tensor* t : {&xd, &gd, &bd}) t->set_requires_grad(true);
      FusedBatchNorm f = fused_batch_norm(xd, gd, bd, 1e-3);
      sum(mul(f.y, dy.to(device))).backward();
      got[run] = {doubles(f.y),       doubles(f.mean),    doubles(f.variance),
                  doubles(xd.grad()), doubles(gd.grad()), doubles(bd.grad())};
    }
    const char* names[] = {"y", "mean", "variance", "dx", "dgamma", "dbeta"};
    const double dx_tol = c.dtype == DType::Float32 ? 1e-4 : c.out_tol;
    const double tols[] = {c.out_tol, c.stat_tol, c.stat_tol, dx_tol, 10 * c.stat_tol, 10 * c.stat_tol};
    for (std::size_t i = 0; i < 6; ++i) {
      const std::string what = std::string(names[i]) + " " + dtype_name(c.dtype);
      expect_near(got[1][i], got[0][i], tols[i], what);
      EXPECT_EQ(got[2][i], got[1][i]) << what << ": a GPU rerun differs";
    }
  }
}

// The moving statistics' in-place updates replay with the step: every weight, trainable or not,
// ends bit-equal to eager training's.
TEST(CudaBatchNormalization, RecordedStepsTrainAsEagerStepsBitForBit) {
  EXPECT_RECORDED_STEP_EQUALS_EAGER([] {
    Sequential model({layers::Dense(8, {.activation = "relu", .input_shape = {4}}),
                      layers::BatchNormalization({.momentum = 0.9}), layers::Dense(3)});
    model.compile("adam", "sparse_categorical_crossentropy");
    return model;
  });
  EXPECT_RECORDED_STEP_EQUALS_EAGER([] {
    Sequential model({layers::Conv2D(4, {3, 3}, {.use_bias = false, .input_shape = {6, 6, 2}}),
                      layers::BatchNormalization({.center = false}), layers::Flatten(), layers::Dense(2)});
    model.compile(optimizers::SGD({.learning_rate = 0.05, .momentum = 0.9}), losses::MeanSquaredError());
    return model;
  });
}
