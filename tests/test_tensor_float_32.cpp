// kiln::config::enable_tensor_float_32_execution: the flag's round trip, that the CPU ignores it
// (bit for bit), and on a GPU that float32 matmul, dense and conv2d match the CPU to float32
// tolerance with TF32 off, differ by TF32's rounding (above float32's, below 1e-2) with it on, and
// return to float32 results when it is switched off again. Every test that enables TF32 restores
// the setting on exit, failures included (Tf32Setting).
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

// TF32 for one scope, restored on exit.
class Tf32Setting : public kiln::testing::ModeSetting {
 public:
  explicit Tf32Setting(bool enabled)
      : ModeSetting(&config::enable_tensor_float_32_execution, &config::tensor_float_32_execution_enabled, enabled) {}
};

// Float32 agreement between devices: sums of 1024 products in another order stay far below this.
constexpr double kFloat32Tolerance = 1e-5;
// TF32 keeps 10 mantissa bits of each input: errors of ~1e-3 relative per product, less after
// summation relative to the largest output.
constexpr double kTf32Tolerance = 1e-2;

// The inputs of the GPU tests: a product large enough for tensor cores, and the seed CNN's conv.
struct Inputs {
  Tensor a, b;                      // [256, 1024] x [1024, 256]
  Tensor bias;                      // [256]
  Tensor image, kernel, conv_bias;  // [64, 32, 32, 3], [3, 3, 3, 32], [32]
};

Inputs make_inputs() {
  Generator gen(42);
  return {Tensor::uniform({256, 1024}, -1.0, 1.0, gen),   Tensor::uniform({1024, 256}, -1.0, 1.0, gen),
          Tensor::uniform({256}, -1.0, 1.0, gen),         Tensor::uniform({64, 32, 32, 3}, 0.0, 1.0, gen),
          Tensor::uniform({3, 3, 3, 32}, -0.5, 0.5, gen), Tensor::uniform({32}, -0.1, 0.1, gen)};
}

// The three results on `device`, as host vectors.
struct Outputs {
  std::vector<float> matmul, dense, conv;
};

Outputs run(const Inputs& in, Device device) {
  NoGradGuard no_grad;
  return {matmul(in.a.to(device), in.b.to(device)).to_vector<float>(),
          dense(in.a.to(device), in.b.to(device), in.bias.to(device), "relu").to_vector<float>(),
          conv2d(in.image.to(device), in.kernel.to(device), in.conv_bias.to(device), "relu").to_vector<float>()};
}

}  // namespace

TEST(TensorFloat32, DisabledByDefaultAndRoundTrips) {
  EXPECT_FALSE(config::tensor_float_32_execution_enabled());
  {
    Tf32Setting on(true);
    EXPECT_TRUE(config::tensor_float_32_execution_enabled());
    config::enable_tensor_float_32_execution(true);  // repeating a setting is harmless
    EXPECT_TRUE(config::tensor_float_32_execution_enabled());
    config::enable_tensor_float_32_execution(false);
    EXPECT_FALSE(config::tensor_float_32_execution_enabled());
    config::enable_tensor_float_32_execution(true);
  }
  EXPECT_FALSE(config::tensor_float_32_execution_enabled());
}

TEST(TensorFloat32, ChangesNothingOnTheCpu) {
  Generator gen(7);
  const Tensor a = Tensor::uniform({64, 300}, -1.0, 1.0, gen), b = Tensor::uniform({300, 48}, -1.0, 1.0, gen);
  const std::vector<float> exact = matmul(a, b).to_vector<float>();
  Tf32Setting on(true);
  EXPECT_TRUE(bitwise_equal(matmul(a, b).to_vector<float>(), exact));
}

TEST(TensorFloat32Gpu, Float32WhenOffTf32WhenOnFloat32AgainWhenOff) {
  REQUIRE_GPU();
  ASSERT_FALSE(config::tensor_float_32_execution_enabled());
  const Inputs in = make_inputs();
  const Outputs cpu = run(in, Device::cpu());
  const Device gpu = Device::gpu(0);

  const Outputs off = run(in, gpu);
  EXPECT_LT(relative_error(off.matmul, cpu.matmul), kFloat32Tolerance);
  EXPECT_LT(relative_error(off.dense, cpu.dense), kFloat32Tolerance);
  EXPECT_LT(relative_error(off.conv, cpu.conv), kFloat32Tolerance);

  {
    Tf32Setting on(true);
    const Outputs tf32 = run(in, gpu);
    // Above float32's error: tensor cores ran (cuBLAS for matmul, cuBLASLt for dense).
    EXPECT_GT(relative_error(tf32.matmul, cpu.matmul), kFloat32Tolerance);
    EXPECT_GT(relative_error(tf32.dense, cpu.dense), kFloat32Tolerance);
    EXPECT_LT(relative_error(tf32.matmul, cpu.matmul), kTf32Tolerance);
    EXPECT_LT(relative_error(tf32.dense, cpu.dense), kTf32Tolerance);
    // cuDNN may still find an FMA algorithm fastest for 27-term sums; either way within TF32's bound.
    EXPECT_LT(relative_error(tf32.conv, cpu.conv), kTf32Tolerance);
  }

  // Off again: the plans made for float32 run again, so the products repeat bit for bit.
  ASSERT_FALSE(config::tensor_float_32_execution_enabled());
  const Outputs again = run(in, gpu);
  EXPECT_TRUE(bitwise_equal(again.matmul, off.matmul));
  EXPECT_TRUE(bitwise_equal(again.dense, off.dense));
  EXPECT_LT(relative_error(again.conv, cpu.conv), kFloat32Tolerance);
}

TEST(TensorFloat32Gpu, ConvolutionGradientsInBothModes) {
  REQUIRE_GPU();
  const Inputs in = make_inputs();
  Generator gen(3);
  const Tensor proj = Tensor::uniform({64, 30, 30, 32}, -1.0, 1.0, gen);
  // d sum(conv2d(x, k, b) * proj) / d{x, k, b} on `device`. Linear: with a ReLU, outputs within
  // rounding of 0 fall on different sides on the two devices and flip whole gradient terms (the
  // fused ReLU backward is compared on a shared mask in CudaBackend.ConvolutionMatchesCpu).
  auto grads = [&](Device device) {
    Tensor x = in.image.to(device).detach(), k = in.kernel.to(device).detach(), b = in.conv_bias.to(device).detach();
    for (Tensor* t : {&x, &k, &b}) t->set_requires_grad(true);
    sum(mul(conv2d(x, k, b, "linear"), proj.to(device))).backward();
    return std::vector<std::vector<float>>{x.grad().to_vector<float>(), k.grad().to_vector<float>(),
                                           b.grad().to_vector<float>()};
  };
  const auto cpu = grads(Device::cpu());
  for (const bool tf32 : {false, true}) {
    Tf32Setting setting(tf32);
    const auto gpu = grads(Device::gpu(0));
    for (std::size_t i = 0; i < cpu.size(); ++i)
      EXPECT_LT(relative_error(gpu[i], cpu[i]), kTf32Tolerance) << "gradient " << i << ", TF32 " << tf32;
  }
}

TEST(TensorFloat32Gpu, RefusedWhileRecording) {
  REQUIRE_GPU();
  backend::Backend& be = backend::cuda(0);
  be.begin_capture();
  const std::string message = message_of([] { config::enable_tensor_float_32_execution(true); });
  be.abort_capture();
  EXPECT_NE(message.find("[enable_tensor_float_32_execution]"), std::string::npos) << message;
  EXPECT_NE(message.find("recording"), std::string::npos) << message;
  EXPECT_FALSE(config::tensor_float_32_execution_enabled());  // all or nothing
}
