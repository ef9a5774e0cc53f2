// The Keras model API: the house-price seed, History semantics, predict/evaluate, summary,
// progress output, determinism and every bad-input message.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "kiln/kiln.h"
#include "test_support.h"

using namespace kiln;
using kiln::testing::message_of;

namespace {

Sequential house_price_model(uint64_t seed = 0) {
  utils::set_random_seed(seed);
  Sequential model({layers::Dense(1, {.input_shape = {1}})});
  model.compile("sgd", "mean_squared_error");
  return model;
}

const Tensor kXs = Tensor::from_vector<float>({1, 2, 3, 4, 5, 6}, {6, 1});
const Tensor kYs = Tensor::from_vector<float>({5.0f, 6.5f, 8.0f, 9.5f, 11.0f, 12.5f}, {6, 1});

}  // namespace

TEST(Model, HousePricePredictsFourteen) {
  Sequential model = house_price_model();
  const History h = model.fit(kXs, kYs, {.epochs = 1000, .verbose = 0});
  ASSERT_EQ(h.history.at("loss").size(), 1000u);
  EXPECT_LT(h.history.at("loss").back(), h.history.at("loss").front());
  const double p = model.predict(Tensor::from_vector<float>({7.0f}, {1, 1})).item();
  EXPECT_NEAR(p, 14.0, 0.1);
}

TEST(Model, HousePriceConvergesForManySeeds) {
  for (uint64_t seed : {1u, 2u, 3u, 42u}) {
    Sequential model = house_price_model(seed);
    model.fit(kXs, kYs, {.epochs = 1000, .verbose = 0});
    EXPECT_NEAR(model.predict(Tensor::from_vector<float>({7.0f}, {1, 1})).item(), 14.0, 0.1) << "seed " << seed;
  }
}

TEST(Model, AcceptsOneDimensionalTargets) {
  Sequential model = house_price_model();
  const Tensor ys = kYs.reshape({6});
  model.fit(kXs, ys, {.epochs = 1000, .verbose = 0});
  EXPECT_NEAR(model.predict(Tensor::from_vector<float>({7.0f}, {1, 1})).item(), 14.0, 0.1);
}

TEST(Model, SameSeedSameWeightsAndHistory) {
  Sequential a = house_price_model(5), b = house_price_model(5), c = house_price_model(6);
  EXPECT_EQ(a.trainable_weights()[0].to_vector<float>(), b.trainable_weights()[0].to_vector<float>());
  EXPECT_NE(a.trainable_weights()[0].to_vector<float>(), c.trainable_weights()[0].to_vector<float>());
  utils::set_random_seed(9);
  const auto ha = a.fit(kXs, kYs, {.batch_size = 2, .epochs = 5, .verbose = 0});
  utils::set_random_seed(9);
  const auto hb = b.fit(kXs, kYs, {.batch_size = 2, .epochs = 5, .verbose = 0});
  EXPECT_EQ(ha.history.at("loss"), hb.history.at("loss"));
}

TEST(Model, EpochLossIsBatchWeightedMeanBeforeUpdates) {
  // Batches of 4 and 2 without shuffling: the epoch loss is (4 l1 + 2 l2) / 6 where each batch loss
  // is measured before that batch's update.
  Sequential model = house_price_model(3);
  Sequential probe = house_price_model(3);
  const History h = model.fit(kXs, kYs, {.batch_size = 4, .epochs = 1, .verbose = 0, .shuffle = false});
  losses::MeanSquaredError mse_loss;
  optimizers::SGD sgd;
  const double l1 = mse_loss(kYs.slice_rows(0, 4), probe(kXs.slice_rows(0, 4))).item();
  {
    Tensor l = mse_loss(kYs.slice_rows(0, 4), probe(kXs.slice_rows(0, 4)));
    l.backward();
    sgd.step(probe.trainable_weights());
  }
  const double l2 = mse_loss(kYs.slice_rows(4, 6), probe(kXs.slice_rows(4, 6))).item();
  EXPECT_NEAR(h.history.at("loss")[0], (4 * l1 + 2 * l2) / 6, 1e-6);
}

TEST(Model, EvaluateAndPredictShapes) {
  Sequential model = house_price_model();
  model.fit(kXs, kYs, {.epochs = 200, .verbose = 0});
  const Tensor p = model.predict(kXs, {.batch_size = 4});
  EXPECT_EQ(p.shape(), (Shape{6, 1}));
  const auto logs = model.evaluate(kXs, kYs, {.batch_size = 4, .verbose = 0});
  ASSERT_TRUE(logs.count("loss"));
  double expected = 0;
  const auto pv = p.to_vector<float>(), yv = kYs.to_vector<float>();
  for (int i = 0; i < 6; ++i) expected += (pv[i] - yv[i]) * (pv[i] - yv[i]) / 6;
  EXPECT_NEAR(logs.at("loss"), expected, 1e-5);
}

TEST(Model, ValidationDataAddsValLoss) {
  Sequential model = house_price_model();
  const History h = model.fit(kXs, kYs, {.epochs = 3, .verbose = 0, .validation_data = {{kXs, kYs}}});
  EXPECT_EQ(h.history.at("val_loss").size(), 3u);
  EXPECT_EQ(h.epoch, (std::vector<int>{0, 1, 2}));
}

TEST(Model, SummaryListsLayersShapesAndTotals) {
  utils::set_random_seed(0);
  Sequential model({layers::Conv2D(32, {3, 3}, {.activation = "relu", .input_shape = {32, 32, 3}}),
                    layers::MaxPooling2D({2, 2}), layers::Flatten(), layers::Dense(64, {.activation = "relu"}),
                    layers::Dense(10)});
  std::ostringstream os;
  model.summary(os);
  const std::string s = os.str();
  EXPECT_NE(s.find("conv2d (Conv2D)"), std::string::npos);
  EXPECT_NE(s.find("(None, 30, 30, 32)"), std::string::npos);
  EXPECT_NE(s.find("(None, 15, 15, 32)"), std::string::npos);
  EXPECT_NE(s.find("(None, 7200)"), std::string::npos);
  EXPECT_NE(s.find("dense_1 (Dense)"), std::string::npos);
  EXPECT_NE(s.find("460,864"), std::string::npos);  // 7200 * 64 + 64
  EXPECT_NE(s.find("Total params: 462,410"), std::string::npos);
  EXPECT_EQ(model.count_params(), 896 + 460864 + 650);
}

TEST(Model, ProgressPrintsOneLinePerEpochWhenNotATerminal) {
  Sequential model = house_price_model();
  ::testing::internal::CaptureStdout();
  model.fit(kXs, kYs, {.batch_size = 2, .epochs = 2, .verbose = 1});
  const std::string out = ::testing::internal::GetCapturedStdout();
  EXPECT_NE(out.find("Epoch 1/2\n3/3 "), std::string::npos) << out;
  EXPECT_NE(out.find("Epoch 2/2\n3/3 "), std::string::npos) << out;
  EXPECT_NE(out.find("/step - loss: "), std::string::npos) << out;
  EXPECT_EQ(std::count(out.begin(), out.end(), '\n'), 4) << out;
  ::testing::internal::CaptureStdout();
  model.fit(kXs, kYs, {.epochs = 2, .verbose = 0});
  EXPECT_EQ(::testing::internal::GetCapturedStdout(), "");
}

// ---- bad input: each message names what was wrong and what was expected ----

TEST(ModelErrors, XAndYLengthsDiffer) {
  Sequential model = house_price_model();
  EXPECT_EQ(message_of([&] { model.fit(kXs, kYs.slice_rows(0, 5), {.verbose = 0}); }),
            "[fit] x has 6 samples but y has 5; expected the same number (one target per sample)");
}

TEST(ModelErrors, WrongFeatureCount) {
  Sequential model = house_price_model();
  const Tensor x3 = Tensor::zeros({6, 3});
  EXPECT_EQ(message_of([&] { model.fit(x3, kYs, {.verbose = 0}); }),
            "[dense] input has 3 features, layer expects 1 (input_shape=[1])");
  EXPECT_EQ(message_of([&] { model.predict(x3); }), "[dense] input has 3 features, layer expects 1 (input_shape=[1])");
}

TEST(ModelErrors, EmptyData) {
  Sequential model = house_price_model();
  EXPECT_EQ(message_of([&] {
              model.fit(Tensor::zeros({0, 1}), Tensor::zeros({0, 1}), {.verbose = 0});
            }),
            "[fit] x is empty (shape [0, 1]); expected at least one sample");
}

TEST(ModelErrors, NonPositiveBatchSize) {
  Sequential model = house_price_model();
  EXPECT_EQ(message_of([&] { model.fit(kXs, kYs, {.batch_size = 0, .verbose = 0}); }),
            "[fit] batch_size is 0; expected a positive number");
  EXPECT_EQ(message_of([&] { model.predict(kXs, {.batch_size = -3}); }),
            "[predict] batch_size is -3; expected a positive number");
}

TEST(ModelErrors, FitBeforeCompile) {
  Sequential model({layers::Dense(1, {.input_shape = {1}})});
  EXPECT_EQ(message_of([&] { model.fit(kXs, kYs, {.verbose = 0}); }),
            "[fit] the model is not compiled; call compile(optimizer, loss) before fit()");
}

TEST(ModelErrors, NonFiniteLossStopsWithEpochAndStep) {
  // A learning rate this large makes SGD diverge to inf within a few epochs.
  utils::set_random_seed(0);
  Sequential model({layers::Dense(1, {.input_shape = {1}})});
  model.compile(optimizers::SGD({.learning_rate = 10.0}), losses::MeanSquaredError());
  const std::string msg = message_of([&] { model.fit(kXs, kYs, {.batch_size = 2, .epochs = 1000, .verbose = 0}); });
  EXPECT_EQ(msg.rfind("[fit] the loss became ", 0), 0u) << msg;
  EXPECT_NE(msg.find(" at epoch "), std::string::npos) << msg;
  EXPECT_NE(msg.find(", step "), std::string::npos) << msg;
  EXPECT_NE(msg.find("expected finite values"), std::string::npos) << msg;
}

TEST(ModelErrors, NaNInInputIsCaughtAtTheFirstStep) {
  Sequential model = house_price_model();
  Tensor x = kXs.clone();
  x.data<float>()[0] = std::numeric_limits<float>::quiet_NaN();
  EXPECT_EQ(message_of([&] { model.fit(x, kYs, {.batch_size = 6, .epochs = 3, .verbose = 0}); }),
            "[fit] the loss became nan at epoch 1, step 1; expected finite values (lower the learning rate, or "
            "check x and y for NaN/Inf)");
}

TEST(ModelErrors, UnknownNamesAndOptions) {
  const std::string unknown_activation = message_of([] { layers::Dense(4, {.activation = "swoosh"}); });
  EXPECT_EQ(unknown_activation.rfind("[dense] unknown activation 'swoosh'; expected one of ", 0), 0u)
      << unknown_activation;
  EXPECT_NE(unknown_activation.find("linear, relu, sigmoid, "), std::string::npos) << unknown_activation;
  EXPECT_EQ(message_of([] {
              layers::Dense(4, {.kernel_initializer = "glorot_uniformm"});
            }).rfind("[dense] unknown initializer 'glorot_uniformm'; expected one of ", 0),
            0u);
  EXPECT_EQ(message_of([] { layers::Dense(0); }), "[dense] units is 0; expected a positive number");
  EXPECT_EQ(message_of([] {
              layers::Conv2D(8, {3, 3}, {.padding = "full"});
            }),
            "[conv2d] unknown padding 'full'; expected \"valid\" or \"same\"");
  Sequential model({layers::Dense(1, {.input_shape = {1}})});
  EXPECT_EQ(message_of([&] { model.compile("nadam", "mse"); }),
            "[optimizer] unknown optimizer 'nadam'; expected one of Adagrad, Adam, AdamW, LossScaleOptimizer, Muon, "
            "RMSprop, SGD, adagrad, adam, adamw, muon, rmsprop, sgd");
  EXPECT_EQ(message_of([&] {
              model.compile("sgd", "mse", {"f1"});
              model.fit(kXs, kYs, {.verbose = 0});
            }),
            "[compile] unknown metric 'f1'; expected one of MAE, MSE, acc, accuracy, binary_accuracy, "
            "categorical_accuracy, mae, mean_absolute_error, mean_squared_error, mse, sparse_categorical_accuracy, "
            "sparse_top_k_categorical_accuracy");
}

TEST(ModelErrors, TargetsOfTheWrongShape) {
  Sequential model = house_price_model();
  EXPECT_EQ(message_of([&] {
              model.fit(kXs, Tensor::zeros({6, 2}), {.verbose = 0});
            }),
            "[fit] y has per-sample shape [2] but the model outputs [1]; expected targets of the output's shape");
}

TEST(ModelErrors, CheckNumericsNamesTheFirstLayerWithANaN) {
  utils::set_random_seed(0);
  Sequential model({layers::Dense(4, {.activation = "relu", .input_shape = {2}}), layers::Dense(1)});
  model.compile("sgd", "mse");
  // A NaN in the second layer's kernel: the first layer's output is fine, the second's is not.
  std::vector<float> k(4, 0.5f);
  k[2] = std::numeric_limits<float>::quiet_NaN();
  model.layers()[1]->set_weight("kernel", Tensor::from_vector(k, {4, 1}));
  const Tensor x = Tensor::ones({3, 2}), y = Tensor::ones({3, 1});
  EXPECT_EQ(message_of([&] { model.fit(x, y, {.epochs = 1, .verbose = 0, .check_numerics = true}); }),
            "[check_numerics] the output of layer dense_1 (Dense) holds NaN at element 0 of [3, 1] (epoch 1, "
            "step 1); expected finite values");
  const Tensor x_bad = Tensor::from_vector<float>({1, std::numeric_limits<float>::infinity(), 1, 1, 1, 1}, {3, 2});
  EXPECT_EQ(
      message_of([&] { model.fit(x_bad, y, {.epochs = 1, .verbose = 0, .shuffle = false, .check_numerics = true}); }),
      "[check_numerics] the input batch holds Inf at element 1 of [3, 2] (epoch 1, step 1); expected finite "
      "values");
}

TEST(Model, NothingIsLiveAfterAModelDies) {
  const auto before = memory_stats(Device::cpu()).in_use;
  {
    utils::set_random_seed(0);
    Sequential model({layers::Conv2D(4, {3, 3}, {.activation = "relu", .input_shape = {6, 6, 2}}),
                      layers::MaxPooling2D({2, 2}), layers::Flatten(), layers::Dense(3)});
    model.compile(optimizers::Adam(), losses::SparseCategoricalCrossentropy({.from_logits = true}), {"accuracy"});
    Generator gen(1);
    const Tensor x = Tensor::uniform({8, 6, 6, 2}, 0, 1, gen);
    const Tensor y = Tensor::from_vector<int32_t>({0, 1, 2, 0, 1, 2, 0, 1}, {8});
    model.fit(x, y, {.batch_size = 3, .epochs = 2, .verbose = 0, .validation_data = {{x, y}}});
    model.predict(x);
    EXPECT_GT(memory_stats(Device::cpu()).in_use, before);
  }
  EXPECT_EQ(memory_stats(Device::cpu()).in_use, before);
}

TEST(Model, ValidationBatchSizeChangesOnlyTheSpeed) {
  Sequential a = house_price_model(4), b = house_price_model(4);
  utils::set_random_seed(1);
  const History ha = a.fit(kXs, kYs, {.batch_size = 2, .epochs = 3, .verbose = 0, .validation_data = {{kXs, kYs}}});
  utils::set_random_seed(1);
  const History hb =
      b.fit(kXs, kYs,
            {.batch_size = 2, .epochs = 3, .verbose = 0, .validation_data = {{kXs, kYs}}, .validation_batch_size = 6});
  EXPECT_EQ(ha.history.at("loss"), hb.history.at("loss"));
  for (int e = 0; e < 3; ++e) EXPECT_NEAR(ha.history.at("val_loss")[e], hb.history.at("val_loss")[e], 1e-5);
  EXPECT_EQ(message_of([&] { a.fit(kXs, kYs, {.verbose = 0, .validation_batch_size = -1}); }),
            "[fit] validation_batch_size is -1; expected a positive number, or 0 for batch_size");
}

// ---- the model's own generator ----

TEST(Model, SeedBeforeBuildingGivesTheWeightsOfThatSeed) {
  // A single model after set_random_seed(n) draws what the global generator seeded with n draws:
  // the same weights kiln always gave for that seed.
  utils::set_random_seed(5);
  Sequential m({layers::Dense(2, {.input_shape = {3}})});
  Generator reference(5);
  const double limit = std::sqrt(6.0 / (3 + 2));
  EXPECT_EQ(m.trainable_weights()[0].to_vector<float>(),
            Tensor::uniform({3, 2}, -limit, limit, reference).to_vector<float>());
  EXPECT_EQ(m.generator().state(), reference.state());  // fit's shuffles continue the same sequence
}

TEST(Model, EachModelShufflesWithItsOwnGenerator) {
  // Fitting another model in between changes nothing of a model's training.
  Sequential alone = house_price_model(3);
  const History h_alone = alone.fit(kXs, kYs, {.batch_size = 2, .epochs = 4, .verbose = 0});
  Sequential a = house_price_model(3);
  Sequential b = house_price_model(4);
  b.fit(kXs, kYs, {.batch_size = 2, .epochs = 3, .verbose = 0});
  utils::set_random_seed(123);  // and so does reseeding the global generator after construction
  const History h_a = a.fit(kXs, kYs, {.batch_size = 2, .epochs = 4, .verbose = 0});
  EXPECT_EQ(h_a.history.at("loss"), h_alone.history.at("loss"));
  EXPECT_EQ(a.trainable_weights()[0].to_vector<float>(), alone.trainable_weights()[0].to_vector<float>());
  // Two models after one seed still start differently, as in Keras.
  utils::set_random_seed(7);
  Sequential first({layers::Dense(4, {.input_shape = {4}})});
  Sequential second({layers::Dense(4, {.input_shape = {4}})});
  EXPECT_NE(first.trainable_weights()[0].to_vector<float>(), second.trainable_weights()[0].to_vector<float>());
  EXPECT_NE(first.generator().state(), second.generator().state());
}

// ---- options the API refuses (a saved file holding them would not load) ----

TEST(ModelErrors, NegativeInitialEpochIsRefusedByFitAndTheCheckpoint) {
  Sequential model = house_price_model();
  const auto before = model.trainable_weights()[0].to_vector<float>();
  EXPECT_EQ(message_of([&] { model.fit(kXs, kYs, {.epochs = 2, .verbose = 0, .initial_epoch = -3}); }),
            "[fit] initial_epoch is -3; expected >= 0 (the 0-based epoch to start from, e.g. checkpoint_epoch(path) "
            "+ 1)");
  EXPECT_EQ(model.trainable_weights()[0].to_vector<float>(), before);
  callbacks::ModelCheckpoint checkpoint("unused.kiln");
  EXPECT_EQ(message_of([&] {
              checkpoint.on_epoch_end(model, -3, {{"loss", 1.0}});
            }),
            "[ModelCheckpoint] epoch is -3; expected >= 0 (fit's 0-based epoch number)");
}

TEST(ModelErrors, CompileRefusesWhatSaveCouldNotWriteLoadably) {
  Sequential model({layers::Dense(1, {.input_shape = {1}})});
  EXPECT_EQ(message_of([&] { model.compile("sgd", "mse", {"f1"}); }),
            "[compile] unknown metric 'f1'; expected one of MAE, MSE, acc, accuracy, binary_accuracy, "
            "categorical_accuracy, mae, mean_absolute_error, mean_squared_error, mse, sparse_categorical_accuracy, "
            "sparse_top_k_categorical_accuracy");
  EXPECT_EQ(model.optimizer(), nullptr);  // a refused compile leaves the model as it was
  EXPECT_EQ(message_of([&] {
              model.compile("sgd", "sparse_categorical_crossentropy", {"mae", "mae"});
            }),
            "[compile] metric 'mae' repeats 'mae' (both are mae); expected each metric once");
  const double inf = std::numeric_limits<double>::infinity();
  EXPECT_EQ(message_of([&] { model.compile(optimizers::SGD({.learning_rate = inf}), losses::MeanSquaredError()); }),
            "[SGD] learning_rate is inf; expected a finite number");
  EXPECT_EQ(message_of([&] { model.compile(optimizers::Adam({.learning_rate = inf}), losses::MeanSquaredError()); }),
            "[Adam] learning_rate is inf; expected a finite number");
  EXPECT_EQ(message_of([&] { model.compile(optimizers::Adam({.epsilon = inf}), losses::MeanSquaredError()); }),
            "[Adam] epsilon is inf; expected a finite number");
  EXPECT_EQ(model.optimizer(), nullptr);
}

TEST(ModelErrors, FitEvaluatePredictRefuseBadOptionsBeforeAnyStep) {
  Sequential model = house_price_model();
  const auto before = model.trainable_weights()[0].to_vector<float>();
  EXPECT_EQ(message_of([&] { model.fit(kXs, kYs, {.verbose = 3}); }),
            "[fit] verbose is 3; expected 0 (silent), 1 (progress bar) or 2 (one line)");
  EXPECT_EQ(message_of([&] { model.evaluate(kXs, kYs, {.verbose = -1}); }),
            "[evaluate] verbose is -1; expected 0 (silent), 1 (progress bar) or 2 (one line)");
  EXPECT_EQ(message_of([&] { model.predict(kXs, {.verbose = 7}); }),
            "[predict] verbose is 7; expected 0 (silent), 1 (progress bar) or 2 (one line)");
  EXPECT_EQ(message_of([&] { model.fit(kXs, kYs, {.verbose = 0, .callbacks = {nullptr}}); }),
            "[fit] callbacks[0] is null; expected a callback (e.g. std::make_shared<kiln::callbacks::"
            "ModelCheckpoint>(path))");
  // Validation data is checked before the first epoch, not after it.
  const Tensor x3 = Tensor::ones({3, 1}), y2 = Tensor::ones({2, 1});
  EXPECT_EQ(message_of([&] {
              model.fit(kXs, kYs, {.verbose = 0, .validation_data = {{x3, y2}}});
            }),
            "[fit] validation_data: x has 3 samples but y has 2; expected the same number (one target per sample)");
  EXPECT_EQ(message_of([&] {
              model.fit(kXs, kYs, {.verbose = 0, .validation_data = {{Tensor::ones({2, 2}), y2}}});
            }),
            "[fit] validation_data: x has per-sample shape [2] but the model takes [1]; expected the shape of the "
            "training x");
  EXPECT_EQ(message_of([&] {
              model.fit(kXs, kYs, {.verbose = 0, .validation_data = {{Tensor::ones({2, 1}), Tensor::ones({2, 3})}}});
            }),
            "[fit] validation_data: y has per-sample shape [3] but the model outputs [1]; expected targets of the "
            "output's shape");
  EXPECT_EQ(model.trainable_weights()[0].to_vector<float>(), before);
}

TEST(ModelErrors, ValidationLabelsAreCheckedBeforeTraining) {
  utils::set_random_seed(0);
  Sequential model({layers::Dense(3, {.input_shape = {2}})});
  model.compile(optimizers::Adam(), losses::SparseCategoricalCrossentropy({.from_logits = true}));
  const auto before = model.trainable_weights()[0].to_vector<float>();
  const Tensor x = Tensor::zeros({2, 2}), y = Tensor::from_vector<int32_t>({0, 1}, {2});
  EXPECT_EQ(message_of([&] {
              model.fit(x, y, {.verbose = 0, .validation_data = {{x, Tensor::from_vector<int32_t>({0, 5}, {2})}}});
            }),
            "[fit] validation_data: label 5 at index 1 is outside [0, 3); expected integer class indices for a "
            "model with 3 outputs");
  EXPECT_EQ(model.trainable_weights()[0].to_vector<float>(), before);
}

TEST(ModelErrors, LayerNamesASaveCouldNotHoldAreRefused) {
  Sequential model;
  layers::Dense slash(1, {.input_shape = {1}});
  slash.set_name("a/b");
  EXPECT_EQ(message_of([&] { model.add(slash); }),
            "[sequential] layer name \"a/b\" cannot be saved; expected 1 to 256 characters without '/'");
  // A name of the user's that kiln would also give is made unique, as load_model wants.
  model.add(layers::Dense(2, {.input_shape = {1}}));
  layers::Dense own(2);
  own.set_name("dense");
  model.add(own);  // dense_1
  layers::Dense clash(1);
  clash.set_name("dense_1");
  model.add(clash);
  EXPECT_EQ(model.layers()[0]->name(), "dense");
  EXPECT_EQ(model.layers()[1]->name(), "dense_1");
  EXPECT_NE(model.layers()[2]->name(), "dense_1");
}
