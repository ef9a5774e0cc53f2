// A layer class of the user's own, written here against the public API only: with a weight and a
// config, registered with RegisterLayer, it trains, saves, loads and predicts the same; an
// unregistered one makes save() say which class and how to register it.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "kiln/kiln.h"
#include "test_support.h"

using namespace kiln;
namespace fs = std::filesystem;
using kiln::testing::message_of;

namespace {

// y = x * scale + offset: `scale` a trainable weight per feature (initially ones), `offset` an
// argument kept in the config.
class ScaleShift : public Layer {
 public:
  explicit ScaleShift(double offset = 0.0) : offset_(offset) { name_ = "scale_shift"; }
  std::string class_name() const override { return "ScaleShift"; }
  Config get_config() const override { return {{"offset", offset_}}; }
  static ScaleShift from_config(const Config& config) { return ScaleShift(config.at("offset").get<double>()); }
  Shape compute_output_shape(const Shape& input_shape) const override { return input_shape; }
  Tensor call(const Tensor& x, bool) override { return add(mul(x, weight("scale")), offset_); }

 protected:
  void create_weights(const Shape& input_shape) override {
    add_weight("scale", {input_shape[input_shape.ndim() - 1]}, initializers::Ones());
  }

 private:
  double offset_;
};

const RegisterLayer<ScaleShift> registered("ScaleShift");

// The same layer without a RegisterLayer: usable, but not savable.
class Unregistered : public Layer {
 public:
  Unregistered() { name_ = "unregistered"; }
  std::string class_name() const override { return "Unregistered"; }
  Shape compute_output_shape(const Shape& input_shape) const override { return input_shape; }
  Tensor call(const Tensor& x, bool) override { return x; }
};

fs::path fresh_dir(const std::string& name) {
  const fs::path dir =
      fs::temp_directory_path() / ("kiln_custom_layer_" + name + "_" + std::to_string(std::random_device{}()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

bool same_bits(const Tensor& a, const Tensor& b) {
  if (a.shape() != b.shape() || a.dtype() != b.dtype()) return false;
  const Tensor ca = a.cpu(), cb = b.cpu();
  return std::memcmp(ca.raw_data(), cb.raw_data(), ca.nbytes()) == 0;
}

Sequential custom_model() {
  utils::set_random_seed(12);
  Sequential model({layers::Dense(4, {.activation = "tanh", .input_shape = {3}}), ScaleShift(0.5), layers::Dense(2)},
                   "custom");
  model.compile(optimizers::Adam({.learning_rate = 0.01}), losses::MeanSquaredError());
  return model;
}

}  // namespace

TEST(CustomLayer, TrainsSavesLoadsAndPredictsTheSame) {
  const Device previous = model_device();
  set_default_device(Device::cpu());  // bit-identical comparisons need the CPU's kernels
  const fs::path dir = fresh_dir("round_trip");
  Generator gen(3);
  const Tensor x = Tensor::uniform({40, 3}, -1, 1, gen), y = Tensor::uniform({40, 2}, -1, 1, gen);
  Sequential a = custom_model();
  EXPECT_EQ(a.layers()[1]->name(), "scale_shift");
  EXPECT_EQ(a.count_params(), 3 * 4 + 4 + 4 + 4 * 2 + 2);
  const History h = a.fit(x, y, {.batch_size = 8, .epochs = 10, .verbose = 0});
  EXPECT_LT(h.history.at("loss").back(), h.history.at("loss").front());
  EXPECT_NE(a.layers()[1]->named_weights()[0].second.to_vector<float>(), std::vector<float>(4, 1.0f))
      << "the custom weight did not train";
  std::ostringstream summary;
  a.summary(summary);
  EXPECT_NE(summary.str().find("scale_shift (ScaleShift)"), std::string::npos) << summary.str();

  const std::string file = (dir / "custom.kiln").string();
  a.save(file);
  Sequential b = load_model(file);
  ASSERT_EQ(b.layers().size(), 3u);
  EXPECT_EQ(b.layers()[1]->class_name(), "ScaleShift");
  EXPECT_EQ(b.layers()[1]->name(), "scale_shift");
  EXPECT_EQ(b.layers()[1]->get_config(), (Config{{"offset", 0.5}}));
  EXPECT_TRUE(same_bits(a.layers()[1]->named_weights()[0].second, b.layers()[1]->named_weights()[0].second));
  EXPECT_TRUE(same_bits(a.predict(x), b.predict(x)));
  // Training on from the checkpoint matches training on the original.
  const History ha = a.fit(x, y, {.batch_size = 8, .epochs = 12, .verbose = 0, .shuffle = false, .initial_epoch = 10});
  const History hb = b.fit(x, y, {.batch_size = 8, .epochs = 12, .verbose = 0, .shuffle = false, .initial_epoch = 10});
  EXPECT_EQ(ha.history.at("loss"), hb.history.at("loss"));
  fs::remove_all(dir);
  set_default_device(previous);
}

TEST(CustomLayer, UnregisteredClassMakesSaveSayHowToRegister) {
  const fs::path dir = fresh_dir("unregistered");
  Sequential model({layers::Dense(2, {.input_shape = {3}}), Unregistered()});
  const std::string msg = message_of([&] { model.save((dir / "m.kiln").string()); });
  EXPECT_NE(msg.find("[save] layer 'unregistered' is a Unregistered, which is not a registered layer class"),
            std::string::npos)
      << msg;
  EXPECT_NE(msg.find("kiln::RegisterLayer<Unregistered> registered(\"Unregistered\")"), std::string::npos) << msg;
  EXPECT_FALSE(fs::exists(dir / "m.kiln"));
  fs::remove_all(dir);
}

TEST(CustomLayer, RegisteringANameTwiceIsRefused) {
  EXPECT_EQ(message_of([] { RegisterLayer<ScaleShift>("ScaleShift"); }),
            "[register] layer class 'ScaleShift' is registered twice; expected unique names");
}
