// Reshaping layers (ZeroPadding2D, Cropping2D, Reshape, Permute): values worked out by hand, the
// argument forms of Keras, gradients against central differences in float64, configs through the
// registry (Keras' forms included), bad input, and a Sequential model using all four that trains
// and comes back from save/load predicting the same bits.
#include <gtest/gtest.h>

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "gradcheck.h"
#include "kiln/kiln.h"
#include "test_support.h"

using namespace kiln;
using kiln::layers::Cropping2D;
using kiln::layers::Permute;
using kiln::layers::Reshape;
using kiln::layers::ZeroPadding2D;
using kiln::testing::gradcheck;
using kiln::testing::message_of;
using kiln::testing::process_id;
using kiln::testing::random_input;
namespace fs = std::filesystem;

namespace {

using In = const std::vector<Tensor>&;

std::vector<double> values(const Tensor& t) { return t.to_vector<double>(); }

// 1..9 as a [1, 3, 3, 1] image.
Tensor one_to_nine() { return Tensor::from_vector<double>({1, 2, 3, 4, 5, 6, 7, 8, 9}, Shape{1, 3, 3, 1}); }

std::shared_ptr<Layer> rebuilt(const Layer& layer) {
  return layer_registry().make(layer.class_name(), layer.get_config());
}

// Conv2D -> ZeroPadding2D -> Cropping2D -> Reshape -> Permute -> Flatten -> Dense, for 6x6x2 images.
Sequential reshaping_model(uint64_t seed) {
  utils::set_random_seed(seed);
  Sequential model({layers::Conv2D(4, {3, 3}, {.activation = "relu", .input_shape = {6, 6, 2}}),
                    ZeroPadding2D({{1, 2}, {0, 1}}), Cropping2D({{0, 1}, {2, 0}}), Reshape({-1, 4}), Permute({2, 1}),
                    layers::Flatten(), layers::Dense(3)});
  model.compile(optimizers::Adam({.learning_rate = 0.01}), losses::MeanSquaredError());
  return model;
}

class ReshapingIo : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("kiln_reshaping_" + std::to_string(process_id()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }
  fs::path dir_;
};

}  // namespace

TEST(ZeroPadding2DLayer, PadsTheSpatialAxesInKerasForms) {
  EXPECT_EQ(ZeroPadding2D().compute_output_shape(Shape{3, 3, 1}), (Shape{5, 5, 1})) << "Keras' default: 1 each side";
  EXPECT_EQ(ZeroPadding2D(2).compute_output_shape(Shape{3, 4, 2}), (Shape{7, 8, 2}));
  EXPECT_EQ(ZeroPadding2D({1, 2}).compute_output_shape(Shape{3, 4, 2}), (Shape{5, 8, 2}));
  EXPECT_EQ(ZeroPadding2D({{0, 1}, {2, 3}}).compute_output_shape(Shape{3, 4, 2}), (Shape{4, 9, 2}));
  ZeroPadding2D pad({{1, 0}, {0, 1}});
  EXPECT_EQ(pad.name(), "zero_padding2d");
  const Tensor y = pad.call(one_to_nine(), false);
  EXPECT_EQ(y.shape(), (Shape{1, 4, 4, 1}));
  EXPECT_EQ(values(y), (std::vector<double>{0, 0, 0, 0, 1, 2, 3, 0, 4, 5, 6, 0, 7, 8, 9, 0}));
}

TEST(Cropping2DLayer, CropsTheSpatialAxesInKerasForms) {
  EXPECT_EQ(Cropping2D().compute_output_shape(Shape{3, 3, 1}), (Shape{3, 3, 1})) << "Keras' default: nothing";
  EXPECT_EQ(Cropping2D(1).compute_output_shape(Shape{5, 6, 2}), (Shape{3, 4, 2}));
  EXPECT_EQ(Cropping2D({1, 2}).compute_output_shape(Shape{5, 6, 2}), (Shape{3, 2, 2}));
  Cropping2D crop({{1, 0}, {0, 1}});
  EXPECT_EQ(crop.name(), "cropping2d");
  const Tensor y = crop.call(one_to_nine(), false);
  EXPECT_EQ(y.shape(), (Shape{1, 2, 2, 1}));
  EXPECT_EQ(values(y), (std::vector<double>{4, 5, 7, 8}));
}

TEST(ReshapeLayer, InfersMinusOneAndKeepsTheOrder) {
  Reshape r({-1, 3});
  EXPECT_EQ(r.name(), "reshape");
  EXPECT_EQ(r.compute_output_shape(Shape{3, 3, 1}), (Shape{3, 3}));
  EXPECT_EQ(Reshape({2, -1, 2}).compute_output_shape(Shape{4, 2}), (Shape{2, 2, 2}));
  const Tensor x = one_to_nine();
  const Tensor y = r.call(x, false);
  EXPECT_EQ(y.shape(), (Shape{1, 3, 3}));
  EXPECT_EQ(values(y), values(x));
}

TEST(PermuteLayer, ReordersPerSampleDimensionsOneBased) {
  Permute p({2, 1});
  EXPECT_EQ(p.name(), "permute");
  EXPECT_EQ(Permute({3, 1, 2}).compute_output_shape(Shape{4, 5, 6}), (Shape{6, 4, 5}));
  const Tensor x = Tensor::from_vector<double>({1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}, Shape{2, 2, 3});
  const Tensor y = p.call(x, false);
  EXPECT_EQ(y.shape(), (Shape{2, 3, 2}));
  EXPECT_EQ(values(y), (std::vector<double>{1, 4, 2, 5, 3, 6, 7, 10, 8, 11, 9, 12})) << "the batch stays first";
}

TEST(ReshapingLayers, GradientsMatchCentralDifferences) {
  ZeroPadding2D pad({{1, 2}, {0, 3}});
  Cropping2D crop({{1, 0}, {2, 1}});
  Reshape reshape({2, -1});
  Permute permute({3, 1, 2});
  EXPECT_TRUE(gradcheck([&](In v) { return pad.call(v[0], true); }, {random_input({2, 3, 4, 2}, 1)}));
  EXPECT_TRUE(gradcheck([&](In v) { return crop.call(v[0], true); }, {random_input({2, 4, 5, 2}, 2)}));
  EXPECT_TRUE(gradcheck([&](In v) { return reshape.call(v[0], true); }, {random_input({2, 3, 4, 2}, 3)}));
  EXPECT_TRUE(gradcheck([&](In v) { return permute.call(v[0], true); }, {random_input({2, 3, 4, 2}, 4)}));
}

TEST(ReshapingLayers, ConfigsAreKerasAndRoundTrip) {
  const ZeroPadding2D pad({{1, 2}, {3, 4}});
  EXPECT_EQ(pad.get_config(), (Config{{"padding", {{1, 2}, {3, 4}}}, {"data_format", "channels_last"}}));
  const Cropping2D crop({2, 1});
  EXPECT_EQ(crop.get_config(), (Config{{"cropping", {{2, 2}, {1, 1}}}, {"data_format", "channels_last"}}));
  EXPECT_EQ(Reshape({-1, 4}).get_config(), (Config{{"target_shape", {-1, 4}}}));
  EXPECT_EQ(Permute({2, 1}).get_config(), (Config{{"dims", {2, 1}}}));
  const std::vector<std::shared_ptr<Layer>> all = {
      std::make_shared<ZeroPadding2D>(pad), std::make_shared<Cropping2D>(crop),
      std::make_shared<Reshape>(Reshape({-1, 4})), std::make_shared<Permute>(Permute({3, 1, 2}))};
  for (const auto& layer : all) {
    const auto copy = rebuilt(*layer);
    EXPECT_EQ(copy->class_name(), layer->class_name());
    EXPECT_EQ(copy->get_config(), layer->get_config()) << layer->class_name();
  }
  // Keras' other forms of padding and cropping in a config: n and [h, w].
  const auto from_int = layer_registry().make("ZeroPadding2D", Config{{"padding", 2}, {"data_format", nullptr}});
  EXPECT_EQ(from_int->get_config()["padding"], (Config{{2, 2}, {2, 2}}));
  const auto from_pair = layer_registry().make("Cropping2D", Config{{"cropping", {1, 3}}});
  EXPECT_EQ(from_pair->get_config()["cropping"], (Config{{1, 1}, {3, 3}}));
}

TEST(ReshapingLayers, BadConfigsAreRefused) {
  EXPECT_EQ(message_of([] {
              layer_registry().make("ZeroPadding2D", Config{{"padding", 1}, {"data_format", "channels_first"}});
            }),
            "[from_config] the ZeroPadding2D config: data_format is \"channels_first\"; expected \"channels_last\" "
            "(kiln is channels_last)");
  EXPECT_EQ(message_of([] {
              layer_registry().make("Cropping2D", Config{{"cropping", {{1, 2}, 3}}});
            }),
            "[from_config] the Cropping2D config: \"cropping\" is [[1,2],3]; expected n, [height, width] or [[top, "
            "bottom], [left, right]] of integers in [0, 2147483648]");
  EXPECT_EQ(message_of([] {
              layer_registry().make("Reshape", Config{{"target_shape", {2, 0}}});
            }),
            "[from_config] the Reshape config: \"target_shape\" is [2,0]; expected a list of integers in [1, "
            "2147483648] or -1");
}

TEST(ReshapingLayers, BadArgumentsAndInputsNameWhatWasWrong) {
  EXPECT_EQ(message_of([] { ZeroPadding2D(-1); }),
            "[zero_padding2d] padding ((-1, -1), (-1, -1)); expected amounts >= 0");
  EXPECT_EQ(message_of([] {
              Cropping2D({{0, 0}, {0, -2}});
            }),
            "[cropping2d] cropping ((0, 0), (0, -2)); expected amounts >= 0");
  EXPECT_EQ(message_of([] {
              ZeroPadding2D().compute_output_shape(Shape{8, 8});
            }),
            "[zero_padding2d] input of shape [None, 8, 8]; expected [None, height, width, channels] (channels_last)");
  EXPECT_EQ(message_of([] {
              Cropping2D({2, 0}).compute_output_shape(Shape{4, 4, 3});
            }),
            "[cropping2d] cropping ((2, 2), (0, 0)) leaves no rows of inputs of shape [None, 4, 4, 3]; expected top + "
            "bottom < height (4)");
  EXPECT_EQ(message_of([] {
              Cropping2D({0, 3}).call(Tensor::zeros({1, 4, 5, 3}), false);
            }),
            "[cropping2d] cropping ((0, 0), (3, 3)) leaves no columns of inputs of shape [None, 4, 5, 3]; expected "
            "left + right < width (5)");
  EXPECT_EQ(message_of([] {
              Reshape({-1, -1});
            }),
            "[reshape] target_shape [-1, -1]; expected positive dimensions and at most one -1 (the one to infer)");
  EXPECT_EQ(message_of([] {
              Reshape({5, -1}).compute_output_shape(Shape{4, 4, 2});
            }),
            "[reshape] cannot reshape inputs of shape [None, 4, 4, 2] (32 elements per sample) to target_shape "
            "[5, -1]; expected the same number of elements");
  EXPECT_EQ(message_of([] {
              Reshape({5, 6}).call(Tensor::zeros({2, 8}), false);
            }),
            "[reshape] cannot reshape inputs of shape [None, 8] (8 elements per sample) to target_shape [5, 6]; "
            "expected the same number of elements");
  EXPECT_EQ(message_of([] {
              Permute({1, 3});
            }),
            "[permute] dims [1, 3] are not a permutation of 1..2; expected each of 1..2 once (1-based, as in Keras)");
  EXPECT_EQ(message_of([] {
              Permute({2, 1}).compute_output_shape(Shape{4, 4, 2});
            }),
            "[permute] dims [2, 1] do not fit inputs of shape [None, 4, 4, 2]; expected a permutation of 1..3");
}

TEST_F(ReshapingIo, SequentialTrainsAndSavesAndLoads) {
  Sequential model = reshaping_model(3);
  // 6x6 -> conv 4x4x4 -> pad 7x5x4 -> crop 6x3x4 -> reshape 18x4 -> permute 4x18 -> 72 -> 3.
  EXPECT_EQ(model.layers()[4]->compute_output_shape(Shape{18, 4}), (Shape{4, 18}));
  // Targets the model can learn: each image's per-channel means and their difference, centred.
  Generator gen(5);
  const Tensor x = Tensor::uniform({40, 6, 6, 2}, 0, 1, gen);
  const auto xv = x.to_vector<float>();
  std::vector<float> yv;
  for (std::size_t n = 0; n < 40; ++n) {
    float m[2] = {0, 0};
    for (std::size_t p = 0; p < 36; ++p)
      for (std::size_t c = 0; c < 2; ++c) m[c] += xv[(n * 36 + p) * 2 + c] / 36;
    yv.insert(yv.end(), {4 * (m[0] - 0.5f), 4 * (m[1] - 0.5f), 4 * (m[0] - m[1])});
  }
  const Tensor y = Tensor::from_vector(yv, Shape{40, 3});
  const History h = model.fit(x, y, {.batch_size = 8, .epochs = 20, .verbose = 0});
  const auto& loss = h.history.at("loss");
  EXPECT_LT(loss.back(), 0.5 * loss.front()) << "the model learns through the reshaping layers";
  model.save(path("m.kiln"));
  Sequential loaded = load_model(path("m.kiln"));
  ASSERT_EQ(loaded.layers().size(), model.layers().size());
  for (std::size_t i = 0; i < model.layers().size(); ++i) {
    EXPECT_EQ(loaded.layers()[i]->class_name(), model.layers()[i]->class_name());
    EXPECT_EQ(loaded.layers()[i]->get_config(), model.layers()[i]->get_config()) << i;
  }
  EXPECT_EQ(loaded.predict(x).to_vector<float>(), model.predict(x).to_vector<float>());
}
