// kiln::config::enable_op_determinism: the flag's round trip (the test binary turns it on, see
// process_defaults.cpp), that the CPU ignores it, and on a GPU that a ResNet-sized convolution's
// forward pass and gradients match the CPU to float32 rounding in both modes, repeat bit for bit
// under determinism, and that the mode cannot change while a step is being recorded.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "backend/backend.h"
#include "kiln/kiln.h"
#include "test_support.h"

using namespace kiln;
using kiln::testing::bitwise_equal;
using kiln::testing::message_of;
using kiln::testing::relative_error;

namespace {

class Determinism : public kiln::testing::ModeSetting {
 public:
  explicit Determinism(bool enabled)
      : ModeSetting(&config::enable_op_determinism, &config::op_determinism_enabled, enabled) {}
};

// The filter gradient sums N*OH*OW = 32,768 products per entry in an order that differs between
// the devices (and, without determinism, between runs); float32 rounding of such a sum stays
// below 1e-4 of the largest entry, while a wrong tap or channel would be off by O(1).
constexpr double kFloat32Tolerance = 1e-4;

// Output, input gradient, filter gradient and bias gradient of d sum(conv2d(x, k, b) * proj) for a
// ResNet-20 stage-one convolution: [32, 32, 32, 16] * 3x3x16x16, 'same'.
std::vector<std::vector<float>> conv_results(Device device) {
  Generator gen(11);
  const Tensor image = Tensor::uniform({32, 32, 32, 16}, -1.0, 1.0, gen);
  const Tensor kernel = Tensor::uniform({3, 3, 16, 16}, -0.3, 0.3, gen);
  const Tensor bias = Tensor::uniform({16}, -0.1, 0.1, gen);
  const Tensor proj = Tensor::uniform({32, 32, 32, 16}, -1.0, 1.0, gen);
  Tensor x = image.to(device).detach(), k = kernel.to(device).detach(), b = bias.to(device).detach();
  for (Tensor* t : {&x, &k, &b}) t->set_requires_grad(true);
  const Tensor y = conv2d(x, k, b, "linear", {1, 1}, Padding::Same);
  sum(mul(y, proj.to(device))).backward();
  return {y.to_vector<float>(), x.grad().to_vector<float>(), k.grad().to_vector<float>(), b.grad().to_vector<float>()};
}

}  // namespace

TEST(OpDeterminism, RoundTripsAndTheTestBinaryTurnsItOn) {
  EXPECT_TRUE(config::op_determinism_enabled());  // process_defaults.cpp
  {
    Determinism off(false);
    EXPECT_FALSE(config::op_determinism_enabled());
    config::enable_op_determinism(false);  // repeating a setting is harmless
    EXPECT_FALSE(config::op_determinism_enabled());
    config::enable_op_determinism();
    EXPECT_TRUE(config::op_determinism_enabled());
  }
  EXPECT_TRUE(config::op_determinism_enabled());
}

TEST(OpDeterminism, ChangesNothingOnTheCpu) {
  const auto deterministic = conv_results(Device::cpu());
  Determinism off(false);
  const auto fast = conv_results(Device::cpu());
  for (std::size_t i = 0; i < fast.size(); ++i) EXPECT_TRUE(bitwise_equal(fast[i], deterministic[i])) << "result " << i;
}

TEST(OpDeterminismGpu, BothModesMatchTheCpuAndDeterminismRepeatsBitForBit) {
  REQUIRE_GPU();
  const auto cpu = conv_results(Device::cpu());
  const Device gpu = Device::gpu(0);
  for (const bool deterministic : {false, true}) {
    Determinism setting(deterministic);
    const auto first = conv_results(gpu), second = conv_results(gpu);
    for (std::size_t i = 0; i < cpu.size(); ++i) {
      EXPECT_LT(relative_error(first[i], cpu[i]), kFloat32Tolerance)
          << "result " << i << ", determinism " << deterministic;
      if (deterministic) {
        EXPECT_TRUE(bitwise_equal(first[i], second[i])) << "result " << i << " changed between runs";
      }
    }
  }
}

TEST(OpDeterminismGpu, RefusedWhileRecording) {
  REQUIRE_GPU();
  backend::Backend& be = backend::cuda(0);
  be.begin_capture();
  const std::string message = message_of([] { config::enable_op_determinism(false); });
  be.abort_capture();
  EXPECT_NE(message.find("[enable_op_determinism]"), std::string::npos) << message;
  EXPECT_NE(message.find("recording"), std::string::npos) << message;
  EXPECT_TRUE(config::op_determinism_enabled());  // all or nothing
}
