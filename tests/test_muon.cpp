// Muon (keras.optimizers.Muon) against Keras 3.15's formulas worked out in double with plain loops
// (float64 parameters, so the comparison is tight): the Muon step on wide and tall matrices and
// AdamW's elsewhere, with the defaults and with other options; which weights take which step (rank,
// exclude_layers, exclude_embeddings, the convolution-kernel extension); configs, errors, loss
// scaling's skipped step and training. On a GPU: the same steps as the CPU, and the recorded step
// equal to the eager one.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "kiln/kiln.h"
#include "step_equivalence.h"
#include "tensor/tensor_impl.h"
#include "test_support.h"

using namespace kiln;
using kiln::testing::message_of;

namespace {

// A row-major matrix of doubles.
struct Mat {
  int64_t rows = 0, cols = 0;
  std::vector<double> v;
  double& at(int64_t r, int64_t c) { return v[static_cast<std::size_t>(r * cols + c)]; }
  double at(int64_t r, int64_t c) const { return v[static_cast<std::size_t>(r * cols + c)]; }
};

Mat transposed(const Mat& a) {
  Mat t{a.cols, a.rows, std::vector<double>(a.v.size())};
  for (int64_t r = 0; r < a.rows; ++r)
    for (int64_t c = 0; c < a.cols; ++c) t.at(c, r) = a.at(r, c);
  return t;
}

Mat product(const Mat& a, const Mat& b) {
  Mat p{a.rows, b.cols, std::vector<double>(static_cast<std::size_t>(a.rows * b.cols), 0.0)};
  for (int64_t r = 0; r < a.rows; ++r)
    for (int64_t c = 0; c < b.cols; ++c)
      for (int64_t k = 0; k < a.cols; ++k) p.at(r, c) += a.at(r, k) * b.at(k, c);
  return p;
}

// Keras' zeropower_via_newtonschulz5.
Mat newton_schulz(Mat x, int64_t steps, double a, double b, double c) {
  const bool tall = x.rows > x.cols;
  if (tall) x = transposed(x);
  double norm = 0;
  for (double e : x.v) norm += e * e;
  norm = std::sqrt(norm) + 1e-7;
  for (double& e : x.v) e /= norm;
  for (int64_t s = 0; s < steps; ++s) {
    const Mat m = product(x, transposed(x));
    const Mat mm = product(m, m);
    Mat poly = m;
    for (std::size_t i = 0; i < poly.v.size(); ++i) poly.v[i] = b * m.v[i] + c * mm.v[i];
    const Mat px = product(poly, x);
    for (std::size_t i = 0; i < x.v.size(); ++i) x.v[i] = a * x.v[i] + px.v[i];
  }
  return tall ? transposed(x) : x;
}

// One weight's state in the reference.
struct RefParam {
  Mat w;
  std::vector<double> m, v;
  bool muon;
};

// Keras' Muon step over `params` with gradients `grads`; `t` counts from 1.
void reference_step(std::vector<RefParam>& params, const std::vector<std::vector<double>>& grads, int t,
                    const optimizers::MuonOptions& o, double lr) {
  for (std::size_t p = 0; p < params.size(); ++p) {
    RefParam& q = params[p];
    const std::vector<double>& g = grads[p];
    const std::size_t n = g.size();
    const double wd = q.muon ? o.weight_decay.value_or(0.0) : o.adam_weight_decay.value_or(0.0);
    for (double& w : q.w.v) w = w - w * wd * lr;
    if (q.muon) {
      Mat d{q.w.rows, q.w.cols, std::vector<double>(n)};
      for (std::size_t i = 0; i < n; ++i) {
        q.m[i] = q.m[i] + (g[i] + q.m[i] * (o.momentum - 1));
        d.v[i] = o.nesterov ? g[i] + o.momentum * q.m[i] : q.m[i];
      }
      const Mat u = newton_schulz(d, o.ns_steps, o.muon_a, o.muon_b, o.muon_c);
      const double scale =
          o.rms_rate ? std::sqrt(static_cast<double>(std::max(q.w.rows, q.w.cols))) * *o.rms_rate : 1.0;
      for (std::size_t i = 0; i < n; ++i) q.w.v[i] -= lr * u.v[i] * scale;
    } else {
      const double alr = lr * o.adam_lr_ratio;
      const double alpha = alr * std::sqrt(1 - std::pow(o.adam_beta_2, t)) / (1 - std::pow(o.adam_beta_1, t));
      for (std::size_t i = 0; i < n; ++i) {
        q.m[i] = q.m[i] + (g[i] - q.m[i]) * (1 - o.adam_beta_1);
        q.v[i] = q.v[i] + (g[i] * g[i] - q.v[i]) * (1 - o.adam_beta_2);
        q.w.v[i] = q.w.v[i] - q.m[i] * alpha / (std::sqrt(q.v[i]) + o.epsilon);
      }
    }
  }
}

// Runs Muon with `o` and the reference for three steps over a wide and a tall matrix and a vector
// (float64), and expects the weights and the momenta to agree.
void expect_follows_keras(const optimizers::MuonOptions& o, double lr) {
  const std::vector<Shape> shapes = {{3, 5}, {6, 2}, {4}};
  Generator gen(5);
  std::vector<Tensor> params;
  std::vector<RefParam> ref;
  for (const Shape& s : shapes) {
    Tensor p = Tensor::uniform(s, -1, 1, gen).astype(DType::Float64);
    p.set_requires_grad();
    params.push_back(p);
    const int64_t rows = s.ndim() == 2 ? s[0] : 1, cols = s.ndim() == 2 ? s[1] : s[0];
    ref.push_back({Mat{rows, cols, p.to_vector<double>()},
                   std::vector<double>(static_cast<std::size_t>(s.numel()), 0.0),
                   std::vector<double>(static_cast<std::size_t>(s.numel()), 0.0), s.ndim() == 2});
  }
  optimizers::Muon opt(o);
  for (int t = 1; t <= 3; ++t) {
    std::vector<std::vector<double>> grads;
    for (Tensor& p : params) {
      const Tensor g = Tensor::uniform(p.shape(), -2, 2, gen).astype(DType::Float64);
      p.impl()->grad = g;
      grads.push_back(g.to_vector<double>());
    }
    opt.step(params);
    reference_step(ref, grads, t, o, lr);
  }
  for (std::size_t p = 0; p < params.size(); ++p) {
    const auto got = params[p].to_vector<double>();
    const auto momentum = opt.slots()[p][0].to_vector<double>();
    for (std::size_t i = 0; i < got.size(); ++i) {
      EXPECT_NEAR(got[i], ref[p].w.v[i], 1e-12 + 1e-10 * std::fabs(ref[p].w.v[i])) << "param " << p << "[" << i << "]";
      EXPECT_NEAR(momentum[i], ref[p].m[i], 1e-12 + 1e-10 * std::fabs(ref[p].m[i])) << "param " << p;
    }
    EXPECT_EQ(opt.uses_muon_step(params[p]), ref[p].muon);
  }
}

}  // namespace

TEST(Muon, FollowsKerasWithItsDefaults) {
  optimizers::MuonOptions o;
  EXPECT_EQ(o.learning_rate, 0.001);
  EXPECT_EQ(o.weight_decay, std::optional<double>(0.004));
  EXPECT_EQ(o.adam_weight_decay, std::optional<double>(0.004));
  EXPECT_EQ(o.ns_steps, 5);
  EXPECT_EQ(o.momentum, 0.95);
  EXPECT_TRUE(o.nesterov);
  EXPECT_EQ(o.rms_rate, std::optional<double>(0.2));
  EXPECT_EQ(o.adam_lr_ratio, 1.0);
  o.learning_rate = 0.05;  // large enough that every term moves the weights visibly
  expect_follows_keras(o, 0.05);
}

TEST(Muon, FollowsKerasWithOtherOptions) {
  optimizers::MuonOptions o{.learning_rate = 0.02,
                            .adam_beta_1 = 0.8,
                            .adam_weight_decay = std::nullopt,
                            .weight_decay = 0.01,
                            .adam_lr_ratio = 0.1,
                            .momentum = 0.9,
                            .ns_steps = 3,
                            .nesterov = false,
                            .rms_rate = std::nullopt};
  expect_follows_keras(o, 0.02);
  EXPECT_EQ(optimizers::Muon(o).slot_names(), (std::vector<std::string>{"momentum", "velocity"}));
}

TEST(Muon, ConvolutionKernelsTakeTheMuonStepOnlyWhenAsked) {
  // With the extension, a [2, 2, 3, 4] kernel steps exactly as the [12, 4] matrix of its values.
  Generator gen(3);
  const std::vector<double> start =
      Tensor::uniform({2, 2, 3, 4}, -1, 1, gen).astype(DType::Float64).to_vector<double>();
  Tensor kernel = Tensor::from_vector(start, Shape{2, 2, 3, 4});
  Tensor matrix = Tensor::from_vector(start, Shape{12, 4});
  kernel.set_requires_grad();
  matrix.set_requires_grad();
  optimizers::Muon conv_opt({.learning_rate = 0.1, .orthogonalize_conv_kernels = true});
  optimizers::Muon matrix_opt({.learning_rate = 0.1});
  optimizers::Muon keras_opt({.learning_rate = 0.1});
  EXPECT_TRUE(conv_opt.uses_muon_step(kernel));
  EXPECT_FALSE(keras_opt.uses_muon_step(kernel));  // Keras: AdamW for anything but a matrix
  for (int t = 0; t < 2; ++t) {
    const Tensor g = Tensor::uniform({2, 2, 3, 4}, -1, 1, gen).astype(DType::Float64);
    kernel.impl()->grad = g;
    matrix.impl()->grad = g.reshape({12, 4});
    conv_opt.step({kernel});
    matrix_opt.step({matrix});
  }
  EXPECT_EQ(kernel.to_vector<double>(), matrix.to_vector<double>());
}

TEST(Muon, ExcludedLayersAndEmbeddingsTakeTheAdamWStep) {
  Sequential model({layers::Dense(8, {.input_shape = {4}}), layers::Dense(3)});  // built: its input is declared
  const auto& first = model.layers()[0];
  const auto& last = model.layers()[1];
  auto weight = [](const std::shared_ptr<Layer>& layer, const std::string& name) {
    for (const auto& [n, w] : layer->named_weights())
      if (n == name) return w;
    throw Error("test", "no weight " + name);
  };
  EXPECT_EQ(weight(last, "kernel").impl()->variable_path, "dense_1/kernel");
  optimizers::Muon plain;
  EXPECT_TRUE(plain.uses_muon_step(weight(first, "kernel")));
  EXPECT_TRUE(plain.uses_muon_step(weight(last, "kernel")));
  EXPECT_FALSE(plain.uses_muon_step(weight(first, "bias")));  // rank 1
  optimizers::Muon excluding({.exclude_layers = {"dense_1"}});
  EXPECT_TRUE(excluding.uses_muon_step(weight(first, "kernel")));
  EXPECT_FALSE(excluding.uses_muon_step(weight(last, "kernel")));
  // A renamed layer's weights follow the name; "embedding" in any case is excluded by default.
  last->set_name("Token_Embedding_out");
  EXPECT_EQ(weight(last, "kernel").impl()->variable_path, "Token_Embedding_out/kernel");
  EXPECT_FALSE(plain.uses_muon_step(weight(last, "kernel")));
  EXPECT_TRUE(optimizers::Muon({.exclude_embeddings = false}).uses_muon_step(weight(last, "kernel")));
  // The path survives a move between devices (kept like the learning-rate multiplier).
  last->to(Device::cpu());
  EXPECT_EQ(weight(last, "kernel").impl()->variable_path, "Token_Embedding_out/kernel");
}

TEST(Muon, ConfigRoundTripsThroughTheRegistry) {
  optimizers::Muon opt({.learning_rate = 0.02,
                        .adam_weight_decay = std::nullopt,
                        .exclude_layers = {"head", "dense_[0-9]+"},
                        .momentum = 0.6,
                        .ns_steps = 3,
                        .rms_rate = std::nullopt,
                        .orthogonalize_conv_kernels = true});
  const Config config = opt.get_config();
  EXPECT_TRUE(config.at("rms_rate").is_null());
  EXPECT_TRUE(config.at("adam_weight_decay").is_null());
  auto again = optimizer_registry().make("Muon", config);
  EXPECT_EQ(again->get_config(), config);
  auto* muon = dynamic_cast<optimizers::Muon*>(again.get());
  ASSERT_NE(muon, nullptr);
  EXPECT_EQ(muon->options().exclude_layers, (std::vector<std::string>{"head", "dense_[0-9]+"}));
  EXPECT_TRUE(muon->options().orthogonalize_conv_kernels);
  // Keras' own config has no kiln extension field, and "muon" is Keras' lower-case name.
  EXPECT_FALSE(optimizers::Muon().get_config().contains("orthogonalize_conv_kernels"));
  EXPECT_EQ(optimizers::get("muon")->class_name(), "Muon");
}

TEST(Muon, BadOptionsSayWhatWasExpected) {
  EXPECT_NE(message_of([] { optimizers::Muon({.clipnorm = 1.0}); }).find("not supported by Muon yet"),
            std::string::npos);
  EXPECT_NE(message_of([] { optimizers::Muon({.exclude_layers = {"dense_("}}); }).find("not a regular expression"),
            std::string::npos);
  EXPECT_NE(message_of([] { optimizers::Muon({.momentum = 1.5}); }).find("momentum is 1.5"), std::string::npos);
  EXPECT_NE(message_of([] { optimizers::Muon({.ns_steps = -1}); }).find("ns_steps is -1"), std::string::npos);
  EXPECT_NE(message_of([] { optimizers::Muon({.rms_rate = 0.0}); }).find("rms_rate"), std::string::npos);
  EXPECT_NE(message_of([] { optimizers::Muon({.adam_beta_2 = 1.0}); }).find("adam_beta_2"), std::string::npos);
  Config bad = optimizers::Muon().get_config();
  bad["exclude_layers"] = 3;
  EXPECT_NE(message_of([&] { optimizer_registry().make("Muon", bad); }).find("exclude_layers"), std::string::npos);
}

TEST(Muon, LossScalingSkipsANonFiniteStepAndUnscalesTheRest) {
  // Under loss scaling a step whose gradients hold an infinity leaves weights and momenta as they
  // were; a finite step equals Muon's step on the unscaled gradients.
  Generator gen(9);
  const Tensor start = Tensor::uniform({4, 3}, -1, 1, gen);
  Tensor scaled_w = start.astype(DType::Float32), plain_w = start.astype(DType::Float32);
  scaled_w.set_requires_grad();
  plain_w.set_requires_grad();
  optimizers::LossScaleOptimizer scaled(
      std::make_unique<optimizers::Muon>(optimizers::MuonOptions{.learning_rate = 0.1}), {.initial_scale = 4.0});
  optimizers::Muon plain({.learning_rate = 0.1});
  const Tensor g = Tensor::uniform({4, 3}, -1, 1, gen);
  scaled_w.impl()->grad = mul(g, 4.0);
  plain_w.impl()->grad = g;
  scaled.step({scaled_w});
  plain.step({plain_w});
  EXPECT_EQ(scaled_w.to_vector<float>(), plain_w.to_vector<float>());
  const std::vector<float> before = scaled_w.to_vector<float>();
  const std::vector<float> momentum = scaled.slots()[0][0].to_vector<float>();
  std::vector<float> bad = g.to_vector<float>();
  bad[5] = INFINITY;
  scaled_w.impl()->grad = Tensor::from_vector(bad, Shape{4, 3});
  scaled.step({scaled_w});
  EXPECT_EQ(scaled_w.to_vector<float>(), before);
  EXPECT_EQ(scaled.slots()[0][0].to_vector<float>(), momentum);
  EXPECT_EQ(scaled.dynamic_scale(), 2.0);
  EXPECT_EQ(scaled.iterations(), 1);
}

TEST(Muon, TrainsAModel) {
  utils::set_random_seed(4);
  Generator gen(4);
  const Tensor x = Tensor::uniform({64, 6}, -1, 1, gen);
  std::vector<int32_t> labels;
  const auto xs = x.to_vector<float>();
  for (int i = 0; i < 64; ++i) labels.push_back(xs[static_cast<std::size_t>(i * 6)] > 0 ? 1 : 0);
  const Tensor y = Tensor::from_vector(labels, Shape{64});
  Sequential model({layers::Dense(16, {.activation = "relu", .input_shape = {6}}), layers::Dense(2)});
  model.compile(optimizers::Muon({.learning_rate = 0.02, .exclude_layers = {"dense_1"}}),
                losses::SparseCategoricalCrossentropy({.from_logits = true}));
  const auto history = model.fit(x, y, {.batch_size = 16, .epochs = 30, .verbose = 0});
  const auto& loss = history.history.at("loss");
  EXPECT_LT(loss.back(), 0.5 * loss.front());
}

namespace {
// Three steps of Muon (with AdamW on the vectors) over assorted matrices on the CPU and on GPU 0.
void expect_gpu_matches_cpu(const optimizers::MuonOptions& o) {
  const std::vector<Shape> shapes = {{3, 5}, {64, 10}, {300, 17}, {7}, {2, 2, 8, 16}, {129, 128}};
  Generator gen(12);
  std::vector<Tensor> cpu, gpu;
  for (const Shape& s : shapes) {
    Tensor p = Tensor::uniform(s, -1, 1, gen);
    Tensor q = p.to(Device::gpu(0));
    p.set_requires_grad();
    q.set_requires_grad();
    cpu.push_back(p);
    gpu.push_back(q);
  }
  optimizers::Muon on_cpu(o), on_gpu(o);
  for (int step = 0; step < 3; ++step) {
    for (std::size_t i = 0; i < shapes.size(); ++i) {
      const Tensor g = Tensor::uniform(shapes[i], -3, 3, gen);
      cpu[i].impl()->grad = g;
      gpu[i].impl()->grad = g.to(Device::gpu(0));
    }
    on_cpu.step(cpu);
    on_gpu.step(gpu);
  }
  for (std::size_t i = 0; i < shapes.size(); ++i) {
    // The orthogonalization's products are summed in another order on each device; five
    // Newton-Schulz iterations keep that to float32 rounding of the unit-scale direction.
    const auto x = cpu[i].to_vector<float>(), y = gpu[i].to(Device::cpu()).to_vector<float>();
    for (std::size_t j = 0; j < x.size(); ++j)
      ASSERT_NEAR(x[j], y[j], 1e-5 + 1e-5 * std::fabs(x[j])) << i << "[" << j << "]";
    const auto m = on_cpu.slots()[i][0].to_vector<float>(),
               n = on_gpu.slots()[i][0].to(Device::cpu()).to_vector<float>();
    for (std::size_t j = 0; j < m.size(); ++j) ASSERT_NEAR(m[j], n[j], 1e-5 + 1e-5 * std::fabs(m[j])) << i;
  }
}
}  // namespace

TEST(CudaMuon, MatchesCpu) {
  REQUIRE_GPU();
  expect_gpu_matches_cpu({.learning_rate = 0.05, .orthogonalize_conv_kernels = true});
  expect_gpu_matches_cpu({.learning_rate = 0.05,
                          .weight_decay = 0.1,
                          .use_ema = true,
                          .momentum = 0.6,
                          .ns_steps = 3,
                          .nesterov = false,
                          .rms_rate = std::nullopt});
}

TEST(CudaMuon, RecordedStepEqualsEager) {
  EXPECT_RECORDED_STEP_EQUALS_EAGER([] {
    Sequential model({layers::Conv2D(4, {3, 3}, {.activation = "relu", .input_shape = {6, 6, 2}}), layers::Flatten(),
                      layers::Dense(8, {.activation = "relu"}), layers::Dense(3)});
    model.compile(
        optimizers::Muon({.learning_rate = schedules::CosineDecay({.initial_learning_rate = 0.02, .decay_steps = 20}),
                          .use_ema = true,
                          .exclude_layers = {"dense_1"},
                          .orthogonalize_conv_kernels = true}),
        losses::SparseCategoricalCrossentropy({.from_logits = true}));
    return model;
  });
}
