// Merge layers (Add, Subtract, Multiply, Average, Maximum, Concatenate): values worked out by hand,
// gradients against central differences in float64, output shapes, configs through the registry,
// and the messages for a wrong number of inputs, mismatched shapes and a call on one tensor.
#include <gtest/gtest.h>

#include <filesystem>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "gradcheck.h"
#include "kiln/kiln.h"
#include "test_support.h"

using namespace kiln;
using kiln::testing::gradcheck;
using kiln::testing::message_of;
using kiln::testing::random_input;

namespace {

using In = const std::vector<Tensor>&;

std::vector<double> values(const Tensor& t) { return t.to_vector<double>(); }

Tensor row(std::vector<double> v) {
  const auto n = static_cast<int64_t>(v.size());
  return Tensor::from_vector(v, Shape{1, n});
}

// A layer rebuilt from its config through the registry, as load_model does.
std::shared_ptr<Layer> rebuilt(const Layer& layer) {
  return layer_registry().make(layer.class_name(), layer.get_config());
}

// One of each merge layer, by class name.
std::vector<std::shared_ptr<Layer>> all_merge_layers() {
  return {std::make_shared<layers::Add>(),      std::make_shared<layers::Subtract>(),
          std::make_shared<layers::Multiply>(), std::make_shared<layers::Average>(),
          std::make_shared<layers::Maximum>(),  std::make_shared<layers::Concatenate>()};
}

}  // namespace

TEST(MergeLayers, ElementwiseValues) {
  const Tensor a = row({1, 6, -2}), b = row({4, 2, -2}), c = row({2, 2, 5});
  EXPECT_EQ(values(layers::Add().call_inputs({a, b, c}, false)), (std::vector<double>{7, 10, 1}));
  EXPECT_EQ(values(layers::Subtract().call_inputs({a, b}, false)), (std::vector<double>{-3, 4, 0}));
  EXPECT_EQ(values(layers::Multiply().call_inputs({a, b, c}, false)), (std::vector<double>{8, 24, 20}));
  EXPECT_EQ(values(layers::Average().call_inputs({a, b}, false)), (std::vector<double>{2.5, 4, -2}));
  EXPECT_EQ(values(layers::Average().call_inputs({a, b, c}, false)),
            (std::vector<double>{7 * (1.0 / 3), 10 * (1.0 / 3), 1 * (1.0 / 3)}));
  EXPECT_EQ(values(layers::Maximum().call_inputs({a, b, c}, false)), (std::vector<double>{4, 6, 5}));
}

TEST(MergeLayers, ConcatenateValuesAndAxes) {
  const Tensor a = Tensor::from_vector<double>({1, 2, 3, 4}, Shape{2, 2});
  const Tensor b = Tensor::from_vector<double>({5, 6}, Shape{2, 1});
  EXPECT_EQ(values(layers::Concatenate().call_inputs({a, b}, false)), (std::vector<double>{1, 2, 5, 3, 4, 6}));
  EXPECT_EQ(values(layers::Concatenate({.axis = 1}).call_inputs({a, b}, false)),
            (std::vector<double>{1, 2, 5, 3, 4, 6}));
  layers::Concatenate middle({.axis = 1});
  EXPECT_EQ(middle.compute_output_shape_inputs({Shape{4, 4, 3}, Shape{2, 4, 3}}), (Shape{6, 4, 3}));
  EXPECT_EQ(layers::Concatenate({.axis = -2}).compute_output_shape_inputs({Shape{4, 4, 3}, Shape{4, 1, 3}}),
            (Shape{4, 5, 3}));
  EXPECT_EQ(layers::Concatenate().compute_output_shape_inputs({Shape{8, 8, 16}, Shape{8, 8, 32}, Shape{8, 8, 1}}),
            (Shape{8, 8, 49}));
}

TEST(MergeLayers, OutputShapesAndNames) {
  const std::vector<std::string> names = {"add", "subtract", "multiply", "average", "maximum", "concatenate"};
  const auto all = all_merge_layers();
  for (std::size_t i = 0; i < all.size(); ++i) {
    EXPECT_EQ(all[i]->name(), names[i]);
    EXPECT_EQ(all[i]->compute_output_shape_inputs({Shape{8, 8, 16}, Shape{8, 8, 16}}),
              i == 5 ? (Shape{8, 8, 32}) : (Shape{8, 8, 16}))
        << names[i];
    EXPECT_TRUE(all[i]->weights().empty());
  }
}

TEST(MergeLayers, GradientsMatchCentralDifferences) {
  for (const auto& layer : all_merge_layers()) {
    const std::size_t n = layer->class_name() == "Subtract" ? 2 : 3;
    std::vector<Tensor> inputs;
    for (std::size_t i = 0; i < n; ++i) inputs.push_back(random_input({2, 3, 4}, 20 + i));
    EXPECT_TRUE(gradcheck([&](In v) { return layer->call_inputs(v, true); }, inputs)) << layer->class_name();
  }
  layers::Concatenate middle({.axis = 2});
  EXPECT_TRUE(gradcheck([&](In v) { return middle.call_inputs(v, true); },
                        {random_input({2, 3, 1, 2}, 30), random_input({2, 3, 4, 2}, 31)}));
}

// Ties: the first of the tied inputs gets the gradient (TensorFlow's maximum, left to right).
TEST(MergeLayers, MaximumGivesTiesToTheFirstInput) {
  std::vector<Tensor> in = {row({2, 1, 3}), row({2, 4, 3}), row({2, 4, 0})};
  for (auto& t : in) t.set_requires_grad(true);
  sum(layers::Maximum().call_inputs(in, true)).backward();
  EXPECT_EQ(values(in[0].grad()), (std::vector<double>{1, 0, 1}));
  EXPECT_EQ(values(in[1].grad()), (std::vector<double>{0, 1, 0}));
  EXPECT_EQ(values(in[2].grad()), (std::vector<double>{0, 0, 0}));
}

TEST(MergeLayers, ConfigsRoundTripThroughTheRegistry) {
  for (const auto& layer : all_merge_layers()) {
    const auto copy = rebuilt(*layer);
    EXPECT_EQ(copy->class_name(), layer->class_name());
    EXPECT_EQ(copy->get_config(), layer->get_config());
  }
  EXPECT_EQ(layers::Add().get_config(), Config::object());
  const layers::Concatenate c({.axis = 2});
  EXPECT_EQ(c.get_config(), (Config{{"axis", 2}}));
  const auto copy = rebuilt(c);
  EXPECT_EQ(dynamic_cast<layers::Concatenate&>(*copy).axis(), 2);
  EXPECT_EQ(dynamic_cast<layers::Concatenate&>(*layer_registry().make("Concatenate", Config::object())).axis(), -1);
}

TEST(MergeLayers, ShapeErrorsNameTheLayerAndShapes) {
  EXPECT_EQ(message_of([] {
              layers::Add().compute_output_shape_inputs({Shape{8, 8, 16}, Shape{8, 8, 32}});
            }),
            "[add] inputs have shapes [None, 8, 8, 16] and [None, 8, 8, 32]; expected equal shapes");
  EXPECT_EQ(message_of([] {
              layers::Maximum().compute_output_shape_inputs({Shape{4}, Shape{4}, Shape{5}});
            }),
            "[maximum] inputs have shapes [None, 4], [None, 4] and [None, 5]; expected equal shapes");
  EXPECT_EQ(message_of([] {
              layers::Concatenate().compute_output_shape_inputs({Shape{4, 4, 3}, Shape{4, 5, 3}});
            }),
            "[concatenate] inputs have shapes [None, 4, 4, 3] and [None, 4, 5, 3]; expected equal shapes except on "
            "axis -1");
  EXPECT_EQ(
      message_of([] {
        layers::Concatenate({.axis = 1}).compute_output_shape_inputs({Shape{4, 3}, Shape{4, 3, 1}});
      }),
      "[concatenate] inputs have shapes [None, 4, 3] and [None, 4, 3, 1]; expected equal shapes except on axis 1");
  EXPECT_EQ(message_of([] {
              layers::Concatenate({.axis = 0}).compute_output_shape_inputs({Shape{4}, Shape{4}});
            }),
            "[concatenate] axis 0 does not fit inputs of shapes [None, 4] and [None, 4]; expected -1 <= axis <= 1, "
            "other than the batch axis 0");
  EXPECT_EQ(
      message_of([] {
        layers::Concatenate({.axis = 3}).compute_output_shape_inputs({Shape{4, 2}, Shape{4, 2}});
      }),
      "[concatenate] axis 3 does not fit inputs of shapes [None, 4, 2] and [None, 4, 2]; expected -2 <= axis <= 2, "
      "other than the batch axis 0");
  // At call time the same checks run on the per-sample shapes, and batch sizes must agree.
  EXPECT_EQ(message_of([] {
              layers::Add().call_inputs({Tensor::zeros({2, 8}), Tensor::zeros({2, 7})}, false);
            }),
            "[add] inputs have shapes [None, 8] and [None, 7]; expected equal shapes");
  EXPECT_EQ(message_of([] {
              layers::Add().call_inputs({Tensor::zeros({2, 8}), Tensor::zeros({3, 8})}, false);
            }),
            "[add] inputs have batch sizes 2 (input 0) and 3 (input 1); expected equal ones");
}

TEST(MergeLayers, CountErrorsAndCallsOnOneTensor) {
  EXPECT_EQ(message_of([] { layers::Add().compute_output_shape_inputs({Shape{8}}); }),
            "[add] got 1 input ([None, 8]); expected a list of at least 2 inputs");
  EXPECT_EQ(message_of([] { layers::Concatenate().compute_output_shape_inputs({}); }),
            "[concatenate] got 0 inputs; expected a list of at least 2 inputs");
  EXPECT_EQ(message_of([] {
              layers::Subtract().compute_output_shape_inputs({Shape{2}, Shape{2}, Shape{2}});
            }),
            "[subtract] got 3 inputs ([None, 2], [None, 2] and [None, 2]); expected a list of exactly 2 inputs");
  EXPECT_EQ(message_of([] {
              layers::Subtract().call_inputs({Tensor::zeros({1, 2})}, false);
            }),
            "[subtract] got 1 input ([None, 2]); expected a list of exactly 2 inputs");
  EXPECT_EQ(message_of([] {
              layers::Add().call(Tensor::zeros({2, 8}), false);
            }),
            "[add] called on a single tensor of shape [2, 8]; expected a list of at least 2 inputs (a merge layer)");
  EXPECT_EQ(message_of([] { layers::Subtract().compute_output_shape(Shape{8}); }),
            "[subtract] called on a single input of shape [None, 8]; expected a list of exactly 2 inputs (a merge "
            "layer)");
  EXPECT_EQ(message_of([] {
              layers::Add().call_inputs({Tensor::zeros({2, 8}), Tensor()}, false);
            }),
            "[add] input 1 is an undefined tensor; expected a batch [N, ...]");
}

// In a functional model: shapes are checked when the graph is built, and a model of every merge
// layer trains, saves and loads back predicting the same bits.
TEST(MergeLayers, InAFunctionalModel) {
  auto a = Input({8, 8, 16});
  auto b = Input({8, 8, 32});
  EXPECT_EQ(message_of([&] {
              layers::Add()({a, b});
            }),
            "[add] inputs have shapes [None, 8, 8, 16] and [None, 8, 8, 32]; expected equal shapes");
  EXPECT_EQ(message_of([&] { layers::Add()(a); }),
            "[add] got 1 input ([None, 8, 8, 16]); expected a list of at least 2 inputs");

  utils::set_random_seed(4);
  auto x = Input({5});
  auto y = Input({5});
  auto hx = layers::Dense(6, {.activation = "tanh"})(x);
  auto hy = layers::Dense(6, {.activation = "tanh"})(y);
  auto merged =
      layers::Concatenate()({layers::Add()({hx, hy}), layers::Subtract()({hx, hy}), layers::Multiply()({hx, hy, hx}),
                             layers::Average()({hx, hy}), layers::Maximum()({hx, hy})});
  Model model({x, y}, {layers::Dense(2)(merged)});
  model.compile(optimizers::Adam({.learning_rate = 0.01}), losses::MeanSquaredError());
  std::ostringstream summary;
  model.summary(summary);
  EXPECT_NE(summary.str().find("Concatenate"), std::string::npos) << summary.str();
  Generator gen(8);
  const Tensor xv = Tensor::uniform({32, 5}, -1, 1, gen), yv = Tensor::uniform({32, 5}, -1, 1, gen);
  const Tensor target = Tensor::uniform({32, 2}, -1, 1, gen);
  const History h = model.fit({xv, yv}, {target}, {.batch_size = 8, .epochs = 10, .verbose = 0});
  EXPECT_LT(h.history.at("loss").back(), h.history.at("loss").front());
  const std::string path =
      (std::filesystem::temp_directory_path() / ("kiln_merge_" + std::to_string(kiln::testing::process_id()) + ".kiln"))
          .string();
  model.save(path);
  Model loaded = load_model(path);
  std::filesystem::remove_all(path);
  EXPECT_EQ(loaded.predict({xv, yv})[0].to_vector<float>(), model.predict({xv, yv})[0].to_vector<float>());
}
