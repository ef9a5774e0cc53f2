// patch_whitening_kernel: a hand-computed case, the whitening property through kiln's own conv2d
// (which also checks that the kernel's layout is the convolution's), the filter order, signs and
// negated half, and every error.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "kiln/kiln.h"
#include "test_support.h"

namespace kiln {
namespace {

using utils::patch_whitening_kernel;

// Correlated images: every pixel's channels are a fixed mix of independent normals, plus a
// neighbour's value, so patches are correlated across channels and positions.
Tensor correlated_images(int64_t n, int64_t h, int64_t w, uint64_t seed) {
  Generator gen(seed);
  const Tensor z = Tensor::randn({n, h, w, 3}, gen, DType::Float64);
  const auto zv = z.to_vector<double>();
  std::vector<double> x(zv.size());
  for (int64_t p = 0; p < n * h * w; ++p) {
    const double* a = &zv[static_cast<std::size_t>(p * 3)];
    const double* left = (p % w) ? a - 3 : a;
    double* o = &x[static_cast<std::size_t>(p * 3)];
    o[0] = 2.0 * a[0] + 0.5 * left[1];
    o[1] = a[0] - a[1] + 0.3;
    o[2] = 0.2 * a[2] + 0.7 * a[1] + 0.4 * left[0];
  }
  return Tensor::from_vector(x, {n, h, w, 3});
}

// The second moments of conv2d(images, kernel)'s output channels, [F, F], in float64.
std::vector<double> output_moments(const Tensor& images, const Tensor& kernel) {
  const Tensor y = conv2d(images, kernel.astype(DType::Float64));
  const int64_t F = y.size(3), rows = y.numel() / F;
  const auto v = y.to_vector<double>();
  std::vector<double> m(static_cast<std::size_t>(F * F), 0.0);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t a = 0; a < F; ++a)
      for (int64_t b = 0; b < F; ++b)
        m[static_cast<std::size_t>(a * F + b)] +=
            v[static_cast<std::size_t>(r * F + a)] * v[static_cast<std::size_t>(r * F + b)];
  for (double& e : m) e /= static_cast<double>(rows);
  return m;
}

TEST(PatchWhitening, HandComputedOneByOneKernel) {
  // Four pixels of two channels: (2, 1), (-2, 1), (2, -1), (-2, -1). Second moments: 4 for channel
  // 0, 1 for channel 1, 0 across. So filter 0 is channel 0 / sqrt(4 + eps), filter 1 channel 1 /
  // sqrt(1 + eps), filters 2 and 3 their negations.
  const Tensor images = Tensor::from_vector(std::vector<float>{2, 1, -2, 1, 2, -1, -2, -1}, {1, 2, 2, 2});
  const double eps = 0.25;
  const Tensor k = patch_whitening_kernel(images, {1, 1}, {.epsilon = eps});
  ASSERT_EQ(k.shape(), Shape({1, 1, 2, 4}));
  EXPECT_EQ(k.dtype(), DType::Float32);
  const auto v = k.to_vector<float>();  // [c][f]
  const float a = static_cast<float>(1.0 / std::sqrt(4.0 + eps)), b = static_cast<float>(1.0 / std::sqrt(1.0 + eps));
  const std::vector<float> expected = {a, 0, -a, 0, 0, b, 0, -b};
  ASSERT_EQ(v.size(), expected.size());
  for (std::size_t i = 0; i < v.size(); ++i) EXPECT_NEAR(v[i], expected[i], 1e-7) << "element " << i;
}

TEST(PatchWhitening, ConvolvingWithTheKernelWhitensThePatches) {
  const Tensor images = correlated_images(6, 9, 8, 3);
  for (const std::array<int64_t, 2> ks : {std::array<int64_t, 2>{2, 2}, std::array<int64_t, 2>{3, 2}}) {
    const double eps = 1e-9;
    const Tensor k = patch_whitening_kernel(images, ks, {.epsilon = eps, .negated = false});
    const int64_t D = ks[0] * ks[1] * 3;
    ASSERT_EQ(k.shape(), Shape({ks[0], ks[1], 3, D}));
    const auto m = output_moments(images, k);
    for (int64_t a = 0; a < D; ++a)
      for (int64_t b = 0; b < D; ++b)
        EXPECT_NEAR(m[static_cast<std::size_t>(a * D + b)], a == b ? 1.0 : 0.0, 2e-5)
            << "kernel " << ks[0] << "x" << ks[1] << ", outputs " << a << " and " << b;
  }
}

TEST(PatchWhitening, FiltersComeByDecreasingVarianceWithTheirLargestComponentPositive) {
  // With a large epsilon, output k's second moment is lambda_k / (lambda_k + eps): decreasing in k
  // exactly when the eigenvalues are.
  const Tensor images = correlated_images(4, 7, 7, 11);
  const Tensor k = patch_whitening_kernel(images, {2, 2}, {.epsilon = 1.0, .negated = false});
  const int64_t D = 12;
  const auto m = output_moments(images, k);
  for (int64_t f = 1; f < D; ++f)
    EXPECT_GT(m[static_cast<std::size_t>((f - 1) * D + f - 1)], m[static_cast<std::size_t>(f * D + f)]) << f;
  const auto v = k.to_vector<float>();
  for (int64_t f = 0; f < D; ++f) {
    float largest = 0;
    for (int64_t d = 0; d < D; ++d) {
      const float e = v[static_cast<std::size_t>(d * D + f)];
      if (std::abs(e) > std::abs(largest)) largest = e;
    }
    EXPECT_GT(largest, 0.0F) << "filter " << f;
  }
}

TEST(PatchWhitening, NegatedHalfMirrorsTheFirstAndFloat32InputAgrees) {
  const Tensor images = correlated_images(3, 6, 6, 5);
  const Tensor both = patch_whitening_kernel(images, {2, 2});
  const Tensor plain = patch_whitening_kernel(images.astype(DType::Float32), {2, 2}, {.negated = false});
  const int64_t D = 12;
  ASSERT_EQ(both.shape(), Shape({2, 2, 3, 2 * D}));
  const auto b = both.to_vector<float>(), p = plain.to_vector<float>();
  for (int64_t d = 0; d < D; ++d)
    for (int64_t f = 0; f < D; ++f) {
      const float first = b[static_cast<std::size_t>(d * 2 * D + f)];
      EXPECT_EQ(b[static_cast<std::size_t>(d * 2 * D + D + f)], -first);
      EXPECT_NEAR(p[static_cast<std::size_t>(d * D + f)], first, 1e-4 * std::max(1.0F, std::abs(first)));
    }
}

// Passes when `f` throws kiln::Error with `part` in its message.
void expect_error_containing(const std::function<void()>& f, const std::string& part) {
  const std::string message = testing::message_of(f);
  EXPECT_NE(message.find(part), std::string::npos) << "message: " << message << "\nexpected to contain: " << part;
}

TEST(PatchWhitening, BadInputsAreNamed) {
  const Tensor images = correlated_images(2, 4, 4, 1);
  expect_error_containing(
      [&] {
        patch_whitening_kernel(Tensor::zeros({4, 4, 3}), {2, 2});
      },
      "[patch_whitening_kernel] images are [4, 4, 3]; expected a batch of images [N, H, W, C]");
  expect_error_containing(
      [&] {
        patch_whitening_kernel(Tensor::zeros({1, 4, 4, 3}, DType::UInt8), {2, 2});
      },
      "images are uint8; expected float32 or float64");
  expect_error_containing(
      [&] {
        patch_whitening_kernel(images, {0, 2});
      },
      "kernel_size is [0, 2]; expected at least 1 in each dimension");
  expect_error_containing([&] { patch_whitening_kernel(images, {5, 2}); }, "hold no 5x2 patch");
  expect_error_containing(
      [&] {
        patch_whitening_kernel(images, {2, 2}, {.epsilon = -1.0});
      },
      "epsilon is -1; expected a finite number >= 0");
  std::vector<double> values = images.to_vector<double>();
  values[37] = std::numeric_limits<double>::quiet_NaN();
  expect_error_containing(
      [&] {
        patch_whitening_kernel(Tensor::from_vector(values, images.shape()), {2, 2});
      },
      "at flat index 37; expected finite values");
  // Constant images: the patches span one direction, so with epsilon 0 eleven eigenvalues are 0.
  expect_error_containing(
      [&] {
        patch_whitening_kernel(Tensor::full({2, 4, 4, 3}, 0.5), {2, 2}, {.epsilon = 0.0});
      },
      "the patches span fewer than 12 directions");
}

TEST(CudaPatchWhitening, GpuImagesGiveTheCpuKernel) {
  REQUIRE_GPU();
  // Chunks of 2^22 patches: 5000 images of 31x31 patches take two, so the sum across chunks runs.
  const Tensor cpu_images = correlated_images(5000, 32, 32, 9).astype(DType::Float32);
  const Tensor gpu_images = cpu_images.to(Device::gpu(0));
  for (const double eps : {5e-4, 0.0}) {
    const auto expected = patch_whitening_kernel(cpu_images, {2, 2}, {.epsilon = eps}).to_vector<float>();
    const Tensor k = patch_whitening_kernel(gpu_images, {2, 2}, {.epsilon = eps});
    EXPECT_TRUE(k.device().is_cpu());
    const auto got = k.to_vector<float>();
    ASSERT_EQ(got.size(), expected.size());
    for (std::size_t i = 0; i < got.size(); ++i)
      EXPECT_NEAR(got[i], expected[i], 1e-5 * std::max(1.0F, std::abs(expected[i]))) << "eps " << eps << ", " << i;
  }
  std::vector<float> values = cpu_images.slice_rows(0, 3).to_vector<float>();
  values[100] = std::numeric_limits<float>::infinity();
  expect_error_containing(
      [&] {
        patch_whitening_kernel(Tensor::from_vector(values, {3, 32, 32, 3}, Device::gpu(0)), {2, 2});
      },
      "at flat index 100; expected finite values");
}

}  // namespace
}  // namespace kiln
