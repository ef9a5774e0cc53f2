// Keras' initializers: each one's mean, standard deviation, limits and truncation bound on a large
// tensor (Keras' formulas), Keras' fans, bit-identical values for the same seed, both registered
// names, configs, use in Dense and Conv2D, and the bad-argument messages.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "kiln/kiln.h"
#include "test_support.h"

using namespace kiln;
using kiln::testing::message_of;

namespace {

struct Stats {
  double mean = 0, stddev = 0, max_abs = 0;
};

Stats stats_of(const Tensor& t) {
  const std::vector<double> v = t.to_vector<double>();
  Stats s;
  for (double x : v) s.mean += x;
  s.mean /= static_cast<double>(v.size());
  for (double x : v) {
    s.stddev += (x - s.mean) * (x - s.mean);
    s.max_abs = std::max(s.max_abs, std::abs(x));
  }
  s.stddev = std::sqrt(s.stddev / static_cast<double>(v.size()));
  return s;
}

// Keras truncates at two stddevs; the kept values' stddev is this fraction of the drawn one.
constexpr double kTruncated = .87962566103423978;

struct Expected {
  std::string name;
  double mean;    // of the distribution
  double stddev;  // of the values it gives (after truncation)
  double bound;   // |w| never exceeds it, and comes close to it (0: unbounded normal)
};

void check_stats(const Expected& e, const Shape& shape) {
  Generator gen(1);
  const Tensor w = (*initializers::get(e.name))(shape, gen, Device::cpu());
  ASSERT_EQ(w.shape(), shape);
  ASSERT_EQ(w.dtype(), DType::Float32);
  const Stats s = stats_of(w);
  // n >= 60000 values: the sample stddev is within about 0.3% of the true one, the mean within 0.4%
  // of a stddev (one sigma each).
  EXPECT_NEAR(s.stddev, e.stddev, 0.02 * e.stddev) << e.name;
  EXPECT_NEAR(s.mean, e.mean, 0.02 * e.stddev) << e.name;
  if (e.bound > 0) {
    EXPECT_LE(s.max_abs, e.bound * (1 + 1e-7)) << e.name;  // float32 rounding of the bound itself
    EXPECT_GT(s.max_abs, 0.99 * e.bound) << e.name;
  } else {
    EXPECT_GT(s.max_abs, 3 * e.stddev) << e.name << " is truncated; expected a plain normal";
  }
}

}  // namespace

TEST(Initializers, KerasFans) {
  EXPECT_EQ(initializers::compute_fans(Shape{300, 200}), (std::pair<int64_t, int64_t>{300, 200}));
  EXPECT_EQ(initializers::compute_fans(Shape{3, 3, 16, 32}), (std::pair<int64_t, int64_t>{144, 288}));
  EXPECT_EQ(initializers::compute_fans(Shape{7}), (std::pair<int64_t, int64_t>{7, 7}));
  EXPECT_EQ(initializers::compute_fans(Shape{}), (std::pair<int64_t, int64_t>{1, 1}));
}

TEST(Initializers, StatisticsFollowKerasFormulas) {
  const Shape dense{300, 200};  // fan_in 300, fan_out 200
  const double in = 300, avg = 250;
  const std::vector<Expected> cases = {
      {"glorot_uniform", 0, std::sqrt(3.0 / avg) / std::sqrt(3.0), std::sqrt(3.0 / avg)},
      {"glorot_normal", 0, std::sqrt(1.0 / avg), 2 * std::sqrt(1.0 / avg) / kTruncated},
      {"he_normal", 0, std::sqrt(2.0 / in), 2 * std::sqrt(2.0 / in) / kTruncated},
      {"he_uniform", 0, std::sqrt(6.0 / in) / std::sqrt(3.0), std::sqrt(6.0 / in)},
      {"lecun_normal", 0, std::sqrt(1.0 / in), 2 * std::sqrt(1.0 / in) / kTruncated},
      {"lecun_uniform", 0, std::sqrt(3.0 / in) / std::sqrt(3.0), std::sqrt(3.0 / in)},
      {"variance_scaling", 0, std::sqrt(1.0 / in), 2 * std::sqrt(1.0 / in) / kTruncated},
      {"random_normal", 0, 0.05, 0},
      {"truncated_normal", 0, 0.05 * kTruncated, 0.1},
      {"random_uniform", 0, 0.1 / std::sqrt(12.0), 0.05},
  };
  for (const Expected& e : cases) check_stats(e, dense);
  // A convolution kernel: fans include the receptive field (3 * 3 * 64 in, 3 * 3 * 128 out).
  const Shape conv{3, 3, 64, 128};
  check_stats({"HeNormal", 0, std::sqrt(2.0 / 576), 2 * std::sqrt(2.0 / 576) / kTruncated}, conv);
  check_stats({"GlorotNormal", 0, std::sqrt(1.0 / 864), 2 * std::sqrt(1.0 / 864) / kTruncated}, conv);
}

TEST(Initializers, ArgumentsChangeTheDistribution) {
  Generator gen(2);
  const Shape shape{400, 200};
  const Stats n = stats_of(initializers::RandomNormal(1.5, 0.2)(shape, gen, Device::cpu()));
  EXPECT_NEAR(n.mean, 1.5, 0.005);
  EXPECT_NEAR(n.stddev, 0.2, 0.004);
  const Stats u = stats_of(initializers::RandomUniform(2.0, 3.0)(shape, gen, Device::cpu()));
  EXPECT_NEAR(u.mean, 2.5, 0.005);
  EXPECT_LE(u.max_abs, 3.0);
  // fan_out of [400, 200] is 200; "normal" is read as truncated_normal, as Keras does.
  const initializers::VarianceScaling vs(3.0, "fan_out", "normal");
  EXPECT_EQ(vs.distribution(), "truncated_normal");
  const Stats v = stats_of(vs(shape, gen, Device::cpu()));
  EXPECT_NEAR(v.stddev, std::sqrt(3.0 / 200), 0.02 * std::sqrt(3.0 / 200));
  EXPECT_LE(v.max_abs, 2 * std::sqrt(3.0 / 200) / kTruncated * (1 + 1e-7));
  const Stats un =
      stats_of(initializers::VarianceScaling(1.0, "fan_avg", "untruncated_normal")(shape, gen, Device::cpu()));
  EXPECT_NEAR(un.stddev, std::sqrt(1.0 / 300), 0.02 * std::sqrt(1.0 / 300));
  EXPECT_GT(un.max_abs, 3 * std::sqrt(1.0 / 300));
}

TEST(Initializers, SameSeedGivesBitIdenticalValues) {
  for (const char* name : {"glorot_normal", "he_normal", "he_uniform", "lecun_normal", "lecun_uniform", "random_normal",
                           "random_uniform", "truncated_normal"}) {
    Generator a(7), b(7), c(8);
    const auto init = initializers::get(name);
    const std::vector<float> va = (*init)(Shape{64, 33}, a, Device::cpu()).to_vector<float>();
    EXPECT_EQ(va, (*init)(Shape{64, 33}, b, Device::cpu()).to_vector<float>()) << name;
    EXPECT_NE(va, (*init)(Shape{64, 33}, c, Device::cpu()).to_vector<float>()) << name;
  }
  // Through a model: the same seed draws the same kernels.
  auto model = [](uint64_t seed) {
    utils::set_random_seed(seed);
    return Sequential({layers::Conv2D(4, {3, 3}, {.kernel_initializer = "he_normal", .input_shape = {6, 6, 2}}),
                       layers::Flatten(), layers::Dense(3, {.kernel_initializer = "lecun_normal"})});
  };
  Sequential m1 = model(5), m2 = model(5);
  for (std::size_t i = 0; i < m1.trainable_weights().size(); ++i)
    EXPECT_EQ(m1.trainable_weights()[i].to_vector<float>(), m2.trainable_weights()[i].to_vector<float>());
}

TEST(Initializers, RegisteredUnderClassAndKerasNames) {
  const std::vector<std::pair<std::string, std::string>> names = {{"GlorotNormal", "glorot_normal"},
                                                                  {"HeNormal", "he_normal"},
                                                                  {"HeUniform", "he_uniform"},
                                                                  {"LecunNormal", "lecun_normal"},
                                                                  {"LecunUniform", "lecun_uniform"},
                                                                  {"RandomNormal", "random_normal"},
                                                                  {"RandomUniform", "random_uniform"},
                                                                  {"TruncatedNormal", "truncated_normal"},
                                                                  {"VarianceScaling", "variance_scaling"}};
  for (const auto& [cls, snake] : names) {
    EXPECT_EQ(initializers::get(cls)->class_name(), cls);
    EXPECT_EQ(initializers::get(snake)->class_name(), cls);
  }
}

TEST(Initializers, ConfigsRoundTrip) {
  const initializers::VarianceScaling vs(2.5, "fan_avg", "uniform");
  EXPECT_EQ(vs.get_config(), (Config{{"scale", 2.5}, {"mode", "fan_avg"}, {"distribution", "uniform"}}));
  const initializers::RandomNormal rn(0.5, 0.25);
  const initializers::RandomUniform ru(-1.0, 2.0);
  const initializers::HeNormal he;
  for (const Initializer* init : std::vector<const Initializer*>{&vs, &rn, &ru, &he}) {
    const auto copy = initializer_registry().make(init->class_name(), init->get_config());
    EXPECT_EQ(copy->class_name(), init->class_name());
    EXPECT_EQ(copy->get_config(), init->get_config());
  }
  // Keras' own config of RandomNormal carries a seed (null); kiln draws from the model's generator.
  const auto keras =
      initializer_registry().make("RandomNormal", Config{{"mean", 1.0}, {"stddev", 2.0}, {"seed", nullptr}});
  EXPECT_EQ(keras->get_config(), (Config{{"mean", 1.0}, {"stddev", 2.0}}));
}

TEST(Initializers, UsedByDenseAndConv2D) {
  utils::set_random_seed(3);
  Sequential model(
      {layers::Conv2D(8, {3, 3},
                      {.kernel_initializer = "lecun_uniform", .bias_initializer = "ones", .input_shape = {5, 5, 4}}),
       layers::Flatten(), layers::Dense(6, {.kernel_initializer = "HeUniform", .bias_initializer = "ones"})});
  const auto w = model.trainable_weights();
  ASSERT_EQ(w.size(), 4u);
  EXPECT_LE(stats_of(w[0]).max_abs, std::sqrt(3.0 / 36));  // fan_in 3 * 3 * 4
  EXPECT_EQ(w[1].to_vector<float>(), std::vector<float>(8, 1.0f));
  EXPECT_LE(stats_of(w[2]).max_abs, std::sqrt(6.0 / 72));  // fan_in 3 * 3 * 8
  EXPECT_EQ(w[3].to_vector<float>(), std::vector<float>(6, 1.0f));
}

TEST(Initializers, IdentityIsKerasEyeAndTheIdentityConvolution) {
  Generator gen(1);
  // Keras: gain * eye(rows, columns), rectangular too.
  const auto eye = initializers::Identity(2.0)({2, 3}, gen, Device::cpu()).to_vector<float>();
  EXPECT_EQ(eye, std::vector<float>({2, 0, 0, 0, 2, 0}));
  EXPECT_EQ(initializers::get("identity")->class_name(), "Identity");
  EXPECT_EQ(initializer_registry().make("Identity", Config{{"gain", 0.5}})->get_config(), (Config{{"gain", 0.5}}));
  // A 'same' 3x3 convolution with the kernel passes its first min(C, F) = 2 channels through;
  // filters past C (the third) are zero.
  const Tensor kernel = initializers::Identity()({3, 3, 2, 3}, gen, Device::cpu());
  const Tensor x = Tensor::uniform({2, 4, 5, 2}, -1.0, 1.0, gen);
  const auto y = conv2d(x, kernel, {1, 1}, Padding::Same).to_vector<float>(), xv = x.to_vector<float>();
  for (int64_t p = 0; p < 2 * 4 * 5; ++p) {
    EXPECT_EQ(y[static_cast<std::size_t>(p * 3)], xv[static_cast<std::size_t>(p * 2)]);
    EXPECT_EQ(y[static_cast<std::size_t>(p * 3 + 1)], xv[static_cast<std::size_t>(p * 2 + 1)]);
    EXPECT_EQ(y[static_cast<std::size_t>(p * 3 + 2)], 0.0F);
  }
  // An even kernel takes the centre rounded down: (1, 1) of 2x2, as PyTorch's dirac_.
  const auto even = initializers::Identity()({2, 2, 1, 1}, gen, Device::cpu()).to_vector<float>();
  EXPECT_EQ(even, std::vector<float>({0, 0, 0, 1}));
  EXPECT_EQ(message_of([&] { initializers::Identity()({3}, gen, Device::cpu()); }),
            "[identity] shape [3]; expected a matrix [rows, columns] or a convolution kernel [KH, KW, C, F]");
  EXPECT_EQ(message_of([] { initializers::Identity(std::nan("")); }),
            "[identity] gain is nan; expected a finite number");
}

TEST(InitializersErrors, UnknownNamesAndBadArguments) {
  const std::string unknown = message_of([] { layers::Dense(2, {.kernel_initializer = "he_normall"}); });
  EXPECT_EQ(unknown.rfind("[dense] unknown initializer 'he_normall'; expected one of ", 0), 0u) << unknown;
  for (const char* known : {"GlorotNormal", "he_normal", "lecun_uniform", "glorot_uniform", "zeros"})
    EXPECT_NE(unknown.find(known), std::string::npos) << known;
  EXPECT_EQ(message_of([] {
              layers::Conv2D(2, {3, 3}, {.bias_initializer = "one"});
            }).rfind("[conv2d] unknown initializer 'one'; expected one of ", 0),
            0u);
  EXPECT_EQ(message_of([] { initializers::VarianceScaling(0.0); }),
            "[variance_scaling] scale is 0.000000; expected a finite number > 0");
  EXPECT_EQ(message_of([] { initializers::VarianceScaling(1.0, "fan_sum"); }),
            "[variance_scaling] mode 'fan_sum'; expected fan_in, fan_out or fan_avg");
  EXPECT_EQ(message_of([] { initializers::VarianceScaling(1.0, "fan_in", "cauchy"); }),
            "[variance_scaling] distribution 'cauchy'; expected truncated_normal, untruncated_normal or uniform");
  EXPECT_EQ(message_of([] { initializers::RandomNormal(0.0, -1.0); }),
            "[random_normal] stddev is -1.000000; expected a finite number >= 0");
  EXPECT_EQ(message_of([] { initializers::RandomUniform(1.0, 0.0); }),
            "[random_uniform] minval 1.000000 and maxval 0.000000; expected finite numbers with minval <= maxval");
  const std::string bad_config = message_of([] {
    initializer_registry().make("VarianceScaling", Config{{"scale", "big"}});
  });
  EXPECT_EQ(bad_config.rfind("[from_config] the VarianceScaling config: \"scale\" is ", 0), 0u) << bad_config;
}
