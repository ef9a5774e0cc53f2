// Preprocessing and augmentation: image_transform's values by hand in every fill mode and both
// interpolations, its gradient; Rescaling and Normalization (given values, adapt) against Keras'
// formulas; RandomFlip, RandomTranslation and RandomCrop in training (draws pinned to the Philox
// stream), identity in inference, counters, save/load, configs and errors. GPU tests (Cuda*) are in
// test_cuda_preprocessing.cpp.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <set>
#include <sstream>

#include "gradcheck.h"
#include "kiln/kiln.h"
#include "test_support.h"

using namespace kiln;
using kiln::testing::gradcheck;
using kiln::testing::message_of;
using kiln::testing::process_id;
using kiln::testing::random_input;
namespace fs = std::filesystem;

namespace {

constexpr const char* kCounter = "seed_generator_state";

Tensor counter_tensor(const Layer& layer) {
  for (const auto& w : layer.all_weights())
    if (w.name == kCounter) return w.value;
  return Tensor();
}
int64_t counter_of(const Layer& layer) { return counter_tensor(layer).to_vector<int64_t>().at(0); }

std::vector<float> floats(const Tensor& t) { return t.to_vector<float>(); }

// An [N, H, W, C] float32 image whose value at (n, i, j, c) is given by f.
template <typename F>
Tensor image(int64_t N, int64_t H, int64_t W, int64_t C, F f) {
  std::vector<float> v;
  for (int64_t n = 0; n < N; ++n)
    for (int64_t i = 0; i < H; ++i)
      for (int64_t j = 0; j < W; ++j)
        for (int64_t c = 0; c < C; ++c) v.push_back(static_cast<float>(f(n, i, j, c)));
  return Tensor::from_vector(v, Shape{N, H, W, C});
}

// One transform (ay, by, ax, bx) for each of n images.
Tensor transforms(std::vector<float> t, int64_t n = 1) {
  std::vector<float> all;
  for (int64_t k = 0; k < n; ++k) all.insert(all.end(), t.begin(), t.end());
  return Tensor::from_vector(all, Shape{n, 4});
}

template <typename L>
std::shared_ptr<L> built(L layer, const Shape& shape) {
  auto p = std::make_shared<L>(std::move(layer));
  Generator gen(0);
  p->build(shape, gen, Device::cpu());
  return p;
}

// Element k of stream (seed, step, draw) as u in [0, 1), exactly.
double stream_u(uint64_t seed, int64_t step, uint64_t draw, int64_t k) {
  const Tensor u = random_uniform_philox({k + 1}, seed, Tensor::full({1}, static_cast<double>(step), DType::Int64),
                                         draw, DType::Float64);
  return u.to_vector<double>().back();
}

const Tensor kRow = image(1, 1, 5, 1, [](auto, auto, auto j, auto) { return j + 1; });  // [1 2 3 4 5]

}  // namespace

// ---- image_transform ----

TEST(ImageTransform, FlipReversesRowsAndColumns) {
  const Tensor x = image(1, 2, 3, 1, [](auto, auto i, auto j, auto) { return 10 * i + j; });
  EXPECT_EQ(floats(image_transform(x, transforms({-1, 1, -1, 2}), {2, 3})), (std::vector<float>{12, 11, 10, 2, 1, 0}));
  EXPECT_EQ(floats(image_transform(x, transforms({1, 0, -1, 2}), {2, 3}, Interpolation::Nearest)),
            (std::vector<float>{2, 1, 0, 12, 11, 10}));
}

// A whole-pixel shift reads x[j - 2] (right by 2) or x[j + 3] (left by 3); the points before and
// after the row come from each fill mode, the same for both interpolations.
TEST(ImageTransform, WholePixelShiftsInEveryFillMode) {
  struct Case {
    FillMode mode;
    std::vector<float> right2, left3;
  };
  const std::vector<Case> cases = {
      {FillMode::Constant, {9, 9, 1, 2, 3}, {4, 5, 9, 9, 9}},
      {FillMode::Reflect, {2, 1, 1, 2, 3}, {4, 5, 5, 4, 3}},  // d c b a | a b c d e | e d c
      {FillMode::Wrap, {4, 5, 1, 2, 3}, {4, 5, 1, 2, 3}},
      {FillMode::Nearest, {1, 1, 1, 2, 3}, {4, 5, 5, 5, 5}},
  };
  for (const Case& c : cases)
    for (Interpolation in : {Interpolation::Bilinear, Interpolation::Nearest}) {
      const std::string what = fill_mode_name(c.mode) + " " + interpolation_name(in);
      EXPECT_EQ(floats(image_transform(kRow, transforms({1, 0, 1, -2}), {1, 5}, in, c.mode, 9.0)), c.right2) << what;
      EXPECT_EQ(floats(image_transform(kRow, transforms({1, 0, 1, 3}), {1, 5}, in, c.mode, 9.0)), c.left3) << what;
    }
  // Far outside: reflect has period 2W, wrap period W.
  EXPECT_EQ(
      floats(image_transform(kRow, transforms({1, 0, 1, -12}), {1, 5}, Interpolation::Nearest, FillMode::Reflect)),
      (std::vector<float>{2, 1, 1, 2, 3}));  // x[-12..-8] = b a | a b c (reflections of a b c d e)
  EXPECT_EQ(floats(image_transform(kRow, transforms({1, 0, 1, 11}), {1, 5}, Interpolation::Nearest, FillMode::Wrap)),
            (std::vector<float>{2, 3, 4, 5, 1}));
}

TEST(ImageTransform, BilinearWeighsNeighboursAndFillsOutside) {
  // Right by half a pixel: y[j] = (x[j - 1] + x[j]) / 2, x[-1] the fill value 0.
  EXPECT_EQ(floats(image_transform(kRow, transforms({1, 0, 1, -0.5f}), {1, 5})),
            (std::vector<float>{0.5f, 1.5f, 2.5f, 3.5f, 4.5f}));
  // A point between four pixels of [[1, 2], [3, 4]] at row 0.25, column 0.5 (a = 0: every output
  // pixel samples there): 0.75 (0.5 * 1 + 0.5 * 2) + 0.25 (0.5 * 3 + 0.5 * 4) = 2.
  const Tensor x = image(1, 2, 2, 1, [](auto, auto i, auto j, auto) { return 2 * i + j + 1; });
  EXPECT_EQ(floats(image_transform(x, transforms({0, 0.25f, 0, 0.5f}), {1, 1})), (std::vector<float>{2.0f}));
  // Nearest rounds halves away from zero: column -0.5 is -1 (fill), 0.5 is 1, 1.4 is 1.
  EXPECT_EQ(floats(image_transform(kRow, transforms({1, 0, 0.9f, -0.5f}), {1, 3}, Interpolation::Nearest,
                                   FillMode::Constant, 7.0)),
            (std::vector<float>{7, 1, 2}));  // columns -0.5, 0.4, 1.3
  EXPECT_EQ(floats(image_transform(kRow, transforms({1, 0, 1, 0.5f}), {1, 2}, Interpolation::Nearest)),
            (std::vector<float>{2, 3}));  // columns 0.5 and 1.5
}

TEST(ImageTransform, CropAndPerSampleTransforms) {
  const Tensor x = image(2, 4, 4, 2, [](auto n, auto i, auto j, auto c) { return 100 * n + 10 * i + j + 0.5 * c; });
  const Tensor t = Tensor::from_vector<float>({1, 1, 1, 2, /* sample 1 */ -1, 3, 1, 0}, Shape{2, 4});
  const std::vector<float> y = floats(image_transform(x, t, {2, 2}, Interpolation::Nearest));
  EXPECT_EQ(y, (std::vector<float>{12, 12.5f, 13, 13.5f, 22, 22.5f, 23, 23.5f,             // rows 1-2, columns 2-3
                                   130, 130.5f, 131, 131.5f, 120, 120.5f, 121, 121.5f}));  // rows 3, 2
}

TEST(ImageTransform, GradientMatchesCentralDifferences) {
  Generator gen(3);
  // Two images: a flip with a fractional shift and a downscale with a flip (several outputs read
  // one input; the fill modes' edges read some pixels twice).
  const Tensor t = Tensor::from_vector<double>({-1, 3.3, 1, -1.25, 0.7, 0.4, -1.3, 4.6}, Shape{2, 4});
  for (FillMode mode : {FillMode::Constant, FillMode::Reflect, FillMode::Wrap, FillMode::Nearest})
    for (Interpolation in : {Interpolation::Bilinear, Interpolation::Nearest}) {
      const auto fn = [&](const std::vector<Tensor>& v) { return image_transform(v[0], t, {4, 5}, in, mode, 0.5); };
      EXPECT_TRUE(gradcheck(fn, {random_input({2, 4, 4, 3}, 7)})) << fill_mode_name(mode) << interpolation_name(in);
    }
}

TEST(ImageTransformErrors, ShapesAndNames) {
  EXPECT_EQ(message_of([] {
              image_transform(Tensor::zeros({2, 3}), transforms({1, 0, 1, 0}), {1, 1});
            }),
            "[image_transform] input has shape [2, 3]; expected 4 dimensions");
  EXPECT_EQ(message_of([] {
              image_transform(Tensor::zeros({2, 3, 3, 1}), transforms({1, 0, 1, 0}), {1, 1});
            }),
            "[image_transform] transforms have shape [1, 4] for 2 images; expected [2, 4] (ay, by, ax, bx per image)");
  EXPECT_EQ(message_of([] {
              image_transform(Tensor::zeros({1, 3, 3, 1}), transforms({1, 0, 1, 0}), {0, 2});
            }),
            "[image_transform] output size [0, 2]; expected a height and a width of at least 1");
  EXPECT_EQ(message_of([] { parse_fill_mode("mirror", "random_translation"); }),
            "[random_translation] fill_mode \"mirror\" is unknown; expected \"constant\", \"reflect\", \"wrap\" or "
            "\"nearest\"");
  EXPECT_EQ(message_of([] { parse_interpolation("bicubic", "random_translation"); }),
            "[random_translation] interpolation \"bicubic\" is unknown; expected \"bilinear\" or \"nearest\"");
}

// ---- Rescaling ----

TEST(Rescaling, ScalesAndOffsetsInFloat32AsKeras) {
  const Tensor x = Tensor::from_vector<float>({0, 1, 127, 255, -3.5f, 1e6f}, Shape{2, 3});
  layers::Rescaling layer(1.0 / 127.5, {.offset = -1.0});
  const std::vector<float> y = floats(layer.call(x, false)), xv = floats(x);
  const float scale = static_cast<float>(1.0 / 127.5), offset = -1.0f;
  for (std::size_t i = 0; i < xv.size(); ++i) {
    const float scaled = xv[i] * scale;  // rounded, then the offset added: Keras' two float32 ops
    EXPECT_EQ(y[i], scaled + offset) << i;
  }
  EXPECT_EQ(floats(layer.call(x, true)), y) << "training and inference alike";
  EXPECT_TRUE(
      gradcheck([](const std::vector<Tensor>& v) { return layers::Rescaling(0.25, {.offset = 2}).call(v[0], true); },
                {random_input({3, 4}, 1)}));
}

// ---- Normalization ----

TEST(Normalization, GivenMeanAndVarianceUseKerasFormula) {
  layers::Normalization layer(
      {.mean = std::vector<double>{1.0, -2.0, 0.5}, .variance = std::vector<double>{4.0, 0.3, 0.0}});
  Generator g(0);
  layer.build({3}, g, Device::cpu());
  EXPECT_TRUE(layer.all_weights().empty()) << "constants, as in Keras";
  const Tensor x = Tensor::from_vector<float>({0, 0, 0, 3, 1, 2e-7f}, Shape{2, 3});
  const std::vector<float> y = floats(layer.call(x, false)), xv = floats(x);
  const float mean[3] = {1.0f, -2.0f, 0.5f};
  const float denom[3] = {2.0f, std::sqrt(0.3f), 1e-7f};  // max(sqrt(var), epsilon): variance 0 gives 1e-7
  for (int i = 0; i < 6; ++i) EXPECT_EQ(y[i], (xv[i] - mean[i % 3]) / denom[i % 3]) << i;
  // invert undoes it.
  layers::Normalization inv(
      {.mean = std::vector<double>{1.0, -2.0, 0.5}, .variance = std::vector<double>{4.0, 0.3, 0.0}, .invert = true});
  inv.build({3}, g, Device::cpu());
  const std::vector<float> back = floats(inv.call(Tensor::from_vector<float>({-0.5f, 1, 2}, Shape{1, 3}), false));
  EXPECT_EQ(back, (std::vector<float>{1.0f + -0.5f * 2.0f, -2.0f + 1.0f * std::sqrt(0.3f), 0.5f + 2.0f * 1e-7f}));
  // One value for every feature; float64 inputs keep float64.
  layers::Normalization scalar({.axis = {}, .mean = std::vector<double>{3.0}, .variance = std::vector<double>{2.0}});
  scalar.build({1}, g, Device::cpu());
  EXPECT_EQ(scalar.call(Tensor::from_vector<double>({1, 2, 3}, Shape{3, 1}), false).to_vector<double>(),
            (std::vector<double>{-2 / std::sqrt(2.0), -1 / std::sqrt(2.0), 0.0}));
  // (A variance of 0 divides by 1e-7: finite differences of such outputs lose their precision.)
  layers::Normalization smooth(
      {.mean = std::vector<double>{1.0, -2.0, 0.5}, .variance = std::vector<double>{4.0, 0.3, 0.5}});
  smooth.build({3}, g, Device::cpu());
  EXPECT_TRUE(
      gradcheck([&](const std::vector<Tensor>& v) { return smooth.call(v[0], true); }, {random_input({4, 3}, 2)}));
}

// Keras' docstring examples, and per-channel statistics of images against a hand computation.
TEST(Normalization, AdaptComputesMeanAndPopulationVariance) {
  layers::Normalization layer;
  layer.adapt(Tensor::from_vector<float>({0, 7, 4, 2, 9, 6, 0, 7, 4, 2, 9, 6}, Shape{4, 3}));
  EXPECT_EQ(floats(layer.call(Tensor::from_vector<float>({0, 7, 4}, Shape{1, 3}), false)),
            (std::vector<float>{-1, -1, -1}));
  EXPECT_EQ(floats(layer.all_weights()[0].value), (std::vector<float>{1, 8, 5}));
  EXPECT_EQ(floats(layer.all_weights()[1].value), (std::vector<float>{1, 1, 1}));
  EXPECT_EQ(layer.all_weights()[2].value.to_vector<int64_t>(), (std::vector<int64_t>{4}));

  layers::Normalization all({.axis = {}});
  all.adapt(Tensor::from_vector<float>({1, 2, 3, 4, 5}, Shape{5, 1}));
  const std::vector<float> y = floats(all.call(Tensor::from_vector<float>({1, 2, 3}, Shape{3, 1}), false));
  EXPECT_EQ(y, (std::vector<float>{-2 / std::sqrt(2.0f), -1 / std::sqrt(2.0f), 0.0f}));

  Generator gen(5);
  const Tensor images = Tensor::uniform({6, 3, 4, 2}, -1, 3, gen);
  layers::Normalization per_channel;
  per_channel.adapt(images);
  const std::vector<float> v = floats(images);
  for (int c = 0; c < 2; ++c) {
    double s = 0, ss = 0;
    for (std::size_t i = c; i < v.size(); i += 2) s += v[i];
    const double m = s / 72.0;
    for (std::size_t i = c; i < v.size(); i += 2) ss += (v[i] - m) * (v[i] - m);
    EXPECT_EQ(floats(per_channel.all_weights()[0].value)[c], static_cast<float>(m));
    EXPECT_EQ(floats(per_channel.all_weights()[1].value)[c], static_cast<float>(ss / 72.0));
  }
  EXPECT_EQ(per_channel.all_weights()[2].value.to_vector<int64_t>(), (std::vector<int64_t>{72}));
}

TEST(Normalization, AdaptedWeightsAreKerasNonTrainableWeightsAndSave) {
  const std::string path =
      (fs::temp_directory_path() / ("kiln_norm_" + std::to_string(process_id()) + ".kiln")).string();
  Generator gen(2);
  const Tensor x = Tensor::uniform({20, 4}, 0, 10, gen);
  auto norm = std::make_shared<layers::Normalization>(layers::NormalizationOptions{.input_shape = {4}});
  utils::set_random_seed(1);
  Sequential model({LayerRef(std::shared_ptr<Layer>(norm)), layers::Dense(2)});
  norm->adapt(x);
  EXPECT_EQ(model.count_params(), 4 + 4 + 1 + 4 * 2 + 2) << "mean, variance, count and the Dense";
  EXPECT_EQ(model.trainable_weights().size(), 2u);
  std::ostringstream os;
  model.summary(os);
  EXPECT_NE(os.str().find("Non-trainable params: 9 "), std::string::npos) << os.str();
  model.compile("sgd", "mse");
  model.save(path);
  Sequential loaded = load_model(path);
  fs::remove(path);
  EXPECT_EQ(floats(loaded.predict(x)), floats(model.predict(x)));
  EXPECT_EQ(floats(loaded.layers()[0]->all_weights()[0].value), floats(norm->all_weights()[0].value));
}

TEST(NormalizationErrors, Messages) {
  EXPECT_EQ(message_of([] { layers::Normalization({.mean = std::vector<double>{1.0}}); }),
            "[normalization] mean is given without variance; expected both or neither");
  EXPECT_EQ(message_of([] {
              layers::Normalization({.mean = std::vector<double>{1.0}, .variance = std::vector<double>{-1.0}});
            }),
            "[normalization] variance holds -1; expected finite values >= 0");
  Generator g(0);
  EXPECT_EQ(message_of([&] { layers::Normalization({.axis = {0}}).build({3}, g, Device::cpu()); }),
            "[normalization] axis (0,) keeps the batch axis; expected feature axes only (1 or more, or negative)");
  EXPECT_EQ(message_of([&] { layers::Normalization({.axis = {3}}).build({3}, g, Device::cpu()); }),
            "[normalization] axis (3,) is out of range for inputs [None, 3]; expected axes in [-2, 2)");
  EXPECT_EQ(message_of([&] {
              layers::Normalization({.axis = {1}}).build({4, 3}, g, Device::cpu());
            }),
            "[normalization] axis (1,) keeps axes that are not the last ones of inputs [None, 4, 3]; expected the "
            "trailing axes (e.g. -1)");
  EXPECT_EQ(message_of([&] {
              layers::Normalization({.mean = std::vector<double>{1, 2}, .variance = std::vector<double>{1, 2}})
                  .build({3}, g, Device::cpu());
            }),
            "[normalization] mean and variance have 2 values for kept shape [3]; expected 1 or 3");
  EXPECT_EQ(message_of([] {
              layers::Normalization({.mean = std::vector<double>{1}, .variance = std::vector<double>{1}})
                  .adapt(Tensor::zeros({2, 3}));
            }),
            "[normalization] adapt() was called on a layer made with mean and variance; expected a layer made without "
            "them");
  layers::Normalization built_for_3;
  built_for_3.adapt(Tensor::zeros({2, 3}));
  EXPECT_EQ(message_of([&] {
              built_for_3.adapt(Tensor::zeros({2, 4}));
            }),
            "[normalization] adapt() got samples of shape [None, 4]; the layer was built for [None, 3]; expected data "
            "of that shape");
}

// ---- RandomFlip ----

TEST(RandomFlip, InferenceIsTheIdentityAndLeavesTheStream) {
  auto layer = built(layers::RandomFlip("horizontal", {.seed = 1}), {4, 4, 3});
  const Tensor x = Tensor::ones({2, 4, 4, 3});
  EXPECT_TRUE(layer->call(x, false).is_same(x));
  EXPECT_EQ(counter_of(*layer), 0);
  EXPECT_TRUE(layer->weights().empty()) << "the counter is state, as Dropout's";
}

// Each image is flipped exactly when element 2k of stream (seed, step, draw 1) is <= 0.5; about
// half of them are; the counter advances once per training call.
TEST(RandomFlip, FlipsFollowTheStreamAndAboutHalfTheImages) {
  const int64_t N = 2000;
  const Tensor x = image(N, 2, 3, 1, [](auto n, auto i, auto j, auto) { return 1000 * n + 10 * i + j; });
  for (const std::string mode : {"horizontal", "vertical", "horizontal_and_vertical"}) {
    auto layer = built(layers::RandomFlip(mode, {.seed = 42}), {2, 3, 1});
    for (int64_t step = 0; step < 2; ++step) {
      const std::vector<float> y = floats(layer->call(x, true));
      EXPECT_EQ(counter_of(*layer), step + 1);
      const Tensor u = random_uniform_philox({2 * N}, 42, Tensor::full({1}, static_cast<double>(step), DType::Int64), 1,
                                             DType::Float64);
      const std::vector<double> uv = u.to_vector<double>();
      int64_t flipped = 0;
      for (int64_t n = 0; n < N; ++n) {
        const bool flip = uv[2 * n] <= 0.5;
        flipped += flip;
        for (int64_t i = 0; i < 2; ++i)
          for (int64_t j = 0; j < 3; ++j) {
            const int64_t si = flip && mode != "horizontal" ? 1 - i : i, sj = flip && mode != "vertical" ? 2 - j : j;
            ASSERT_EQ(y[(n * 2 + i) * 3 + j], 1000 * n + 10 * si + sj) << mode << " image " << n;
          }
      }
      EXPECT_NEAR(static_cast<double>(flipped) / N, 0.5, 0.03) << mode;
    }
  }
}

TEST(RandomFlip, GradientIsTheSameFlip) {
  auto layer = built(layers::RandomFlip("horizontal_and_vertical", {.seed = 3}), {3, 4, 2});
  const Tensor start = counter_tensor(*layer).clone();
  const auto fn = [&](const std::vector<Tensor>& in) {
    layer->set_weight(kCounter, start);
    return layer->call(in[0], true);
  };
  EXPECT_TRUE(gradcheck(fn, {random_input({6, 3, 4, 2}, 4)}));
}

// ---- RandomTranslation ----

// A range of one point shifts every image by the same amount: down 2 rows (0.5 of 4), left 1
// column (-0.25 of 4); whole pixels, so both interpolations agree, and each fill mode fills as Keras
// documents.
TEST(RandomTranslation, FixedShiftInEveryFillMode) {
  const Tensor x = image(1, 4, 4, 1, [](auto, auto i, auto j, auto) { return 4 * i + j; });
  const std::vector<std::pair<std::string, std::vector<float>>> cases = {
      {"constant", {-1, -1, -1, -1, -1, -1, -1, -1, 1, 2, 3, -1, 5, 6, 7, -1}},
      {"reflect", {5, 6, 7, 7, 1, 2, 3, 3, 1, 2, 3, 3, 5, 6, 7, 7}},
      {"wrap", {9, 10, 11, 8, 13, 14, 15, 12, 1, 2, 3, 0, 5, 6, 7, 4}},
      {"nearest", {1, 2, 3, 3, 1, 2, 3, 3, 1, 2, 3, 3, 5, 6, 7, 7}},
  };
  for (const auto& [mode, want] : cases)
    for (const std::string interpolation : {"bilinear", "nearest"}) {
      auto layer =
          built(layers::RandomTranslation({0.5, 0.5}, {-0.25, -0.25},
                                          {.fill_mode = mode, .interpolation = interpolation, .fill_value = -1}),
                {4, 4, 1});
      EXPECT_EQ(floats(layer->call(x, true)), want) << mode << " " << interpolation;
      EXPECT_TRUE(layer->call(x, false).is_same(x));
    }
}

// Image k is shifted by (lo + (hi - lo) u) times the size, u elements 2k (rows) and 2k + 1
// (columns) of stream (seed, step, draw 2): the same as image_transform with those shifts.
TEST(RandomTranslation, ShiftsFollowTheStream) {
  Generator gen(1);
  const Tensor x = Tensor::uniform({5, 6, 7, 2}, 0, 1, gen);
  auto layer = built(layers::RandomTranslation(0.2, {-0.1, 0.3}, {.seed = 9}), {6, 7, 2});
  for (int64_t step = 0; step < 2; ++step) {
    std::vector<float> t;
    for (int64_t k = 0; k < 5; ++k) {
      // The layer's arithmetic in double: lo + (hi - lo) u, times the size.
      const double dy = (-0.2 + (0.2 - -0.2) * stream_u(9, step, 2, 2 * k)) * 6;
      const double dx = (-0.1 + (0.3 - -0.1) * stream_u(9, step, 2, 2 * k + 1)) * 7;
      EXPECT_LE(std::abs(dy), 0.2 * 6);
      t.insert(t.end(), {1, static_cast<float>(-dy), 1, static_cast<float>(-dx)});
    }
    const Tensor want =
        image_transform(x, Tensor::from_vector(t, Shape{5, 4}), {6, 7}, Interpolation::Bilinear, FillMode::Reflect);
    EXPECT_EQ(floats(layer->call(x, true)), floats(want)) << "step " << step;
  }
  EXPECT_EQ(counter_of(*layer), 2);
}

TEST(RandomTranslation, GradientMatchesCentralDifferences) {
  for (const std::string mode : {"constant", "reflect", "wrap", "nearest"}) {
    auto layer = built(layers::RandomTranslation(0.3, 0.4, {.fill_mode = mode, .seed = 5}), {4, 5, 2});
    const Tensor start = counter_tensor(*layer).clone();
    const auto fn = [&](const std::vector<Tensor>& in) {
      layer->set_weight(kCounter, start);
      return layer->call(in[0], true);
    };
    EXPECT_TRUE(gradcheck(fn, {random_input({3, 4, 5, 2}, 6)})) << mode;
  }
}

// ---- RandomCrop ----

// Each image gets its own window: start floor(u (H - h + 1)) for u elements 2k and 2k + 1 of
// stream (seed, step, draw 3).
TEST(RandomCrop, TrainingCropsAWindowPerImageFromTheStream) {
  const int64_t N = 64;
  const Tensor x = image(N, 6, 7, 1, [](auto n, auto i, auto j, auto) { return 100 * n + 10 * i + j; });
  auto layer = built(layers::RandomCrop(3, 4, {.seed = 11}), {6, 7, 1});
  EXPECT_EQ(layer->compute_output_shape({6, 7, 1}), (Shape{3, 4, 1}));
  const std::vector<float> y = floats(layer->call(x, true));
  std::set<int64_t> tops;
  for (int64_t n = 0; n < N; ++n) {
    const auto top = static_cast<int64_t>(std::floor(stream_u(11, 0, 3, 2 * n) * 4));
    const auto left = static_cast<int64_t>(std::floor(stream_u(11, 0, 3, 2 * n + 1) * 4));
    tops.insert(top);
    for (int64_t i = 0; i < 3; ++i)
      for (int64_t j = 0; j < 4; ++j) ASSERT_EQ(y[(n * 3 + i) * 4 + j], 100 * n + 10 * (top + i) + left + j) << n;
  }
  EXPECT_EQ(tops.size(), 4u) << "every start row occurs";
  EXPECT_EQ(counter_of(*layer), 1);
}

// Inference: the centred window of the target's aspect ratio, resized with TensorFlow's half-pixel
// rule (on a linear image the result is the image at the sampled points); a window of the target's
// size is a plain centre crop; an input of the target's size passes unchanged.
TEST(RandomCrop, InferenceIsKerasCentredWindowResized) {
  auto layer = built(layers::RandomCrop(4, 4), {6, 6, 1});
  const int64_t start = counter_of(*layer);
  const Tensor x = image(1, 6, 6, 1, [](auto, auto i, auto j, auto) { return 6 * i + j; });
  std::vector<float> want;
  for (double r : {0.25, 1.75, 3.25, 4.75})  // (o + 0.5) 1.5 - 0.5
    for (double c : {0.25, 1.75, 3.25, 4.75}) want.push_back(static_cast<float>(6 * r + c));
  EXPECT_EQ(floats(layer->call(x, false)), want);
  EXPECT_EQ(counter_of(*layer), start) << "inference draws nothing";
  const Tensor wide = image(1, 4, 6, 1, [](auto, auto i, auto j, auto) { return 10 * i + j; });
  EXPECT_EQ(floats(built(layers::RandomCrop(4, 4), {4, 6, 1})->call(wide, false)),
            (std::vector<float>{1, 2, 3, 4, 11, 12, 13, 14, 21, 22, 23, 24, 31, 32, 33, 34}));
  const Tensor same = Tensor::ones({2, 4, 4, 1});
  EXPECT_TRUE(built(layers::RandomCrop(4, 4), {4, 4, 1})->call(same, false).is_same(same));
}

// Training on images smaller than the target: Keras 3's box from the centred window's start,
// resized (values from Keras 3.15, TensorFlow backend).
TEST(RandomCrop, TrainingOnSmallerImagesMatchesKeras) {
  const Tensor x3 = image(1, 3, 3, 1, [](auto, auto i, auto j, auto) { return 3 * i + j; });
  EXPECT_EQ(floats(built(layers::RandomCrop(4, 4, {.seed = 1}), {3, 3, 1})->call(x3, true)),
            (std::vector<float>{0, 0.625f, 1.375f, 2, 1.875f, 2.5f, 3.25f, 3.875f, 4.125f, 4.75f, 5.5f, 6.125f, 6,
                                6.625f, 7.375f, 8}));
  const Tensor x25 = image(1, 2, 5, 1, [](auto, auto i, auto j, auto) { return 5 * i + j; });
  EXPECT_EQ(floats(built(layers::RandomCrop(4, 4, {.seed = 1}), {2, 5, 1})->call(x25, true)),
            (std::vector<float>{1, 2, 3, 4, 2.25f, 3.25f, 4.25f, 5.25f, 4.75f, 5.75f, 6.75f, 7.75f, 6, 7, 8, 9}));
}

TEST(RandomCrop, GradientMatchesCentralDifferences) {
  for (const Shape& in : {Shape{5, 6, 2}, Shape{3, 3, 2}}) {
    auto layer = built(layers::RandomCrop(4, 4, {.seed = 2}), in);
    const Tensor start = counter_tensor(*layer).clone();
    for (bool training : {true, false}) {
      const auto fn = [&](const std::vector<Tensor>& v) {
        layer->set_weight(kCounter, start);
        return layer->call(v[0], training);
      };
      EXPECT_TRUE(gradcheck(fn, {random_input(in.prepend(3), 8)})) << in.str() << " training " << training;
    }
  }
}

// ---- models: counters, save/load, configs ----

namespace {
Sequential augmented_cnn(uint64_t seed) {
  utils::set_random_seed(seed);
  Sequential model({layers::Rescaling(1.0 / 255, {.input_shape = {8, 8, 3}}), layers::RandomFlip("horizontal"),
                    layers::RandomTranslation(0.125, 0.125, {.fill_mode = "constant", .interpolation = "nearest"}),
                    layers::RandomCrop(6, 6), layers::Conv2D(4, {3, 3}, {.activation = "relu"}), layers::Flatten(),
                    layers::Dense(3)});
  model.compile("adam", "sparse_categorical_crossentropy");
  return model;
}
std::pair<Tensor, Tensor> image_data(int64_t n) {
  Generator gen(3);
  const Tensor x = Tensor::uniform({n, 8, 8, 3}, 0, 255, gen);
  std::vector<int32_t> y(static_cast<std::size_t>(n));
  for (int64_t i = 0; i < n; ++i) y[static_cast<std::size_t>(i)] = static_cast<int32_t>(i % 3);
  return {x, Tensor::from_vector(y, Shape{n})};
}
}  // namespace

TEST(PreprocessingModel, FitAdvancesEachCounterOncePerStepAndSaveLoadContinues) {
  const std::string path =
      (fs::temp_directory_path() / ("kiln_aug_" + std::to_string(process_id()) + ".kiln")).string();
  Sequential model = augmented_cnn(4);
  const auto [x, y] = image_data(24);
  std::vector<int64_t> starts;
  for (int l = 1; l <= 3; ++l) starts.push_back(counter_of(*model.layers()[l]));
  EXPECT_NE(starts[0], starts[1]) << "unseeded layers start apart";
  model.fit(x, y, {.batch_size = 8, .epochs = 2, .verbose = 0});
  for (int l = 1; l <= 3; ++l) EXPECT_EQ(counter_of(*model.layers()[l]), starts[l - 1] + 6) << l;
  model.evaluate(x, y, {.verbose = 0});
  EXPECT_EQ(floats(model.predict(x)), floats(model.predict(x))) << "inference is deterministic";
  for (int l = 1; l <= 3; ++l) EXPECT_EQ(counter_of(*model.layers()[l]), starts[l - 1] + 6);
  model.save(path);
  Sequential loaded = load_model(path);
  fs::remove(path);
  for (int l = 1; l <= 3; ++l) EXPECT_EQ(counter_of(*loaded.layers()[l]), counter_of(*model.layers()[l]));
  // Resuming from the file draws what the original draws: the same weights bit for bit.
  model.fit(x, y, {.batch_size = 8, .epochs = 3, .verbose = 0, .initial_epoch = 2});
  loaded.fit(x, y, {.batch_size = 8, .epochs = 3, .verbose = 0, .initial_epoch = 2});
  const auto wa = model.trainable_weights(), wb = loaded.trainable_weights();
  ASSERT_EQ(wa.size(), wb.size());
  for (std::size_t i = 0; i < wa.size(); ++i) EXPECT_EQ(floats(wa[i]), floats(wb[i])) << "weight " << i;
  EXPECT_EQ(model.count_params(), loaded.count_params());
  EXPECT_EQ(model.count_params(), (3 * 3 * 3 * 4 + 4) + (4 * 4 * 4 * 3 + 3)) << "augmentation has no params";
}

TEST(PreprocessingConfig, KerasFieldsRoundTrip) {
  const Config flip = layers::RandomFlip("vertical", {.seed = 7}).get_config();
  EXPECT_EQ(flip.at("mode"), "vertical");
  EXPECT_EQ(flip.at("seed"), 7);
  EXPECT_EQ(flip.at("data_format"), "channels_last");
  EXPECT_EQ(layers::RandomFlip::from_config(flip).mode(), "vertical");
  EXPECT_EQ(layers::RandomFlip::from_config(flip).seed(), std::optional<int64_t>(7));

  const layers::RandomTranslation t({-0.2, 0.3}, 0.1,
                                    {.fill_mode = "wrap", .interpolation = "nearest", .fill_value = 2});
  const Config tc = t.get_config();
  EXPECT_EQ(tc.at("height_factor"), Config::array({-0.2, 0.3}));
  EXPECT_EQ(tc.at("width_factor"), 0.1);
  EXPECT_EQ(tc.at("fill_mode"), "wrap");
  EXPECT_TRUE(tc.at("seed").is_null());
  const layers::RandomTranslation tb = layers::RandomTranslation::from_config(tc);
  EXPECT_EQ(tb.get_config(), tc);
  EXPECT_EQ(tb.height_factor().lower, -0.2);
  EXPECT_EQ(tb.width_factor().upper, 0.1);
  EXPECT_EQ(layers::RandomTranslation(0.1, 0.1).get_config().at("fill_mode"), "reflect") << "Keras' default";

  const Config cc = layers::RandomCrop(5, 6).get_config();
  EXPECT_EQ(layers::RandomCrop::from_config(cc).get_config(), cc);
  const Config rc = layers::Rescaling(0.5, {.offset = -1}).get_config();
  EXPECT_EQ(rc, (Config{{"scale", 0.5}, {"offset", -1.0}}));
  EXPECT_EQ(layers::Rescaling::from_config(rc).get_config(), rc);
  const Config nc =
      layers::Normalization({.mean = std::vector<double>{1, 2}, .variance = std::vector<double>{3, 4}}).get_config();
  EXPECT_EQ(nc.at("axis"), Config::array({-1}));
  EXPECT_EQ(nc.at("mean"), Config::array({1.0, 2.0}));
  EXPECT_EQ(layers::Normalization::from_config(nc).get_config(), nc);
  EXPECT_TRUE(layers::Normalization().get_config().at("mean").is_null());
  EXPECT_TRUE(layers::Normalization::from_config({{"axis", nullptr}}).options().axis.empty()) << "axis=None";
  for (const char* name : {"Rescaling", "Normalization", "RandomFlip", "RandomTranslation", "RandomCrop"})
    EXPECT_TRUE(layer_registry().contains(name)) << name;
}

TEST(PreprocessingErrors, FactorsModesAndShapes) {
  EXPECT_EQ(message_of([] { layers::RandomTranslation(1.5, 0.1); }),
            "[random_translation] height_factor is 1.5; expected a number in [-1, 1] or a pair (lower, upper) of them "
            "(fractions of the size)");
  EXPECT_EQ(message_of([] {
              layers::RandomTranslation(0.1, {-0.5, 2});
            }),
            "[random_translation] width_factor is (-0.5, 2); expected a number in [-1, 1] or a pair (lower, upper) "
            "of them (fractions of the size)");
  EXPECT_EQ(message_of([] { layers::RandomTranslation(0.1, 0.1, {.fill_mode = "mirror"}); }),
            "[random_translation] fill_mode \"mirror\" is unknown; expected \"constant\", \"reflect\", \"wrap\" or "
            "\"nearest\"");
  EXPECT_EQ(message_of([] { layers::RandomTranslation(0.1, 0.1, {.interpolation = "cubic"}); }),
            "[random_translation] interpolation \"cubic\" is unknown; expected \"bilinear\" or \"nearest\"");
  EXPECT_EQ(message_of([] { layers::RandomFlip("diagonal"); }),
            "[random_flip] mode \"diagonal\" is unknown; expected \"horizontal\", \"vertical\" or "
            "\"horizontal_and_vertical\"");
  EXPECT_EQ(message_of([] { layers::RandomCrop(0, 3); }),
            "[random_crop] target size 0x3; expected a height and a width of at least 1");
  EXPECT_EQ(message_of([] {
              layers::RandomFlip().compute_output_shape({8, 3});
            }),
            "[random_flip] input shape [None, 8, 3]; expected images (batch, height, width, channels), "
            "channels_last, none empty");
  EXPECT_EQ(message_of([] { layers::Rescaling(std::nan("")); }), "[rescaling] scale is nan; expected a finite number");
  EXPECT_EQ(message_of([] {
              layers::RandomFlip::from_config({{"mode", "horizontal"}, {"data_format", "channels_first"}});
            }),
            "[from_config] the RandomFlip config: data_format \"channels_first\" is not supported; expected "
            "\"channels_last\"");
  EXPECT_EQ(message_of([] {
              Sequential m({layers::Dense(4, {.input_shape = {3}}), layers::RandomTranslation(0.1, 0.1)});
            }),
            "[random_translation] input shape [None, 4]; expected images (batch, height, width, channels), "
            "channels_last, none empty");
}
