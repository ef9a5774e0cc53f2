// Keras 3 files: kiln -> .keras -> kiln round trips (Sequential, functional with a shared layer,
// BatchNormalization and Dropout) equal bit for bit in weights, optimizer state and predictions;
// .weights.h5 files; the path's extension choosing the format; and the messages of broken files.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <nlohmann/json.hpp>

#include "io/keras_format/keras_file.h"
#include "io/zip_archive.h"
#include "kiln/kiln.h"
#include "model/graph.h"
#include "test_support.h"

using namespace kiln;
namespace fs = std::filesystem;
using kiln::testing::message_of;

namespace {

class KerasFormat : public kiln::testing::CpuTestInFolder {};

Sequential house_model() {
  Sequential model({layers::Dense(1, {.input_shape = {1}})});
  model.compile("sgd", "mean_squared_error");
  return model;
}

#if KILN_WITH_LIBZIP && KILN_WITH_HDF5

void expect_same_weights(const Model& a, const Model& b) {
  ASSERT_EQ(a.layers().size(), b.layers().size());
  for (std::size_t i = 0; i < a.layers().size(); ++i) {
    // What Keras keeps in a layer's weights (a random stream's counter is not in a .keras file).
    const auto kept = [](const Layer& layer) {
      std::vector<std::pair<std::string, Tensor>> out;
      for (const LayerWeight& w : layer.all_weights())
        if (w.in_weights) out.emplace_back(w.name, w.value);
      return out;
    };
    const auto wa = kept(*a.layers()[i]);
    const auto wb = kept(*b.layers()[i]);
    EXPECT_EQ(a.layers()[i]->name(), b.layers()[i]->name());
    EXPECT_EQ(a.layers()[i]->class_name(), b.layers()[i]->class_name());
    ASSERT_EQ(wa.size(), wb.size()) << a.layers()[i]->name();
    for (std::size_t k = 0; k < wa.size(); ++k) {
      EXPECT_EQ(wa[k].first, wb[k].first);
      EXPECT_EQ(wa[k].second.cpu().to_vector<float>(), wb[k].second.cpu().to_vector<float>())
          << a.layers()[i]->name() << "/" << wa[k].first;
    }
  }
}

void expect_same_optimizer(const Model& a, const Model& b) {
  ASSERT_TRUE(a.optimizer() && b.optimizer());
  EXPECT_EQ(a.optimizer()->class_name(), b.optimizer()->class_name());
  EXPECT_EQ(a.optimizer()->iterations(), b.optimizer()->iterations());
  EXPECT_EQ(static_cast<float>(a.optimizer()->learning_rate()), static_cast<float>(b.optimizer()->learning_rate()));
  const auto& sa = a.optimizer()->slots();
  const auto& sb = b.optimizer()->slots();
  ASSERT_EQ(sa.size(), sb.size());
  for (std::size_t p = 0; p < sa.size(); ++p) {
    ASSERT_EQ(sa[p].size(), sb[p].size());
    for (std::size_t s = 0; s < sa[p].size(); ++s)
      EXPECT_EQ(sa[p][s].cpu().to_vector<float>(), sb[p][s].cpu().to_vector<float>()) << p << "/" << s;
  }
}

Tensor ramp(const Shape& shape, float scale) {
  std::vector<float> v(static_cast<std::size_t>(shape.numel()));
  for (std::size_t i = 0; i < v.size(); ++i) v[i] = scale * static_cast<float>((i * 37) % 101) / 101.0f - 0.3f;
  return Tensor::from_vector(v, shape);
}

std::vector<uint8_t> read_bytes(const std::string& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

const io::ZipEntry* find_entry(const std::vector<io::ZipEntry>& entries, const std::string& name) {
  for (const auto& e : entries)
    if (e.name == name) return &e;
  return nullptr;
}

#endif

}  // namespace

#if KILN_WITH_LIBZIP && KILN_WITH_HDF5

TEST_F(KerasFormat, SequentialRoundTripsBitForBitAndTrainsOnTheSame) {
  utils::set_random_seed(3);
  Sequential model = house_model();
  const Tensor x = Tensor::from_vector(std::vector<float>{1, 2, 3, 4, 5, 6}, Shape{6, 1});
  const Tensor y = Tensor::from_vector(std::vector<float>{5, 6.5, 8, 9.5, 11, 12.5}, Shape{6, 1});
  model.fit(x, y, {.batch_size = 6, .epochs = 5, .verbose = 0, .shuffle = false});
  model.save(path("house.keras"));

  Model loaded = load_model(path("house.keras"));
  EXPECT_TRUE(loaded.is_sequential());
  expect_same_weights(model, loaded);
  expect_same_optimizer(model, loaded);
  EXPECT_EQ(model.predict(x).to_vector<float>(), loaded.predict(x).to_vector<float>());
  // One more step on each side lands on the same weights.
  model.fit(x, y, {.batch_size = 6, .epochs = 1, .verbose = 0, .shuffle = false});
  loaded.fit(x, y, {.batch_size = 6, .epochs = 1, .verbose = 0, .shuffle = false});
  expect_same_weights(model, loaded);
}

TEST_F(KerasFormat, ArchiveHoldsKerasEntriesAndConfig) {
  utils::set_random_seed(4);
  Sequential model = house_model();
  model.save(path("m.keras"));
  const auto entries = io::read_zip("test", path("m.keras"));
  ASSERT_NE(find_entry(entries, "config.json"), nullptr);
  ASSERT_NE(find_entry(entries, "metadata.json"), nullptr);
  ASSERT_NE(find_entry(entries, "model.weights.h5"), nullptr);
  const auto& c = find_entry(entries, "config.json")->bytes;
  const nlohmann::json config = nlohmann::json::parse(c.begin(), c.end());
  EXPECT_EQ(config["class_name"], "Sequential");
  EXPECT_EQ(config["config"]["layers"][0]["class_name"], "InputLayer");
  EXPECT_EQ(config["config"]["layers"][1]["config"]["kernel_initializer"]["class_name"], "GlorotUniform");
  EXPECT_EQ(config["compile_config"]["optimizer"]["class_name"], "SGD");
  EXPECT_EQ(config["compile_config"]["loss"]["class_name"], "MeanSquaredError");
}

TEST_F(KerasFormat, ConvBatchNormDropoutModelRoundTripsWithAdamState) {
  utils::set_random_seed(5);
  Sequential model({layers::Conv2D(4, {3, 3}, {.activation = "relu", .input_shape = {8, 8, 3}}),
                    layers::MaxPooling2D({2, 2}), layers::Flatten(), layers::BatchNormalization(),
                    layers::Dropout(0.25), layers::Dense(8, {.activation = "relu"}), layers::Dense(3)});
  model.compile(optimizers::Adam(), losses::SparseCategoricalCrossentropy({.from_logits = true}), {"accuracy"});
  const Tensor x = ramp(Shape{6, 8, 8, 3}, 1.0f);
  const Tensor y = Tensor::from_vector(std::vector<int32_t>{0, 1, 2, 1, 0, 2}, Shape{6});
  model.fit(x, y, {.batch_size = 3, .epochs = 2, .verbose = 0});
  model.save(path("cnn.keras"));
  Sequential loaded = load_model(path("cnn.keras"));
  expect_same_weights(model, loaded);
  expect_same_optimizer(model, loaded);
  EXPECT_EQ(loaded.metrics(), model.metrics());
  EXPECT_EQ(model.predict(x).to_vector<float>(), loaded.predict(x).to_vector<float>());
}

TEST_F(KerasFormat, FunctionalModelWithSharedLayerRoundTrips) {
  utils::set_random_seed(6);
  auto in = Input({4}, "features");
  auto shared = std::make_shared<layers::Dense>(4, layers::DenseOptions{.activation = "relu"});
  auto h = (*shared)(in);
  auto h2 = (*shared)(h);
  auto out = layers::Dense(2)(layers::Add()({h, h2}));
  Model model(in, out);
  model.compile(optimizers::SGD({.momentum = 0.9}), losses::MeanSquaredError(), {"mae"});
  const Tensor x = ramp(Shape{5, 4}, 2.0f);
  const Tensor y = ramp(Shape{5, 2}, 1.0f);
  model.fit(x, y, {.batch_size = 5, .epochs = 3, .verbose = 0, .shuffle = false});
  model.save(path("f.keras"));
  Model loaded = load_model(path("f.keras"));
  EXPECT_FALSE(loaded.is_sequential());
  EXPECT_EQ(loaded.graph().nodes().size(), model.graph().nodes().size());
  expect_same_weights(model, loaded);
  expect_same_optimizer(model, loaded);
  EXPECT_EQ(model.predict(x).to_vector<float>(), loaded.predict(x).to_vector<float>());
  model.fit(x, y, {.batch_size = 5, .epochs = 1, .verbose = 0, .shuffle = false});
  loaded.fit(x, y, {.batch_size = 5, .epochs = 1, .verbose = 0, .shuffle = false});
  expect_same_weights(model, loaded);
}

TEST_F(KerasFormat, TwoInputsTwoOutputsRoundTrip) {
  utils::set_random_seed(10);
  auto a = Input({3}, "a");
  auto b = Input({2}, "b");
  auto h = layers::Dense(4, {.activation = "relu"})(layers::Concatenate()({a, b}));
  auto y1 = layers::Dense(1)(h);
  auto y2 = layers::Dense(2, {.activation = "softmax"})(h);
  Model model({a, b}, {y1, y2});
  model.compile(optimizers::RMSprop({.momentum = 0.5, .centered = true}),
                {losses::MeanSquaredError(), losses::CategoricalCrossentropy()}, {{"mae"}, {"categorical_accuracy"}},
                {1.0, 0.5});
  const std::vector<Tensor> x = {ramp(Shape{4, 3}, 1.0f), ramp(Shape{4, 2}, 2.0f)};
  const std::vector<Tensor> y = {ramp(Shape{4, 1}, 1.0f),
                                 Tensor::from_vector(std::vector<float>{1, 0, 0, 1, 1, 0, 0, 1}, Shape{4, 2})};
  model.fit(x, y, {.batch_size = 4, .epochs = 2, .verbose = 0, .shuffle = false});
  model.save(path("two.keras"));
  Model loaded = load_model(path("two.keras"));
  expect_same_weights(model, loaded);
  expect_same_optimizer(model, loaded);
  EXPECT_EQ(loaded.output_metrics(), model.output_metrics());
  EXPECT_EQ(loaded.loss_weights(), model.loss_weights());
  const auto pa = model.predict(x), pb = loaded.predict(x);
  ASSERT_EQ(pa.size(), 2u);
  for (std::size_t i = 0; i < pa.size(); ++i) EXPECT_EQ(pa[i].to_vector<float>(), pb[i].to_vector<float>());
  model.fit(x, y, {.batch_size = 4, .epochs = 1, .verbose = 0, .shuffle = false});
  loaded.fit(x, y, {.batch_size = 4, .epochs = 1, .verbose = 0, .shuffle = false});
  expect_same_weights(model, loaded);
}

TEST_F(KerasFormat, WeightsFileRoundTripsAndExtensionChoosesFormat) {
  utils::set_random_seed(7);
  Sequential a({layers::Dense(3, {.input_shape = {2}}), layers::Dense(1)});
  Sequential b({layers::Dense(3, {.input_shape = {2}}), layers::Dense(1)});
  a.save_weights(path("a.weights.h5"));
  b.load_weights(path("a.weights.h5"));
  expect_same_weights(a, b);
  // The HDF5 signature, not kiln's safetensors header.
  const auto bytes = read_bytes(path("a.weights.h5"));
  ASSERT_GE(bytes.size(), 8u);
  EXPECT_EQ(std::string(bytes.begin() + 1, bytes.begin() + 4), "HDF");
  a.save_weights(path("a.safetensors"));
  const auto own = read_bytes(path("a.safetensors"));
  ASSERT_GE(own.size(), 8u);
  EXPECT_NE(std::string(own.begin() + 1, own.begin() + 4), "HDF");
  Sequential c({layers::Dense(3, {.input_shape = {2}}), layers::Dense(1)});
  c.load_weights(path("a.safetensors"));
  expect_same_weights(a, c);
  EXPECT_NE(message_of([&] { a.save(path("a.weights.h5")); }).find("names a weights file"), std::string::npos);
}

TEST_F(KerasFormat, BrokenFilesAreRefusedWithClearMessages) {
  utils::set_random_seed(8);
  Sequential model = house_model();
  model.save(path("m.keras"));
  const auto entries = io::read_zip("test", path("m.keras"));
  const auto& c = find_entry(entries, "config.json")->bytes;
  nlohmann::json config = nlohmann::json::parse(c.begin(), c.end());

  // An unknown layer class names itself and the classes kiln has.
  nlohmann::json unknown = config;
  unknown["config"]["layers"][1]["class_name"] = "Conv3D";
  const std::string text = unknown.dump();
  io::write_zip("test", path("unknown.keras"),
                {{"config.json", {text.begin(), text.end()}}, *find_entry(entries, "model.weights.h5")});
  const std::string unknown_message = message_of([&] { load_model(path("unknown.keras")); });
  EXPECT_NE(unknown_message.find("\"Conv3D\" is not a kiln layer"), std::string::npos) << unknown_message;
  EXPECT_NE(unknown_message.find("Conv2D, Cropping2D, Dense"), std::string::npos) << unknown_message;

  // An option kiln lacks is refused rather than ignored; a constraint kiln has loads.
  auto with_constraint = [&](const std::string& class_name, const std::string& file) {
    nlohmann::json constrained = config;
    constrained["config"]["layers"][1]["config"]["kernel_constraint"] = nlohmann::json{
        {"module", "keras.constraints"}, {"class_name", class_name}, {"config", nlohmann::json::object()}};
    const std::string text = constrained.dump();
    io::write_zip("test", path(file),
                  {{"config.json", {text.begin(), text.end()}}, *find_entry(entries, "model.weights.h5")});
  };
  with_constraint("MinMaxNorm", "constraint.keras");
  const std::string constraint_message = message_of([&] { load_model(path("constraint.keras")); });
  EXPECT_NE(constraint_message.find("is the constraint MinMaxNorm, which kiln does not have; expected one of MaxNorm, "
                                    "NonNeg, UnitNorm"),
            std::string::npos)
      << constraint_message;
  with_constraint("NonNeg", "nonneg.keras");
  const Model nonneg = load_model(path("nonneg.keras"));
  EXPECT_EQ(nonneg.layers()[0]->get_config().at("kernel_constraint").at("class_name"), "NonNeg");

  // A missing entry.
  io::write_zip("test", path("noweights.keras"), {*find_entry(entries, "config.json")});
  const std::string missing = message_of([&] { load_model(path("noweights.keras")); });
  EXPECT_NE(missing.find("has no entry 'model.weights.h5'"), std::string::npos) << missing;

  // Not a zip archive.
  {
    std::ofstream out(path("junk.keras"), std::ios::binary);
    out << "this is not a zip archive at all";
  }
  EXPECT_NE(message_of([&] { load_model(path("junk.keras")); }).find("[load_model]"), std::string::npos);

  // A weights file of the wrong shape names the dataset and both shapes.
  Sequential wide({layers::Dense(2, {.input_shape = {1}})});
  model.save_weights(path("m.weights.h5"));
  const std::string shape = message_of([&] { wide.load_weights(path("m.weights.h5")); });
  EXPECT_NE(shape.find("dataset 'layers/dense/vars/0' has shape [1, 1]; expected [1, 2]"), std::string::npos) << shape;

  // A weights file for another model: a layer the model does not have.
  Sequential two({layers::Dense(1, {.input_shape = {1}}), layers::Dense(1)});
  two.save_weights(path("two.weights.h5"));
  Sequential one({layers::Dense(1, {.input_shape = {1}})});
  const std::string other = message_of([&] { one.load_weights(path("two.weights.h5")); });
  EXPECT_NE(other.find("which the model does not have"), std::string::npos) << other;

  // A weights file missing a layer of the model.
  one.save_weights(path("one.weights.h5"));
  const std::string fewer = message_of([&] { two.load_weights(path("one.weights.h5")); });
  EXPECT_NE(fewer.find("has no group 'layers/dense_1/vars' for layer 'dense_1' (Dense)"), std::string::npos) << fewer;

  // Not an HDF5 file.
  {
    std::ofstream out(path("junk.weights.h5"), std::ios::binary);
    out << "not hdf5 either";
  }
  EXPECT_NE(message_of([&] { one.load_weights(path("junk.weights.h5")); }).find("is not a readable HDF5 file"),
            std::string::npos);
}

// Rewrites config.json of the archive at `from` with `edit` and writes it to `to`.
void rewrite_config(const std::string& from, const std::string& to, const std::function<void(nlohmann::json&)>& edit) {
  auto entries = io::read_zip("test", from);
  for (auto& e : entries)
    if (e.name == "config.json") {
      nlohmann::json config = nlohmann::json::parse(e.bytes.begin(), e.bytes.end());
      edit(config);
      const std::string text = config.dump();
      e.bytes.assign(text.begin(), text.end());
    }
  io::write_zip("test", to, entries);
}

TEST_F(KerasFormat, LoadsAFileKerasSaved) {
  // Keras 3.15.1 wrote this file: the house-price seed model after 20 SGD steps.
  const std::string seed = std::string(KILN_TESTS_DIR) + "/fuzz/seeds/keras_file/house_price.keras";
  Sequential model = load_model(seed);
  ASSERT_EQ(model.layers().size(), 1u);
  EXPECT_EQ(model.layers()[0]->class_name(), "Dense");
  EXPECT_EQ(model.input_shape(), Shape({1}));
  ASSERT_NE(model.optimizer(), nullptr);
  EXPECT_EQ(model.optimizer()->class_name(), "SGD");
  EXPECT_EQ(model.optimizer()->iterations(), 20);
  EXPECT_FLOAT_EQ(static_cast<float>(model.optimizer()->learning_rate()), 0.01f);
  EXPECT_EQ(model.loss()->class_name(), "MeanSquaredError");
  const Tensor x = Tensor::from_vector(std::vector<float>{7}, Shape{1, 1});
  const float p = model.predict(x).to_vector<float>()[0];
  EXPECT_TRUE(std::isfinite(p));
  model.save(path("again.keras"));
  Model again = load_model(path("again.keras"));
  expect_same_weights(model, again);
  expect_same_optimizer(model, again);
  EXPECT_EQ(again.predict(x).to_vector<float>()[0], p);
}

TEST_F(KerasFormat, ConfigsKilnCannotHonourAreRefused) {
  utils::set_random_seed(9);
  Sequential model({layers::Dense(2, {.input_shape = {3}}), layers::Dense(1)});
  model.compile(optimizers::Adam(), losses::MeanSquaredError());
  const Tensor x = ramp(Shape{4, 3}, 1.0f);
  model.fit(x, ramp(Shape{4, 1}, 1.0f), {.batch_size = 4, .epochs = 1, .verbose = 0});
  model.save(path("m.keras"));

  rewrite_config(path("m.keras"), path("mixed.keras"),
                 [](nlohmann::json& c) { c["config"]["layers"][1]["config"]["dtype"]["config"]["name"] = "float16"; });
  const std::string mixed = message_of([&] { load_model(path("mixed.keras")); });
  EXPECT_NE(mixed.find("is not a policy kiln loads; expected float32, mixed_float16 or mixed_bfloat16"),
            std::string::npos)
      << mixed;

  rewrite_config(path("m.keras"), path("opt.keras"),
                 [](nlohmann::json& c) { c["compile_config"]["optimizer"]["class_name"] = "Lion"; });
  const std::string opt = message_of([&] { load_model(path("opt.keras")); });
  EXPECT_NE(opt.find("optimizer class \"Lion\" is not one kiln has"), std::string::npos) << opt;
  EXPECT_NE(opt.find("Adam"), std::string::npos) << opt;

  rewrite_config(path("m.keras"), path("model.keras"), [](nlohmann::json& c) {
    c["class_name"] = "MyModel";
    c["registered_name"] = "Custom>MyModel";
  });
  EXPECT_NE(message_of([&] { load_model(path("model.keras")); }).find("custom class"), std::string::npos);

  // Adam's slots under an SGD-with-momentum config: the variable count does not fit.
  rewrite_config(path("m.keras"), path("sgd.keras"), [](nlohmann::json& c) {
    c["compile_config"]["optimizer"] = {{"module", "keras.optimizers"},
                                        {"class_name", "SGD"},
                                        {"config", {{"learning_rate", 0.01}, {"momentum", 0.9}}},
                                        {"registered_name", nullptr}};
  });
  const std::string sgd = message_of([&] { load_model(path("sgd.keras")); });
  EXPECT_NE(sgd.find("group 'optimizer/vars' holds 10 variables; expected 2 or 6 for SGD over 4 trainable weights"),
            std::string::npos)
      << sgd;

  // config.json missing.
  auto entries = io::read_zip("test", path("m.keras"));
  std::erase_if(entries, [](const io::ZipEntry& e) { return e.name == "config.json"; });
  io::write_zip("test", path("noconfig.keras"), entries);
  EXPECT_NE(message_of([&] { load_model(path("noconfig.keras")); }).find("has no entry 'config.json'"),
            std::string::npos);
}

TEST_F(KerasFormat, FuzzRegressionsLoadOrThrow) {
  const fs::path dir = fs::path(KILN_TESTS_DIR) / "fuzz" / "regressions" / "keras_file";
  if (!fs::is_directory(dir)) GTEST_SKIP() << "no regressions in " << dir;
  for (const auto& e : fs::directory_iterator(dir)) {
    if (!e.is_regular_file()) continue;
    // The fuzz target's two input forms: a whole archive, or [u32 length][config.json][weights].
    const auto bytes = read_bytes(e.path().string());
    try {
      if (bytes.size() >= 2 && bytes[0] == 'P' && bytes[1] == 'K') {
        io::keras::load_keras_archive(bytes, e.path().string());
      } else if (bytes.size() >= 4) {
        const std::size_t n =
            std::min<std::size_t>(bytes.size() - 4, std::size_t{bytes[0]} | std::size_t{bytes[1]} << 8 |
                                                        std::size_t{bytes[2]} << 16 | std::size_t{bytes[3]} << 24);
        io::keras::load_keras_entries({{"config.json", {bytes.begin() + 4, bytes.begin() + 4 + static_cast<long>(n)}},
                                       {"model.weights.h5", {bytes.begin() + 4 + static_cast<long>(n), bytes.end()}}},
                                      e.path().string());
      }
    } catch (const Error&) {  // the expected answer; a crash fails the test binary
    }
  }
}

#else

TEST_F(KerasFormat, WithoutLibrariesSavingSaysWhatToInstall) {
  Sequential model = house_model();
  const std::string message = message_of([&] { model.save(path("m.keras")); });
  EXPECT_NE(message.find("kiln was built without"), std::string::npos) << message;
}

#endif
