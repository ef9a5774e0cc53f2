// Counter-based randomness on the CPU: Philox-4x32-10 against Random123's known answers, the stream
// as kiln/ops.h defines it, dropout's statistics, determinism and gradient, and bad input. (The
// GPU's bits against these: test_cuda_activations_pooling_random.cpp.)
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "backend/philox.h"
#include "gradcheck.h"
#include "kiln/kiln.h"
#include "test_support.h"

using namespace kiln;
using kiln::testing::gradcheck;
using kiln::testing::message_of;
using kiln::testing::random_input;
namespace philox = kiln::backend::philox;

namespace {

Tensor counter_of(int64_t step) { return Tensor::from_vector<int64_t>({step}, Shape{1}); }

// Fraction of nonzero elements.
double kept_fraction(const Tensor& y) {
  int64_t kept = 0;
  for (double v : y.to_vector<double>()) kept += v != 0.0;
  return static_cast<double>(kept) / static_cast<double>(y.numel());
}

}  // namespace

// Random123's kat_vectors for philox4x32 with 10 rounds: counter words, key words, output words.
TEST(Philox, MatchesRandom123KnownAnswers) {
  struct Kat {
    philox::Words counter;
    uint32_t k0, k1;
    philox::Words want;
  };
  const Kat kats[] = {
      {{{0, 0, 0, 0}}, 0, 0, {{0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8}}},
      {{{0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff}},
       0xffffffff,
       0xffffffff,
       {{0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd}}},
      {{{0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344}},
       0xa4093822,
       0x299f31d0,
       {{0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1}}},
  };
  for (const Kat& k : kats) {
    const philox::Words got = philox::philox4x32_10(k.counter, k.k0, k.k1);
    for (int i = 0; i < 4; ++i) EXPECT_EQ(got.v[i], k.want.v[i]) << std::hex << "word " << i;
  }
}

TEST(Philox, UniformFollowsTheDocumentedStream) {
  // Element i is word i % 4 of Philox((i / 4, draw, low(step), high(step)), (low(seed), high(seed))),
  // divided by 2^32 (float64 holds it exactly; float32 keeps the top 24 bits).
  const uint64_t seed = 0x0123456789abcdefull, draw = 5;
  const int64_t step = (int64_t(3) << 32) + 17, n = 11;
  const Tensor counter = counter_of(step);
  const std::vector<double> u64 = random_uniform_philox({n}, seed, counter, draw, DType::Float64).to_vector<double>();
  const std::vector<float> u32 = random_uniform_philox({n}, seed, counter, draw).to_vector<float>();
  for (int64_t i = 0; i < n; ++i) {
    const philox::Words w =
        philox::philox4x32_10({{uint32_t(i / 4), uint32_t(draw), 17u, 3u}}, 0x89abcdefu, 0x01234567u);
    const uint32_t word = w.v[i % 4];
    EXPECT_EQ(u64[i], std::ldexp(static_cast<double>(word), -32)) << i;
    EXPECT_EQ(u32[i], std::ldexp(static_cast<float>(word >> 8), -24)) << i;
  }
}

TEST(Philox, UniformIsUniform) {
  const int64_t n = 100000;
  const std::vector<float> u = random_uniform_philox({n}, 42, counter_of(0), 0).to_vector<float>();
  double mean = 0, below_tenth = 0;
  for (float v : u) {
    ASSERT_GE(v, 0.f);
    ASSERT_LT(v, 1.f);
    mean += v;
    below_tenth += v < 0.1f;
  }
  mean /= n;
  // Within 5 standard deviations: sqrt(1/12 / n) = 0.0009 for the mean, sqrt(0.09 / n) for the tenth.
  EXPECT_NEAR(mean, 0.5, 5 * 0.0009);
  EXPECT_NEAR(below_tenth / n, 0.1, 5 * 0.00095);
}

TEST(DropoutOp, KeepsOneMinusRateAndScalesTheKept) {
  const int64_t n = 100000;
  const Tensor x = Tensor::ones({n});
  for (const double rate : {0.1, 0.5, 0.8}) {
    const Tensor y = dropout(x, rate, 7, counter_of(3), 1);
    // Within 5 standard deviations of a binomial fraction: sqrt(rate (1 - rate) / n).
    EXPECT_NEAR(kept_fraction(y), 1 - rate, 5 * std::sqrt(rate * (1 - rate) / n)) << rate;
    const float scale = static_cast<float>(1.0 / (1.0 - rate));
    for (float v : y.to_vector<float>()) ASSERT_TRUE(v == 0.f || v == scale) << v;
  }
}

TEST(DropoutOp, KeepIsExactlyUAtLeastRate) {
  // keep = (u >= rate) for u the stream's float64 uniform, decided exactly.
  const int64_t n = 4099;
  const double rate = 0.3;
  const std::vector<double> u = random_uniform_philox({n}, 9, counter_of(2), 4, DType::Float64).to_vector<double>();
  const std::vector<double> y =
      dropout(Tensor::ones({n}, DType::Float64), rate, 9, counter_of(2), 4).to_vector<double>();
  for (int64_t i = 0; i < n; ++i) ASSERT_EQ(y[i] != 0.0, u[i] >= rate) << i;
}

TEST(DropoutOp, SameStreamSameMaskOtherwiseAnother) {
  Generator gen(5);
  const Tensor x = Tensor::uniform({64, 33}, 0.5, 1.5, gen);  // never 0, so y == 0 marks a drop
  Tensor counter = counter_of(10);
  const auto mask = [&](uint64_t seed, uint64_t draw) {
    return dropout(x, 0.5, seed, counter, draw).to_vector<float>();
  };
  const std::vector<float> a = mask(1, 0);
  EXPECT_EQ(mask(1, 0), a);
  EXPECT_NE(mask(1, 1), a);  // another draw
  EXPECT_NE(mask(2, 0), a);  // another seed
  counter.fill_(11);         // the counter's value is read at each call
  EXPECT_NE(mask(1, 0), a);
  counter.fill_(10);
  EXPECT_EQ(mask(1, 0), a);
  // float64 inputs get the same mask.
  const std::vector<double> d = dropout(x.astype(DType::Float64), 0.5, 1, counter, 0).to_vector<double>();
  for (std::size_t i = 0; i < a.size(); ++i) ASSERT_EQ(d[i] == 0.0, a[i] == 0.f) << i;
}

TEST(DropoutOp, GradientMatchesCentralDifferencesWithTheCounterFixed) {
  const Tensor counter = counter_of(123);
  EXPECT_TRUE(gradcheck([counter](const std::vector<Tensor>& v) { return dropout(v[0], 0.4, 77, counter, 3); },
                        {random_input({6, 7}, 51)}));
}

TEST(DropoutOp, BackwardUsesTheForwardMaskAfterTheCounterMoves) {
  Tensor x = Tensor::ones({1000}, DType::Float64);
  x.set_requires_grad(true);
  Tensor counter = counter_of(0);
  const Tensor y = dropout(x, 0.25, 3, counter, 0);
  counter.fill_(1);  // the step advances before backward runs
  sum(y).backward();
  EXPECT_EQ(x.grad().to_vector<double>(), y.to_vector<double>());  // dy = 1: dx = keep / (1 - rate) = y
}

TEST(DropoutOp, NanStaysNanWhereKeptAndWhereDropped) {
  const Tensor x = Tensor::full({1000}, std::numeric_limits<double>::quiet_NaN(), DType::Float32);
  for (float v : dropout(x, 0.5, 1, counter_of(0), 0).to_vector<float>()) ASSERT_TRUE(std::isnan(v));
}

TEST(DropoutOp, RateZeroReturnsTheInput) {
  const Tensor x = Tensor::ones({3});
  EXPECT_TRUE(dropout(x, 0.0, 1, counter_of(0), 0).is_same(x));
}

TEST(DropoutOp, BadInputSaysWhatIsExpected) {
  const Tensor x = Tensor::ones({4});
  const Tensor c = counter_of(0);
  EXPECT_EQ(message_of([&] { dropout(x, 1.0, 1, c, 0); }), "[dropout] rate 1.000000; expected 0 <= rate < 1");
  EXPECT_EQ(message_of([&] { dropout(x, -0.1, 1, c, 0); }), "[dropout] rate -0.100000; expected 0 <= rate < 1");
  EXPECT_EQ(message_of([&] { dropout(x, std::nan(""), 1, c, 0); }), "[dropout] rate nan; expected 0 <= rate < 1");
  EXPECT_EQ(message_of([&] { dropout(Tensor::ones({4}, DType::Int32), 0.5, 1, c, 0); }),
            "[dropout] input has dtype int32; expected a floating dtype (float32, float64, float16 or bfloat16)");
  EXPECT_EQ(message_of([&] { dropout(x, 0.5, 1, Tensor::zeros({1}, DType::Int32), 0); }),
            "[dropout] step_counter has dtype int32 and shape [1]; expected one int64 element");
  EXPECT_EQ(message_of([&] { dropout(x, 0.5, 1, Tensor::zeros({2}, DType::Int64), 0); }),
            "[dropout] step_counter has dtype int64 and shape [2]; expected one int64 element");
  EXPECT_EQ(message_of([&] { dropout(x, 0.5, 1, Tensor(), 0); }), "[dropout] step_counter is an undefined tensor");
  EXPECT_EQ(message_of([&] { dropout(x, 0.5, 1, c, uint64_t(1) << 32); }),
            "[dropout] draw 4294967296 is out of range; expected draw < 2^32");
  EXPECT_EQ(message_of([&] { random_uniform_philox({2}, 1, c, 0, DType::Int32); }),
            "[random_uniform_philox] dtype int32 requested; expected a floating dtype (float32, float64, float16 or "
            "bfloat16)");
  EXPECT_EQ(message_of([&] { random_uniform_philox({2}, 1, Tensor(), 0); }),
            "[random_uniform_philox] step_counter is an undefined tensor");
}
