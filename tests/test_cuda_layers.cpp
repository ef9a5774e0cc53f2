// The pooling and activation layers and the initializers on the GPU against the CPU: forward and
// backward of each layer on the same inputs, the same initial weights for the same seed, and a
// model of them trained on both devices. Skipped, with the reason, where no GPU is usable.
#include <gtest/gtest.h>

#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "kiln/kiln.h"
#include "test_support.h"

using namespace kiln;
using namespace kiln::layers;

namespace {

// |gpu - cpu| <= atol + rtol |cpu| everywhere.
void expect_close(const Tensor& cpu, const Tensor& gpu, double rtol, double atol, const std::string& what) {
  ASSERT_EQ(cpu.shape(), gpu.shape()) << what;
  const auto c = cpu.to_vector<double>(), g = gpu.to_vector<double>();
  for (std::size_t i = 0; i < c.size(); ++i)
    ASSERT_LE(std::abs(c[i] - g[i]), atol + rtol * std::abs(c[i]))
        << what << " at " << i << ": cpu " << c[i] << ", gpu " << g[i];
}

// y = layer(x) and d sum(y * r) / dx on `device`, for the same x and r.
std::pair<Tensor, Tensor> forward_backward(Layer& layer, const Tensor& x_host, Device device) {
  Tensor x = x_host.to(device).clone();
  x.set_requires_grad(true);
  const Tensor y = layer.call(x, true);
  Generator gen(99);
  const Tensor r = Tensor::uniform(y.shape(), 0.5, 1.5, gen, DType::Float32, device);
  sum(mul(y, r)).backward();
  return {y.cpu(), x.grad().cpu()};
}

void compare_layer(Layer& layer, const Shape& shape, double rtol, double atol) {
  Generator gen(5);
  const Tensor x = Tensor::uniform(shape, -3, 3, gen);
  const auto [yc, dxc] = forward_backward(layer, x, Device::cpu());
  const auto [yg, dxg] = forward_backward(layer, x, Device::gpu());
  expect_close(yc, yg, rtol, atol, layer.class_name() + " " + layer.get_config().dump() + " forward");
  expect_close(dxc, dxg, rtol, atol, layer.class_name() + " " + layer.get_config().dump() + " backward");
}

}  // namespace

TEST(CudaLayers, PoolingLayersMatchTheCpu) {
  REQUIRE_GPU();
  std::vector<std::shared_ptr<Layer>> pools = {
      std::make_shared<AveragePooling2D>(std::array<int64_t, 2>{2, 2}),
      std::make_shared<AveragePooling2D>(std::array<int64_t, 2>{3, 3},
                                         AveragePooling2DOptions{.strides = {2, 1}, .padding = "same"}),
      std::make_shared<GlobalAveragePooling2D>(),
      std::make_shared<GlobalAveragePooling2D>(GlobalPooling2DOptions{.keepdims = true}),
      std::make_shared<GlobalMaxPooling2D>(),
      std::make_shared<GlobalMaxPooling2D>(GlobalPooling2DOptions{.keepdims = true})};
  // Float32 sums of up to 8 * 9 = 72 cells in another order: a few ulps.
  for (const auto& pool : pools) compare_layer(*pool, Shape{3, 8, 9, 5}, 1e-5, 1e-6);
}

TEST(CudaLayers, ActivationLayersMatchTheCpu) {
  REQUIRE_GPU();
  for (const char* name :
       {"elu", "gelu", "leaky_relu", "linear", "relu", "sigmoid", "silu", "softmax", "swish", "tanh"}) {
    Activation layer(name);
    compare_layer(layer, Shape{16, 33}, 1e-5, 1e-6);
  }
}

TEST(CudaLayers, InitializersGiveTheSameWeightsOnBothDevices) {
  REQUIRE_GPU();
  for (const char* name : {"glorot_normal", "he_normal", "he_uniform", "lecun_normal", "lecun_uniform", "random_normal",
                           "random_uniform", "truncated_normal"}) {
    Generator a(4), b(4);
    const auto init = initializers::get(name);
    const Tensor on_cpu = (*init)(Shape{3, 3, 8, 16}, a, Device::cpu());
    const Tensor on_gpu = (*init)(Shape{3, 3, 8, 16}, b, Device::gpu());
    EXPECT_TRUE(on_gpu.device().is_cuda());
    EXPECT_EQ(on_cpu.to_vector<float>(), on_gpu.to_vector<float>()) << name;
  }
}

TEST(CudaLayers, ModelOfTheNewLayersTrainsAlikeOnBothDevices) {
  REQUIRE_GPU();
  auto model = [](Device device) {
    set_default_device(device);
    utils::set_random_seed(21);
    Sequential m(
        {Conv2D(6, {3, 3}, {.activation = "gelu", .kernel_initializer = "he_normal", .input_shape = {10, 10, 3}}),
         AveragePooling2D({3, 3}, {.strides = {2, 2}, .padding = "same"}), Activation("silu"),
         Conv2D(8, {3, 3}, {.activation = "elu", .kernel_regularizer = regularizers::l2(1e-3)}),
         GlobalMaxPooling2D({.keepdims = true}), GlobalAveragePooling2D(),
         Dense(8, {.activation = "leaky_relu", .kernel_initializer = "lecun_uniform"}), Dense(4)});
    set_default_device(Device::cpu());
    m.compile(optimizers::Adam(), losses::SparseCategoricalCrossentropy({.from_logits = true}));
    return m;
  };
  Sequential cpu_model = model(Device::cpu()), gpu_model = model(Device::gpu());
  ASSERT_TRUE(gpu_model.device().is_cuda());
  const auto cw = cpu_model.trainable_weights(), gw = gpu_model.trainable_weights();
  ASSERT_EQ(cw.size(), gw.size());
  for (std::size_t i = 0; i < cw.size(); ++i) EXPECT_EQ(cw[i].to_vector<float>(), gw[i].to_vector<float>()) << i;
  Generator gen(8);
  const Tensor x = Tensor::uniform({40, 10, 10, 3}, 0, 1, gen);
  std::vector<int32_t> labels(40);
  for (int i = 0; i < 40; ++i) labels[i] = i % 4;
  const Tensor y = Tensor::from_vector(labels);
  utils::set_random_seed(2);
  const History hc = cpu_model.fit(x, y, {.batch_size = 8, .epochs = 3, .verbose = 0});
  utils::set_random_seed(2);
  const History hg = gpu_model.fit(x, y, {.batch_size = 8, .epochs = 3, .verbose = 0});
  for (int e = 0; e < 3; ++e) EXPECT_NEAR(hg.history.at("loss")[e], hc.history.at("loss")[e], 1e-4) << "epoch " << e;
  expect_close(cpu_model.predict(x), gpu_model.predict(x), 1e-3, 1e-3, "predictions after training");
}

TEST(CudaLayers, FrozenKernelBiasGradientMatchesCpu) {
  // Conv2D with its kernel frozen and its bias trained (the whitening layer's case): the bias's
  // gradient is a sum over output positions, on both devices, with and without the fused ReLU.
  REQUIRE_GPU();
  Generator gen(5);
  const Tensor x = Tensor::uniform({8, 9, 9, 3}, -1.0, 1.0, gen), k = Tensor::uniform({2, 2, 3, 6}, -1.0, 1.0, gen);
  const Tensor b = Tensor::uniform({6}, -0.5, 0.5, gen), r = Tensor::uniform({8, 8, 8, 6}, 0.5, 1.5, gen);
  auto bias_grad = [&](Device device, DType dtype, const char* activation) {
    Tensor bias = b.to(device).astype(dtype).clone();
    bias.set_requires_grad(true);
    const Tensor y = conv2d(x.to(device).astype(dtype), k.to(device).astype(dtype), bias, activation);
    sum(mul(cast(y, DType::Float32), r.to(device))).backward();
    return bias.grad().astype(DType::Float32).cpu();
  };
  for (const char* activation : {"linear", "relu"})
    expect_close(bias_grad(Device::cpu(), DType::Float32, activation),
                 bias_grad(Device::gpu(0), DType::Float32, activation), 1e-5, 1e-5, activation);
  // float16 (mixed precision's compute type), linear: the gradient reaching the bias is r rounded
  // to float16, so db is the column sum of those (512 terms, kept in float16: 2^-11 relative).
  const auto rounded = r.astype(DType::Float16).astype(DType::Float32).to_vector<float>();
  std::vector<double> expected(6, 0.0);
  for (std::size_t i = 0; i < rounded.size(); ++i) expected[i % 6] += rounded[i];
  const auto got = bias_grad(Device::gpu(0), DType::Float16, "linear").to_vector<float>();
  ASSERT_EQ(got.size(), 6u);
  for (std::size_t f = 0; f < 6; ++f) EXPECT_NEAR(got[f], expected[f], 1e-3 * expected[f]) << "filter " << f;
}
