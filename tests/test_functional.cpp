// The functional API: kiln::Input, layers called on symbolic tensors, kiln::Model with several
// inputs and outputs, shared layers, the graph's errors, summary's "Connected to", saving, and
// Sequential as the special case that runs the same code.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <sstream>
#ifndef _WIN32
#include <sys/wait.h>
#include <unistd.h>
#endif
#include "kiln/kiln.h"
#include "step_equivalence.h"
#include "test_support.h"

using namespace kiln;
using kiln::testing::message_of;

namespace {

std::string temp_path(const std::string& name) {
  return (std::filesystem::temp_directory_path() /
          ("kiln_functional_" + std::to_string(kiln::testing::process_id()) + "_" + name))
      .string();
}

Tensor uniform(const Shape& shape, uint64_t seed) {
  Generator gen(seed);
  return Tensor::uniform(shape, -1, 1, gen);
}

// Two inputs through one shared Dense, each to its own head: shared weights, several inputs and
// several outputs, without merge layers.
Model two_tower(uint64_t seed) {
  utils::set_random_seed(seed);
  auto a = Input({4}, "left");
  auto b = Input({4}, "right");
  auto shared = std::make_shared<layers::Dense>(6, layers::DenseOptions{.activation = "tanh"});
  auto ha = (*shared)(a);
  auto hb = (*shared)(b);
  layers::Dense head_a(2), head_b(3);
  head_a.set_name("head_a");
  head_b.set_name("head_b");
  auto out_a = head_a(ha);
  auto out_b = head_b(hb);
  return Model({a, b}, {out_a, out_b}, "towers");
}

}  // namespace

TEST(Functional, AChainTrainsExactlyAsTheSameSequentialModel) {
  const Tensor x = uniform({40, 5}, 1), y = uniform({40, 2}, 2);
  utils::set_random_seed(3);
  auto in = Input({5});
  auto h = layers::Dense(8, {.activation = "relu"})(in);
  Model functional(in, layers::Dense(2)(h));
  utils::set_random_seed(3);
  Sequential sequential({layers::Dense(8, {.activation = "relu", .input_shape = {5}}), layers::Dense(2)});
  for (Model* m : {&functional, static_cast<Model*>(&sequential)}) m->compile("adam", "mse");
  const History hf = functional.fit(x, y, {.batch_size = 8, .epochs = 3, .verbose = 0});
  const History hs = sequential.fit(x, y, {.batch_size = 8, .epochs = 3, .verbose = 0});
  EXPECT_EQ(hf.history.at("loss"), hs.history.at("loss"));
  EXPECT_EQ(functional.predict(x).to_vector<float>(), sequential.predict(x).to_vector<float>());
}

TEST(Functional, ASharedLayerHasOneSetOfWeightsTrainedByBothCalls) {
  Model model = two_tower(5);
  ASSERT_EQ(model.layers().size(), 3u);  // dense, head_a, head_b
  EXPECT_EQ(model.trainable_weights().size(), 6u);
  EXPECT_EQ(model.count_params(), (4 * 6 + 6) + (6 * 2 + 2) + (6 * 3 + 3));
  // The shared kernel's gradient is the sum of both calls' gradients.
  const Tensor xa = uniform({3, 4}, 7), xb = uniform({3, 4}, 8);
  const std::vector<Tensor> out = model({xa, xb}, true);
  sum(out[0]).backward();
  const std::vector<float> ga = model.get_layer("dense")->trainable_weights()[0].grad().to_vector<float>();
  for (Tensor& w : model.trainable_weights()) w.zero_grad();
  const std::vector<Tensor> out2 = model({xa, xb}, true);
  sum(out2[1]).backward();
  const std::vector<float> gb = model.get_layer("dense")->trainable_weights()[0].grad().to_vector<float>();
  for (Tensor& w : model.trainable_weights()) w.zero_grad();
  const std::vector<Tensor> out3 = model({xa, xb}, true);
  add(sum(out3[0]), sum(out3[1])).backward();
  const std::vector<float> both = model.get_layer("dense")->trainable_weights()[0].grad().to_vector<float>();
  for (std::size_t i = 0; i < both.size(); ++i) EXPECT_NEAR(both[i], ga[i] + gb[i], 1e-5f);
}

TEST(Functional, SeveralOutputsWeighTheirLossesAndLogEachOne) {
  Model model = two_tower(11);
  model.compile(optimizers::SGD(), {losses::MeanSquaredError(), "mse"}, {{"mse"}, {}}, {0.25, 2.0});
  const Tensor xa = uniform({12, 4}, 1), xb = uniform({12, 4}, 2);
  const Tensor ya = uniform({12, 2}, 3), yb = uniform({12, 3}, 4);
  const auto logs = model.evaluate({xa, xb}, {ya, yb}, {.batch_size = 12, .verbose = 0});
  const std::vector<Tensor> pred = model.predict({xa, xb});
  const double la = mse(pred[0], ya).item(), lb = mse(pred[1], yb).item();
  EXPECT_NEAR(logs.at("head_a_loss"), la, 1e-6);
  EXPECT_NEAR(logs.at("head_b_loss"), lb, 1e-6);
  EXPECT_NEAR(logs.at("head_a_mse"), la, 1e-6);
  EXPECT_NEAR(logs.at("loss"), 0.25 * la + 2.0 * lb, 1e-6);
  EXPECT_EQ(logs.count("head_b_mse"), 0u);
  const History h =
      model.fit({xa, xb}, {ya, yb},
                {.batch_size = 4, .epochs = 5, .verbose = 0, .validation_data = ValidationData({xa, xb}, {ya, yb})});
  EXPECT_LT(h.history.at("loss").back(), h.history.at("loss").front());
  EXPECT_EQ(h.history.count("val_head_b_loss"), 1u);
}

TEST(Functional, SavedModelsLoadWithTheirGraphWeightsAndCompileSettings) {
  Model model = two_tower(13);
  model.compile(optimizers::Adam(), {"mse", "mse"}, {{"mse"}, {"mae"}}, {1.0, 0.5});
  const Tensor xa = uniform({16, 4}, 1), xb = uniform({16, 4}, 2);
  const Tensor ya = uniform({16, 2}, 3), yb = uniform({16, 3}, 4);
  model.fit({xa, xb}, {ya, yb}, {.batch_size = 4, .epochs = 2, .verbose = 0});
  const std::string path = temp_path("towers.kiln");
  model.save(path);
  Model loaded = load_model(path);
  EXPECT_FALSE(loaded.is_sequential());
  EXPECT_EQ(loaded.name(), "towers");
  ASSERT_EQ(loaded.layers().size(), 3u);
  const auto p0 = model.predict({xa, xb}), p1 = loaded.predict({xa, xb});
  for (std::size_t i = 0; i < 2; ++i) EXPECT_EQ(p0[i].to_vector<float>(), p1[i].to_vector<float>());
  EXPECT_EQ(loaded.loss_weights(), (std::vector<double>{1.0, 0.5}));
  EXPECT_EQ(loaded.output_metrics()[1], std::vector<std::string>{"mae"});
  EXPECT_EQ(loaded.optimizer()->iterations(), model.optimizer()->iterations());
  // Training on resumes identically: same optimizer state and shuffles.
  const History a = model.fit({xa, xb}, {ya, yb}, {.batch_size = 4, .epochs = 1, .verbose = 0});
  const History b = loaded.fit({xa, xb}, {ya, yb}, {.batch_size = 4, .epochs = 1, .verbose = 0});
  EXPECT_EQ(a.history.at("loss"), b.history.at("loss"));
  EXPECT_EQ(message_of([&] { Sequential s = load_model(path); }),
            "[load_model] the model 'towers' is a functional model, not a Sequential one; expected kiln::Model to "
            "hold it");
  std::filesystem::remove(path);
}

TEST(Functional, AModelSavedByAnotherProcessLoadsWithItsGraphAndWeights) {
#ifdef _WIN32
  GTEST_SKIP() << "needs fork()";
#else
  const std::string path = temp_path("other_process.kiln");
  const Tensor xa = uniform({5, 4}, 1), xb = uniform({5, 4}, 2);
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {  // another process: builds, compiles, saves, leaves without running destructors
    int code = 1;
    try {
      Model model = two_tower(21);
      model.compile("sgd", "mse");
      model.save(path);
      code = 0;
    } catch (...) {
    }
    ::_exit(code);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  Model loaded = load_model(path);
  Model same = two_tower(21);  // the seed draws the same weights here
  const auto want = same.predict({xa, xb}), got = loaded.predict({xa, xb});
  for (std::size_t i = 0; i < 2; ++i) EXPECT_EQ(got[i].to_vector<float>(), want[i].to_vector<float>());
  EXPECT_EQ(loaded.get_layer("dense")->trainable_weights().size(), 2u);
  std::filesystem::remove(path);
#endif
}

TEST(Functional, SequentialFilesStillLoadAsSequential) {
  utils::set_random_seed(1);
  Sequential model({layers::Dense(3, {.input_shape = {2}}), layers::Dense(1)});
  const std::string path = temp_path("seq.kiln");
  model.save(path);
  Sequential loaded = load_model(path);
  EXPECT_TRUE(loaded.is_sequential());
  loaded.add(layers::Dense(2));  // still a Sequential: add works
  EXPECT_EQ(loaded.output_shapes()[0], Shape({2}));
  std::filesystem::remove(path);
}

TEST(Functional, SummaryHasKerasConnectedToColumn) {
  Model model = two_tower(1);
  std::ostringstream os;
  model.summary(os);
  const std::string s = os.str();
  EXPECT_NE(s.find("Connected to"), std::string::npos) << s;
  EXPECT_NE(s.find("left (InputLayer)"), std::string::npos) << s;
  EXPECT_NE(s.find("left[0][0]"), std::string::npos) << s;
  EXPECT_NE(s.find("right[0][0]"), std::string::npos) << s;
  EXPECT_NE(s.find("dense[1][0]"), std::string::npos) << s;  // head_b reads the second call
  EXPECT_NE(s.find("Total params: 65"), std::string::npos) << s;
}

TEST(Functional, GraphErrorsNameTheLayerAndTheShapes) {
  auto x = Input({8, 8, 3});
  auto other = Input({5}, "other");
  auto y = layers::Dense(2)(other);
  EXPECT_EQ(message_of([&] { Model m(x, y); }),
            "[model] an output depends on input 'other' [None, 5], which is not among the model's inputs; expected "
            "every input it needs in inputs");
  EXPECT_EQ(message_of([&] { layers::MaxPooling2D({2, 2})(Input({4})); }).substr(0, 15), "[max_pooling2d]");
  EXPECT_EQ(message_of([&] { Model m({x, x}, {layers::Flatten()(x)}); }), "[model] inputs[1] is listed twice");
  EXPECT_EQ(message_of([&] { Input({0, 3}); }), "[Input] shape [0, 3] has an extent < 1; expected positive extents");
  EXPECT_EQ(message_of([&] {
              layers::Add()({Input({8, 8, 16}), Input({8, 8, 32})});
            }),
            "[add] inputs have shapes [None, 8, 8, 16] and [None, 8, 8, 32]; expected equal shapes");
}

TEST(Functional, FitChecksEveryInputAndTarget) {
  Model model = two_tower(2);
  model.compile("sgd", "mse");
  const Tensor xa = uniform({6, 4}, 1), ya = uniform({6, 2}, 3), yb = uniform({6, 3}, 4);
  EXPECT_EQ(message_of([&] {
              model.fit({xa}, {ya, yb}, {.verbose = 0});
            }),
            "[fit] got 1 input tensors; expected 2 (one per model input)");
  EXPECT_EQ(message_of([&] {
              model.fit({xa, uniform({5, 4}, 2)}, {ya, yb}, {.verbose = 0});
            }),
            "[fit] x[1] against y[0]: x has 5 samples but y has 6; expected the same number (one target per sample)");
  EXPECT_EQ(message_of([&] { model.predict(xa); }), "[predict] got 1 input tensors; expected 2 (one per model input)");
  EXPECT_EQ(message_of([&] { model.compile(optimizers::SGD(), {"mse"}); }),
            "[compile] got 1 losses for 2 outputs; expected one per output (or one loss for all)");
}

TEST(Functional, ALayerValueCalledTwiceIsOneLayer) {
  utils::set_random_seed(4);
  auto a = Input({3});
  layers::Dense dense(3);
  auto h = dense(dense(a));  // the same object: one layer, applied twice
  Model model(a, h);
  EXPECT_EQ(model.layers().size(), 1u);
  EXPECT_EQ(model.trainable_weights().size(), 2u);
}

TEST(Functional, RecordedStepEqualsEager) {
  REQUIRE_GPU();
  // A residual block with BatchNormalization, a shared convolution and Concatenate.
  kiln::testing::expect_recorded_step_equals_eager([] {
    auto in = Input({6, 6, 4});
    auto shared = std::make_shared<layers::Conv2D>(4, std::array<int64_t, 2>{3, 3},
                                                   layers::Conv2DOptions{.padding = "same", .use_bias = false});
    auto h = layers::Activation("relu")(layers::BatchNormalization()((*shared)(in)));
    h = layers::Add()({in, layers::BatchNormalization()((*shared)(h))});
    auto both = layers::Concatenate()({layers::GlobalAveragePooling2D()(h), layers::GlobalMaxPooling2D()(in)});
    Model model(in, layers::Dense(3)(both));
    model.compile("sgd", "sparse_categorical_crossentropy");
    return model;
  });
}
