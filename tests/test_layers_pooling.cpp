// Pooling layers: AveragePooling2D (Keras' "same" divisor), GlobalAveragePooling2D and
// GlobalMaxPooling2D (shapes, keepdims, values), their gradients against central differences in
// float64, configs through the registry, a model that trains with them, and the bad-input messages.
#include <gtest/gtest.h>

#include <algorithm>
#include <sstream>
#include <vector>

#include "gradcheck.h"
#include "kiln/kiln.h"
#include "test_support.h"

using namespace kiln;
using kiln::layers::AveragePooling2D;
using kiln::layers::GlobalAveragePooling2D;
using kiln::layers::GlobalMaxPooling2D;
using kiln::testing::gradcheck;
using kiln::testing::message_of;
using kiln::testing::random_input;

namespace {

using In = const std::vector<Tensor>&;

// 1..9 as a [1, 3, 3, 1] image.
Tensor one_to_nine() { return Tensor::from_vector<double>({1, 2, 3, 4, 5, 6, 7, 8, 9}, Shape{1, 3, 3, 1}); }

// A layer rebuilt from its config through the registry, as load_model does.
std::shared_ptr<Layer> rebuilt(const Layer& layer) {
  return layer_registry().make(layer.class_name(), layer.get_config());
}

}  // namespace

TEST(AveragePooling2DLayer, SamePaddingCountsOnlyCellsInsideTheInput) {
  AveragePooling2D pool({3, 3}, {.strides = {1, 1}, .padding = "same"});
  const Tensor y = pool.call(one_to_nine(), false);
  EXPECT_EQ(y.shape(), (Shape{1, 3, 3, 1}));
  EXPECT_EQ(pool.compute_output_shape(Shape{3, 3, 1}), (Shape{3, 3, 1}));
  // Corner windows hold 4 cells, edge windows 6, the centre 9.
  EXPECT_EQ(y.to_vector<double>(), (std::vector<double>{12 / 4.0, 21 / 6.0, 16 / 4.0, 27 / 6.0, 45 / 9.0, 33 / 6.0,
                                                        24 / 4.0, 39 / 6.0, 28 / 4.0}));
}

TEST(AveragePooling2DLayer, StridesDefaultToPoolSizeAndValidDropsTheRest) {
  AveragePooling2D pool;  // Keras' defaults: (2, 2), strides = pool_size, "valid"
  EXPECT_EQ(pool.pool_size(), (std::array<int64_t, 2>{2, 2}));
  EXPECT_EQ(pool.strides(), (std::array<int64_t, 2>{2, 2}));
  EXPECT_EQ(pool.name(), "average_pooling2d");
  const Tensor y = pool.call(one_to_nine(), false);
  EXPECT_EQ(y.shape(), (Shape{1, 1, 1, 1}));
  EXPECT_EQ(y.item(), (1 + 2 + 4 + 5) / 4.0);
  EXPECT_EQ(pool.compute_output_shape(Shape{5, 7, 3}), (Shape{2, 3, 3}));
}

TEST(AveragePooling2DLayer, GradientsMatchCentralDifferences) {
  for (const char* padding : {"valid", "same"}) {
    AveragePooling2D pool({3, 2}, {.strides = {2, 1}, .padding = padding});
    EXPECT_TRUE(gradcheck([&](In in) { return pool.call(in[0], true); }, {random_input({2, 5, 4, 3}, 1)})) << padding;
  }
}

TEST(GlobalPooling2DLayers, ShapesAndKeepdims) {
  const Tensor x = random_input({2, 5, 7, 3}, 2).detach();
  GlobalAveragePooling2D gap;
  GlobalMaxPooling2D gmp;
  GlobalAveragePooling2D gap_keep({.keepdims = true});
  GlobalMaxPooling2D gmp_keep({.keepdims = true});
  EXPECT_EQ(gap.call(x, false).shape(), (Shape{2, 3}));
  EXPECT_EQ(gmp.call(x, false).shape(), (Shape{2, 3}));
  EXPECT_EQ(gap_keep.call(x, false).shape(), (Shape{2, 1, 1, 3}));
  EXPECT_EQ(gmp_keep.call(x, false).shape(), (Shape{2, 1, 1, 3}));
  EXPECT_EQ(gap.compute_output_shape(Shape{5, 7, 3}), (Shape{3}));
  EXPECT_EQ(gmp_keep.compute_output_shape(Shape{5, 7, 3}), (Shape{1, 1, 3}));
  EXPECT_EQ(gap.name(), "global_average_pooling2d");
  EXPECT_EQ(gmp.name(), "global_max_pooling2d");
}

TEST(GlobalPooling2DLayers, MeanAndMaxOfEachChannel) {
  const Tensor x = random_input({2, 5, 7, 3}, 3).detach();
  const std::vector<double> v = x.to_vector<double>();
  const std::vector<double> avg = GlobalAveragePooling2D().call(x, false).to_vector<double>();
  const std::vector<double> max = GlobalMaxPooling2D().call(x, false).to_vector<double>();
  for (int n = 0; n < 2; ++n)
    for (int c = 0; c < 3; ++c) {
      double s = 0, m = -1e300;
      for (int i = 0; i < 35; ++i) {
        s += v[(n * 35 + i) * 3 + c];
        m = std::max(m, v[(n * 35 + i) * 3 + c]);
      }
      EXPECT_NEAR(avg[n * 3 + c], s / 35, 1e-15) << n << ", " << c;
      EXPECT_EQ(max[n * 3 + c], m) << n << ", " << c;
    }
}

TEST(GlobalPooling2DLayers, GradientsMatchCentralDifferences) {
  for (bool keepdims : {false, true}) {
    GlobalAveragePooling2D gap({.keepdims = keepdims});
    GlobalMaxPooling2D gmp({.keepdims = keepdims});
    EXPECT_TRUE(gradcheck([&](In in) { return gap.call(in[0], true); }, {random_input({2, 4, 3, 5}, 4)}));
    EXPECT_TRUE(gradcheck([&](In in) { return gmp.call(in[0], true); }, {random_input({2, 4, 3, 5}, 5)}));
  }
}

TEST(PoolingLayers, ConfigsRoundTripThroughTheRegistry) {
  const AveragePooling2D avg({3, 2}, {.strides = {1, 2}, .padding = "same"});
  const GlobalAveragePooling2D gap({.keepdims = true});
  const GlobalMaxPooling2D gmp;
  EXPECT_EQ(avg.get_config(), (Config{{"pool_size", {3, 2}}, {"strides", {1, 2}}, {"padding", "same"}}));
  EXPECT_EQ(gap.get_config(), (Config{{"keepdims", true}}));
  for (const Layer* layer : std::vector<const Layer*>{&avg, &gap, &gmp}) {
    const auto copy = rebuilt(*layer);
    EXPECT_EQ(copy->class_name(), layer->class_name());
    EXPECT_EQ(copy->get_config(), layer->get_config()) << layer->class_name();
  }
  // Keras writes data_format and omits nothing else we read; keepdims defaults to false when absent.
  const auto from_keras = layer_registry().make("GlobalMaxPooling2D", Config{{"data_format", "channels_last"}});
  EXPECT_EQ(from_keras->get_config(), (Config{{"keepdims", false}}));
}

TEST(PoolingLayers, TrainInAModel) {
  utils::set_random_seed(3);
  Sequential model({layers::Conv2D(4, {3, 3}, {.activation = "relu", .input_shape = {8, 8, 2}}),
                    AveragePooling2D({2, 2}, {.padding = "same"}), GlobalMaxPooling2D({.keepdims = true}),
                    GlobalAveragePooling2D(), layers::Dense(3)});
  model.compile(optimizers::Adam({.learning_rate = 0.01}),
                losses::SparseCategoricalCrossentropy({.from_logits = true}));
  Generator gen(1);
  const Tensor x = Tensor::uniform({32, 8, 8, 2}, -1, 1, gen);
  std::vector<int32_t> labels(32);
  for (int i = 0; i < 32; ++i) labels[i] = i % 3;
  const History h = model.fit(x, Tensor::from_vector(labels), {.batch_size = 8, .epochs = 20, .verbose = 0});
  EXPECT_LT(h.history.at("loss").back(), h.history.at("loss").front());
  EXPECT_EQ(model.predict(x).shape(), (Shape{32, 3}));
  std::ostringstream summary;
  model.summary(summary);
  EXPECT_NE(summary.str().find("average_pooling2d"), std::string::npos) << summary.str();
  EXPECT_NE(summary.str().find("global_average_pooling2d"), std::string::npos) << summary.str();
  EXPECT_NE(summary.str().find("(None, 1, 1, 4)"), std::string::npos) << summary.str();
}

TEST(PoolingLayersErrors, BadArgumentsAndInputs) {
  EXPECT_EQ(message_of([] {
              AveragePooling2D({0, 2});
            }),
            "[average_pooling2d] pool_size (0, 2); expected positive sizes");
  EXPECT_EQ(message_of([] {
              AveragePooling2D({2, 2}, {.strides = {2, -1}});
            }),
            "[average_pooling2d] strides (2, -1); expected positive strides");
  EXPECT_EQ(message_of([] {
              AveragePooling2D({2, 2}, {.padding = "full"});
            }),
            "[average_pooling2d] unknown padding 'full'; expected \"valid\" or \"same\"");
  EXPECT_EQ(message_of([] {
              AveragePooling2D({4, 4}).compute_output_shape(Shape{3, 5, 1});
            }),
            "[average_pooling2d] input height 3 is smaller than the window (4) with padding \"valid\"; expected an "
            "input at least as large, or padding \"same\"");
  EXPECT_EQ(message_of([] {
              AveragePooling2D().compute_output_shape(Shape{4, 4});
            }),
            "[average_pooling2d] input of per-sample shape [4, 4]; expected (height, width, channels)");
  EXPECT_EQ(message_of([] {
              AveragePooling2D().call(Tensor::zeros({4, 4, 2}), false);
            }),
            "[average_pooling2d] input [4, 4, 2] does not fit the layer; expected [N, H, W, C] (channels_last)");
  EXPECT_EQ(message_of([] {
              GlobalAveragePooling2D().compute_output_shape(Shape{5, 3});
            }),
            "[global_average_pooling2d] input of per-sample shape [5, 3]; expected (height, width, channels) with "
            "height and width >= 1");
  EXPECT_EQ(message_of([] {
              GlobalMaxPooling2D().call(Tensor::zeros({2, 6}), false);
            }),
            "[global_max_pooling2d] input [2, 6] does not fit the layer; expected [N, H, W, C] (channels_last) with "
            "H and W >= 1");
  const std::string bad_config = message_of([] {
    layer_registry().make("GlobalMaxPooling2D", Config{{"keepdims", "yes"}});
  });
  EXPECT_EQ(bad_config.rfind("[from_config] the GlobalMaxPooling2D config: \"keepdims\" is ", 0), 0u) << bad_config;
  EXPECT_NE(bad_config.find("expected true or false"), std::string::npos) << bad_config;
}
