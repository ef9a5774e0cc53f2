// Dropout: identity in inference, Keras' inverted dropout in training from the layer's own counter
// stream (advanced once per training call), its gradient, summary counts, save/load of the counter,
// config, bad input; on a GPU the same masks as the CPU and recorded steps equal to eager ones.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <sstream>

#include "gradcheck.h"
#include "kiln/kiln.h"
#include "step_equivalence.h"
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
  for (const auto& [name, w] : layer.named_weights())
    if (name == kCounter) return w;
  return Tensor();
}

int64_t counter_of(const Layer& layer) { return counter_tensor(layer).to_vector<int64_t>().at(0); }

// A Dropout layer built for per-sample `shape` on the CPU.
std::shared_ptr<layers::Dropout> built_dropout(double rate, std::optional<int64_t> seed, const Shape& shape,
                                               uint64_t gen_seed = 0) {
  auto layer = std::make_shared<layers::Dropout>(rate, layers::DropoutOptions{.seed = seed});
  Generator gen(gen_seed);
  layer->build(shape, gen, Device::cpu());
  return layer;
}

// Dense -> Dropout -> Dense, compiled with SGD and MSE, on the default device.
Sequential dropout_model(uint64_t seed, std::optional<int64_t> dropout_seed = std::nullopt) {
  utils::set_random_seed(seed);
  Sequential model({layers::Dense(16, {.activation = "relu", .input_shape = {4}}),
                    layers::Dropout(0.3, {.seed = dropout_seed}), layers::Dense(2)});
  model.compile(optimizers::SGD({.learning_rate = 0.05}), losses::MeanSquaredError());
  return model;
}

std::pair<Tensor, Tensor> regression_data(int64_t n) {
  Generator gen(42);
  return {Tensor::uniform({n, 4}, -1, 1, gen), Tensor::uniform({n, 2}, -1, 1, gen)};
}

std::vector<float> floats(const Tensor& t) { return t.to_vector<float>(); }

class DropoutIo : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("kiln_dropout_" + std::to_string(process_id()) + "_" +
                                        std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }
  fs::path dir_;
};

}  // namespace

TEST(Dropout, InferenceAndRateZeroAreTheIdentity) {
  const Tensor x = Tensor::full({4, 5}, 2.0);
  auto layer = built_dropout(0.5, 3, {5});
  EXPECT_TRUE(layer->call(x, false).is_same(x));
  EXPECT_EQ(counter_of(*layer), 0) << "inference leaves the stream alone";
  auto none = built_dropout(0.0, 3, {5});
  EXPECT_TRUE(none->call(x, true).is_same(x));
  EXPECT_EQ(counter_of(*none), 0);
}

// Keras' formula: kept values are x / (1 - rate), dropped ones 0, the mask being the op's stream
// (seed, step) with step the layer's counter.
TEST(Dropout, TrainingIsInvertedDropoutOfTheLayersStream) {
  const double rate = 0.25;
  Generator gen(1);
  const Tensor x = Tensor::uniform({200, 50}, 0.5, 1.5, gen);
  auto layer = built_dropout(rate, 1234, {50});
  const Tensor y = layer->call(x, true);
  const Tensor want = dropout(x, rate, 1234, Tensor::zeros({1}, DType::Int64), 0);
  EXPECT_EQ(floats(y), floats(want));
  const auto xv = floats(x), yv = floats(y);
  int64_t kept = 0;
  for (std::size_t i = 0; i < xv.size(); ++i) {
    if (yv[i] == 0.0f) continue;
    ++kept;
    EXPECT_EQ(yv[i], xv[i] * static_cast<float>(1.0 / (1.0 - rate))) << i;
  }
  const double kept_fraction = static_cast<double>(kept) / static_cast<double>(xv.size());
  EXPECT_NEAR(kept_fraction, 1.0 - rate, 0.02);
}

TEST(Dropout, EachTrainingCallAdvancesTheCounterAndDrawsANewMask) {
  const Tensor x = Tensor::ones({8, 64});
  auto a = built_dropout(0.5, 9, {64}), b = built_dropout(0.5, 9, {64});
  std::vector<std::vector<float>> masks;
  for (int step = 0; step < 3; ++step) {
    masks.push_back(floats(a->call(x, true)));
    EXPECT_EQ(counter_of(*a), step + 1);
    a->call(x, false);
    EXPECT_EQ(counter_of(*a), step + 1) << "inference calls do not advance it";
    const Tensor want = dropout(x, 0.5, 9, Tensor::full({1}, step, DType::Int64), 0);
    EXPECT_EQ(masks.back(), floats(want)) << "step " << step;
  }
  EXPECT_NE(masks[0], masks[1]);
  EXPECT_NE(masks[1], masks[2]);
  // The same seed replays the same masks, step by step.
  for (int step = 0; step < 3; ++step) EXPECT_EQ(floats(b->call(x, true)), masks[step]) << "step " << step;
}

TEST(Dropout, WithoutASeedTheStreamStartsWhereTheModelsGeneratorSays) {
  const auto starts = [](uint64_t seed) {
    utils::set_random_seed(seed);
    Sequential m({layers::Dense(3, {.input_shape = {2}}), layers::Dropout(0.5), layers::Dropout(0.5)});
    return std::pair{counter_of(*m.layers()[1]), counter_of(*m.layers()[2])};
  };
  const auto s1 = starts(5), s2 = starts(5), s3 = starts(6);
  EXPECT_EQ(s1, s2) << "set_random_seed reproduces the stream";
  EXPECT_NE(s1.first, s1.second) << "two layers, two streams";
  EXPECT_NE(s1, s3);
  for (int64_t s : {s1.first, s1.second, s3.first, s3.second}) {
    EXPECT_GE(s, 0);
    EXPECT_LT(s, int64_t{1} << 62);
  }
  // A seeded layer draws nothing: the layers after it get the weights they would get without it.
  utils::set_random_seed(5);
  Sequential with({layers::Dense(3, {.input_shape = {2}}), layers::Dropout(0.5, {.seed = 1}), layers::Dense(2)});
  utils::set_random_seed(5);
  Sequential without({layers::Dense(3, {.input_shape = {2}}), layers::Dense(2)});
  EXPECT_EQ(floats(with.layers()[2]->weights()[0]), floats(without.layers()[1]->weights()[0]));
}

TEST(Dropout, GradientMatchesCentralDifferencesWithTheCounterFixed) {
  auto layer = built_dropout(0.4, 77, {3, 5});
  const Tensor start = counter_tensor(*layer).clone();
  const auto fn = [&](const std::vector<Tensor>& in) {
    layer->set_weight(kCounter, start);  // every evaluation draws the same mask
    return layer->call(in[0], true);
  };
  EXPECT_TRUE(gradcheck(fn, {random_input({4, 3, 5}, 1)}));
  // The gradient is dy * keep / (1 - rate): zero exactly where the forward dropped.
  const Tensor x = random_input({4, 3, 5}, 2, 0.5, 1.5);
  const Tensor y = fn({x});
  sum(y).backward();
  const auto yv = y.to_vector<double>(), gv = x.grad().to_vector<double>();
  for (std::size_t i = 0; i < yv.size(); ++i) EXPECT_EQ(gv[i], yv[i] == 0.0 ? 0.0 : 1.0 / 0.6) << i;
}

TEST(Dropout, SummaryCountsNoParamsAsKerasDoes) {
  utils::set_random_seed(0);
  Sequential model({layers::Dense(4, {.input_shape = {3}}), layers::Dropout(0.5), layers::Dense(2)});
  std::ostringstream os;
  model.summary(os);
  const std::string s = os.str();
  EXPECT_NE(s.find("dropout (Dropout)"), std::string::npos) << s;
  EXPECT_NE(s.find("Total params: 26 "), std::string::npos) << s;
  EXPECT_NE(s.find("Non-trainable params: 0 "), std::string::npos) << s;
  EXPECT_EQ(model.count_params(), 16 + 10);
  const Layer& dropout_layer = *model.layers()[1];
  EXPECT_TRUE(dropout_layer.weights().empty());
  EXPECT_TRUE(dropout_layer.trainable_weights().empty());
  EXPECT_TRUE(dropout_layer.non_trainable_weights().empty());
  ASSERT_EQ(dropout_layer.all_weights().size(), 1u) << "the counter is state that save writes";
  EXPECT_EQ(dropout_layer.all_weights()[0].name, kCounter);
  EXPECT_EQ(dropout_layer.all_weights()[0].value.dtype(), DType::Int64);
  EXPECT_FALSE(dropout_layer.all_weights()[0].value.requires_grad());
}

TEST(Dropout, FitAdvancesTheCounterOncePerStepAndLeavesItToTheLayer) {
  Sequential model = dropout_model(3, 11);
  const auto [x, y] = regression_data(40);
  EXPECT_EQ(model.trainable_weights().size(), 4u) << "the counter is not the optimizer's";
  model.fit(x, y, {.batch_size = 8, .epochs = 2, .verbose = 0});
  EXPECT_EQ(counter_of(*model.layers()[1]), 10) << "5 steps per epoch, 2 epochs";
  model.evaluate(x, y, {.verbose = 0});
  model.predict(x);
  EXPECT_EQ(counter_of(*model.layers()[1]), 10) << "evaluate and predict do not drop";
  // Inference is deterministic; a training-mode forward is not the same as inference.
  EXPECT_EQ(floats(model.predict(x)), floats(model.predict(x)));
  NoGradGuard no_grad;
  EXPECT_NE(floats(model(x, true)), floats(model(x, false)));
}

TEST_F(DropoutIo, SaveLoadRestoresTheCounterAndContinuesTheMasks) {
  Sequential model = dropout_model(4);  // no seed: the stream's start is part of the saved state
  const auto [x, y] = regression_data(48);
  model.fit(x, y, {.batch_size = 8, .epochs = 2, .verbose = 0});
  model.save(path("m.kiln"));
  Sequential loaded = load_model(path("m.kiln"));
  EXPECT_EQ(counter_of(*loaded.layers()[1]), counter_of(*model.layers()[1]));
  EXPECT_EQ(floats(loaded.predict(x)), floats(model.predict(x)));
  // Training on from both gives the same weights bit for bit: same shuffles, same masks.
  model.fit(x, y, {.batch_size = 8, .epochs = 3, .verbose = 0, .initial_epoch = 2});
  loaded.fit(x, y, {.batch_size = 8, .epochs = 3, .verbose = 0, .initial_epoch = 2});
  const auto wa = model.trainable_weights(), wb = loaded.trainable_weights();
  ASSERT_EQ(wa.size(), wb.size());
  for (std::size_t i = 0; i < wa.size(); ++i) EXPECT_EQ(floats(wa[i]), floats(wb[i])) << "weight " << i;
  EXPECT_EQ(counter_of(*loaded.layers()[1]), counter_of(*model.layers()[1]));
  // save_weights/load_weights carry it too.
  model.save_weights(path("w.safetensors"));
  Sequential other = dropout_model(99);
  other.load_weights(path("w.safetensors"));
  EXPECT_EQ(counter_of(*other.layers()[1]), counter_of(*model.layers()[1]));
}

TEST(Dropout, ConfigIsKerasAndRoundTrips) {
  const layers::Dropout seeded(0.3, {.seed = -5});
  const Config c = seeded.get_config();
  EXPECT_EQ(c.at("rate"), 0.3);
  EXPECT_EQ(c.at("seed"), -5);
  EXPECT_TRUE(c.at("noise_shape").is_null());
  const layers::Dropout back = layers::Dropout::from_config(c);
  EXPECT_EQ(back.rate(), 0.3);
  EXPECT_EQ(back.options().seed, std::optional<int64_t>(-5));
  EXPECT_TRUE(layers::Dropout(0.1).get_config().at("seed").is_null());
  EXPECT_FALSE(layers::Dropout::from_config(layers::Dropout(0.1).get_config()).options().seed.has_value());
  EXPECT_TRUE(layer_registry().contains("Dropout"));
}

TEST(DropoutErrors, BadRateAndConfigs) {
  EXPECT_EQ(message_of([] { layers::Dropout(1.5); }), "[dropout] rate is 1.5; expected a value in [0, 1)");
  EXPECT_EQ(message_of([] { layers::Dropout(1.0); }), "[dropout] rate is 1; expected a value in [0, 1)");
  EXPECT_EQ(message_of([] { layers::Dropout(-0.1); }), "[dropout] rate is -0.1; expected a value in [0, 1)");
  EXPECT_EQ(message_of([] { layers::Dropout(std::nan("")); }), "[dropout] rate is nan; expected a value in [0, 1)");
  EXPECT_EQ(message_of([] {
              layers::Dropout::from_config({{"rate", 0.5}, {"noise_shape", {1, 4}}});
            }),
            "[from_config] the Dropout config: noise_shape is not supported; expected null (the mask covers every "
            "element)");
  EXPECT_NE(message_of([] { layers::Dropout::from_config({{"rate", "half"}}); }).find("\"rate\""), std::string::npos);
}

namespace {
// A layer asking for state that is trainable and yet outside weights(), which nothing would train.
class TrainableState : public Layer {
 public:
  std::string class_name() const override { return "TrainableState"; }
  Shape compute_output_shape(const Shape& s) const override { return s; }
  Tensor call(const Tensor& x, bool) override { return x; }

 protected:
  void create_weights(const Shape&) override {
    add_weight("state", {1}, initializers::Zeros(), {.trainable = true, .in_weights = false});
  }
};
}  // namespace

TEST(DropoutErrors, StateOutsideTheWeightsMustNotBeTrainable) {
  TrainableState layer;
  layer.set_name("state_layer");
  Generator gen(0);
  EXPECT_EQ(message_of([&] { layer.build({2}, gen, Device::cpu()); }),
            "[state_layer] weight 'state' is trainable but left out of weights(); expected .trainable = false with "
            ".in_weights = false");
}

// ---- GPU: the same stream on both devices, and recorded steps equal to eager ones ----

TEST(CudaDropout, SameMasksAndGradientsAsTheCpu) {
  REQUIRE_GPU();
  Generator gen(8);
  const Tensor x = Tensor::uniform({33, 70}, -1, 1, gen);
  auto cpu_layer = built_dropout(0.35, 21, {70});
  auto gpu_layer = std::make_shared<layers::Dropout>(0.35, layers::DropoutOptions{.seed = 21});
  Generator g2(0);
  gpu_layer->build({70}, g2, Device::gpu());
  EXPECT_TRUE(counter_tensor(*gpu_layer).device().is_cuda());
  for (int step = 0; step < 3; ++step) {
    Tensor xc = x.clone(), xg = x.to(Device::gpu());
    xc.set_requires_grad(true);
    xg.set_requires_grad(true);
    const Tensor yc = cpu_layer->call(xc, true), yg = gpu_layer->call(xg, true);
    EXPECT_EQ(floats(yc), floats(yg)) << "step " << step;
    sum(yc).backward();
    sum(yg).backward();
    EXPECT_EQ(floats(xc.grad()), floats(xg.grad())) << "step " << step;
    EXPECT_EQ(counter_of(*gpu_layer), step + 1);
  }
}

// Eager warm-up steps, the recording, replays and eager partial batches between them all advance
// the one counter: the masks, and so the weights, losses and the counter itself, agree bit for bit.
TEST(CudaDropout, RecordedStepsTrainAsEagerStepsBitForBit) {
  EXPECT_RECORDED_STEP_EQUALS_EAGER([] {
    Sequential model(
        {layers::Dense(16, {.activation = "relu", .input_shape = {4}}), layers::Dropout(0.3), layers::Dense(3)});
    model.compile("adam", "sparse_categorical_crossentropy");
    return model;
  });
  EXPECT_RECORDED_STEP_EQUALS_EAGER([] {
    Sequential model({layers::Dense(8, {.activation = "relu", .input_shape = {5}}), layers::Dropout(0.5, {.seed = 3}),
                      layers::Dense(4), layers::Dropout(0.2), layers::Dense(2)});
    model.compile(optimizers::SGD({.learning_rate = 0.05}), losses::MeanSquaredError());
    return model;
  });
}
