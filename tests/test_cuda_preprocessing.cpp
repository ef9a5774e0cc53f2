// Preprocessing and augmentation on a GPU: image_transform, its backward and the random transforms
// bit for bit equal to the CPU's (both devices run backend/image_map.h's arithmetic with every
// rounding explicit, so the tolerance is exact), the layers' outputs and gradients equal to the
// CPU's for the same seed and counter, and recorded training steps equal to eager ones.
#include <gtest/gtest.h>

#include <array>

#include "backend/backend.h"
#include "cuda_parity.h"
#include "kiln/kiln.h"
#include "ops/image_random.h"
#include "step_equivalence.h"
#include "test_support.h"

using namespace kiln;
using kiln::testing::cpu;
using kiln::testing::DevBuf;
using kiln::testing::gpu;
using kiln::testing::random_vec;
using kiln::testing::with_nans;

namespace {

// Transforms that exercise each branch: flips with fractional shifts, downscales (several outputs
// per input), upscales, points far outside (several reflections or wraps) and exact integers.
template <typename T>
std::vector<T> mixed_transforms(int64_t n) {
  std::vector<T> t;
  const std::vector<std::array<double, 4>> kinds = {
      {-1, 4.3, 1, -1.7}, {0.6, 0.2, -1.4, 6.1}, {1, -9.5, 1, 13.25}, {1, 2, -1, 3}, {1.7, -3.1, 0.45, 0.4}};
  for (int64_t k = 0; k < n; ++k)
    for (double v : kinds[static_cast<std::size_t>(k) % kinds.size()]) t.push_back(static_cast<T>(v));
  return t;
}

template <typename T>
void expect_transform_parity(DType dtype) {
  const int64_t N = 7, H = 6, W = 5, C = 3;
  for (backend::ImageFill fill : {backend::ImageFill::Constant, backend::ImageFill::Reflect, backend::ImageFill::Wrap,
                                  backend::ImageFill::Nearest})
    for (bool bilinear : {true, false}) {
      const backend::ImageTransformGeometry g{
          .N = N, .H = H, .W = W, .C = C, .OH = 8, .OW = 4, .bilinear = bilinear, .fill = fill, .fill_value = 0.5};
      const std::vector<T> x = with_nans(random_vec<T>(N * H * W * C), 40), t = mixed_transforms<T>(N);
      const std::vector<T> dy = random_vec<T>(N * g.OH * g.OW * C);
      std::vector<T> y(dy.size()), dx(x.size());
      cpu().image_transform(dtype, g, x.data(), t.data(), y.data());
      cpu().image_transform_backward(dtype, g, dy.data(), t.data(), dx.data());
      const DevBuf gx(x), gt(t), gdy(dy), gy(y.size() * sizeof(T)), gdx(dx.size() * sizeof(T));
      gpu().image_transform(dtype, g, gx.ptr, gt.ptr, gy.ptr);
      gpu().image_transform_backward(dtype, g, gdy.ptr, gt.ptr, gdx.ptr);
      const std::string what = "fill " + std::to_string(static_cast<int>(fill)) + (bilinear ? " bilinear" : " nearest");
      kiln::testing::expect_close(y, gy.get<T>(), 0.0, 0.0, what + " forward");
      kiln::testing::expect_close(dx, gdx.get<T>(), 0.0, 0.0, what + " backward");
    }
}

}  // namespace

TEST(CudaImageTransform, ForwardAndBackwardAreBitIdenticalToCpu) {
  REQUIRE_GPU();
  expect_transform_parity<float>(DType::Float32);
  expect_transform_parity<double>(DType::Float64);
}

TEST(CudaImageTransform, RandomTransformsAreBitIdenticalToCpu) {
  REQUIRE_GPU();
  using backend::ImageAxisKind;
  const std::vector<std::array<backend::ImageAxisSpec, 2>> specs = {
      {{{.kind = ImageAxisKind::Flip, .size = 32}, {.kind = ImageAxisKind::Flip, .size = 30}}},
      {{{.kind = ImageAxisKind::Shift, .lo = -0.2, .hi = 0.3, .size = 32},
        {.kind = ImageAxisKind::Shift, .lo = -0.125, .hi = 0.125, .size = 17}}},
      {{{.kind = ImageAxisKind::Crop, .range = 8, .size = 40}, {.kind = ImageAxisKind::Crop, .range = 3, .size = 7}}},
      {{{.kind = ImageAxisKind::Fixed, .scale = 1.5, .offset = 0.25}, {.kind = ImageAxisKind::Flip, .size = 9}}},
  };
  const int64_t n = 1001;  // odd: the last block holds one sample
  for (const auto& axes : specs)
    for (int64_t step : {int64_t{0}, int64_t{7}, int64_t{1} << 40}) {
      std::vector<float> t(4 * n);
      std::vector<double> td(4 * n);
      cpu().random_image_transforms(DType::Float32, axes.data(), n, 99, &step, 4, 0, t.data());
      cpu().random_image_transforms(DType::Float64, axes.data(), n, 99, &step, 4, 0, td.data());
      const DevBuf counter(std::vector<int64_t>{step}), gt(t.size() * sizeof(float)), gtd(td.size() * sizeof(double));
      gpu().random_image_transforms(DType::Float32, axes.data(), n, 99, counter.as<int64_t>(), 4, 0, gt.ptr);
      gpu().random_image_transforms(DType::Float64, axes.data(), n, 99, counter.as<int64_t>(), 4, 0, gtd.ptr);
      EXPECT_EQ(gt.get<float>(), t) << "step " << step;
      EXPECT_EQ(gtd.get<double>(), td) << "step " << step;
    }
}

TEST(CudaImageTransform, RandomTransformsFromASampleOffsetMatchCpu) {
  REQUIRE_GPU();
  // A replica's shard: samples first.. of a larger batch (an odd first starts inside a Philox block).
  const std::array<backend::ImageAxisSpec, 2> axes = {
      backend::ImageAxisSpec{.kind = backend::ImageAxisKind::Shift, .lo = -0.2, .hi = 0.3, .size = 32},
      backend::ImageAxisSpec{.kind = backend::ImageAxisKind::Flip, .size = 30}};
  const int64_t n = 501, step = 7;
  const DevBuf counter(std::vector<int64_t>{step}), gt(4 * n * sizeof(float));
  for (const int64_t first : {int64_t{1}, int64_t{2}, int64_t{500}}) {
    std::vector<float> t(4 * n);
    cpu().random_image_transforms(DType::Float32, axes.data(), n, 99, &step, 4, first, t.data());
    gpu().random_image_transforms(DType::Float32, axes.data(), n, 99, counter.as<int64_t>(), 4, first, gt.ptr);
    EXPECT_EQ(gt.get<float>(), t) << "from sample " << first;
  }
}

namespace {

// The same layer built on the CPU and on the GPU from one seed.
template <typename L>
std::pair<std::shared_ptr<L>, std::shared_ptr<L>> layer_pair(const L& layer, const Shape& shape) {
  auto c = std::make_shared<L>(layer), g = std::make_shared<L>(layer);
  Generator g1(5), g2(5);
  c->build(shape, g1, Device::cpu());
  g->build(shape, g2, Device::gpu());
  return {c, g};
}

template <typename L>
void expect_layer_parity(const L& layer, const Shape& shape) {
  auto [c, g] = layer_pair(layer, shape);
  Generator gen(8);
  const Tensor x = Tensor::uniform(shape.prepend(9), -1, 1, gen);
  for (int step = 0; step < 3; ++step)
    for (bool training : {true, false}) {
      Tensor xc = x.clone(), xg = x.to(Device::gpu());
      xc.set_requires_grad(true);
      xg.set_requires_grad(true);
      const Tensor yc = c->call(xc, training), yg = g->call(xg, training);
      EXPECT_EQ(yc.to_vector<float>(), yg.to_vector<float>()) << layer.class_name() << " step " << step;
      sum(yc * yc).backward();
      sum(yg * yg).backward();
      EXPECT_EQ(xc.grad().to_vector<float>(), xg.grad().to_vector<float>()) << layer.class_name() << " step " << step;
    }
}

}  // namespace

TEST(CudaPreprocessingLayers, SameOutputsAndGradientsAsTheCpu) {
  REQUIRE_GPU();
  expect_layer_parity(layers::RandomFlip("horizontal_and_vertical", {.seed = 3}), {6, 7, 2});
  expect_layer_parity(layers::RandomFlip("horizontal"), {6, 7, 2});  // unseeded: the start drawn at build
  for (const std::string mode : {"constant", "reflect", "wrap", "nearest"})
    for (const std::string interpolation : {"bilinear", "nearest"})
      expect_layer_parity(
          layers::RandomTranslation({-0.3, 0.2}, 0.25,
                                    {.fill_mode = mode, .interpolation = interpolation, .seed = 4, .fill_value = 0.5}),
          {6, 7, 2});
  expect_layer_parity(layers::RandomCrop(4, 5, {.seed = 6}), {6, 7, 2});
  expect_layer_parity(layers::RandomCrop(8, 8, {.seed = 6}), {6, 7, 2});  // smaller: Keras' resize
}

// Rescaling and Normalization round as Keras' float32 ops on both devices.
TEST(CudaPreprocessingLayers, RescalingAndNormalizationMatchTheCpu) {
  REQUIRE_GPU();
  Generator gen(2);
  const Tensor x = Tensor::uniform({5, 4, 3}, 0, 255, gen);
  expect_layer_parity(layers::Rescaling(1.0 / 127.5, {.offset = -1}), {4, 3});
  expect_layer_parity(
      layers::Normalization({.mean = std::vector<double>{0.5, 1, 2}, .variance = std::vector<double>{0.3, 2, 0}}),
      {4, 3});
  auto adapted = std::make_shared<layers::Normalization>(layers::NormalizationOptions{.input_shape = {4, 3}});
  adapted->adapt(x);
  const Tensor want = adapted->call(x, false);
  Sequential m({LayerRef(std::shared_ptr<Layer>(adapted))});
  m.to(Device::gpu());
  EXPECT_EQ(m(x.to(Device::gpu()), false).to_vector<float>(), want.to_vector<float>());
}

// Eager warm-up steps, the recording, replays and eager partial batches all advance the layers'
// counters on the device: the transforms, and so the weights, losses and counters, agree bit for bit.
TEST(CudaPreprocessingLayers, RecordedStepsTrainAsEagerStepsBitForBit) {
  EXPECT_RECORDED_STEP_EQUALS_EAGER([] {
    Sequential model({layers::Rescaling(1.0 / 255, {.input_shape = {8, 8, 3}}), layers::RandomFlip("horizontal"),
                      layers::RandomTranslation(0.125, 0.125), layers::Conv2D(4, {3, 3}, {.activation = "relu"}),
                      layers::Flatten(), layers::Dense(3)});
    model.compile("adam", "sparse_categorical_crossentropy");
    return model;
  });
  EXPECT_RECORDED_STEP_EQUALS_EAGER([] {
    Sequential model(
        {layers::Normalization(
             {.mean = std::vector<double>{0.5}, .variance = std::vector<double>{0.1}, .input_shape = {9, 9, 2}}),
         layers::RandomFlip("vertical", {.seed = 2}),
         layers::RandomTranslation({-0.2, 0.1}, 0.2, {.fill_mode = "constant", .interpolation = "nearest"}),
         layers::RandomCrop(7, 7), layers::Conv2D(3, {3, 3}), layers::Flatten(), layers::Dense(2)});
    model.compile(optimizers::SGD({.learning_rate = 0.05}), losses::MeanSquaredError());
    return model;
  });
}
