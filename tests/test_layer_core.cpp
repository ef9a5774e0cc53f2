// The open layer core: training mode reaches every layer, non-trainable weights and frozen layers
// are kept out of the optimizer but saved, the summary counts both, dry builds allocate nothing,
// and registries refuse what they cannot hold.
#include <gtest/gtest.h>

#include <filesystem>
#include <sstream>

#include "kiln/kiln.h"
#include "test_support.h"

namespace kiln {
namespace {

using testing::message_of;

// Passes x through and remembers the training flag of its last call; holds a trainable scale and a
// non-trainable call counter (state of the kind BatchNormalization keeps).
class FlagProbe : public Layer {
 public:
  std::string class_name() const override { return "FlagProbe"; }
  static FlagProbe from_config(const Config&) { return FlagProbe(); }
  Shape compute_output_shape(const Shape& in) const override { return in; }
  Tensor call(const Tensor& x, bool training) override {
    last_training = training;
    if (training) {
      NoGradGuard no_grad;
      Tensor& calls = weight("calls");
      calls.copy_(add(calls, 1.0));
    }
    return mul(x, weight("scale"));
  }
  bool last_training = false;

 protected:
  void create_weights(const Shape& in) override {
    add_weight("scale", in, *initializers::get("ones"));
    add_weight("calls", {1}, *initializers::get("zeros"), {.trainable = false});
  }
};
const RegisterLayer<FlagProbe> registered("FlagProbe");

const Tensor kX = Tensor::from_vector<float>({1, 2, 3, 4, 5, 6, 7, 8}, {4, 2});
const Tensor kY = Tensor::from_vector<float>({1, 0, 1, 0}, {4, 1});

TEST(LayerCore, TrainingFlagIsTrueInFitAndFalseInEvaluateAndPredict) {
  utils::set_random_seed(0);
  auto probe = std::make_shared<FlagProbe>();
  Sequential m({LayerRef(probe), layers::Dense(1)});
  m.to(Device::cpu());
  m.compile("sgd", "mse");
  m.fit(kX, kY, {.batch_size = 2, .epochs = 1, .verbose = 0});
  EXPECT_TRUE(probe->last_training);
  m.predict(kX);
  EXPECT_FALSE(probe->last_training);
  m.fit(kX, kY, {.batch_size = 4, .epochs = 1, .verbose = 0});
  m.evaluate(kX, kY, {.verbose = 0});
  EXPECT_FALSE(probe->last_training);
  m(kX, true);
  EXPECT_TRUE(probe->last_training);
  m(kX);
  EXPECT_FALSE(probe->last_training);
  // Two steps of batch 2, one of batch 4 and the custom call: four training calls in all.
  EXPECT_EQ(probe->non_trainable_weights().at(0).item(), 4.0);
}

TEST(LayerCore, NonTrainableWeightsAreCountedSavedAndNeverOptimized) {
  utils::set_random_seed(0);
  Sequential m({FlagProbe(), layers::Dense(1)});
  m.to(Device::cpu());
  m.build({2});
  EXPECT_EQ(m.trainable_weights().size(), 3u);  // scale, kernel, bias
  EXPECT_EQ(m.non_trainable_weights().size(), 1u);
  EXPECT_EQ(m.count_params(), 2 + 1 + 2 + 1);
  std::ostringstream summary;
  m.summary(summary);
  EXPECT_NE(summary.str().find(" Total params: 6 (24.00 B)"), std::string::npos) << summary.str();
  EXPECT_NE(summary.str().find(" Trainable params: 5 (20.00 B)"), std::string::npos) << summary.str();
  EXPECT_NE(summary.str().find(" Non-trainable params: 1 (4.00 B)"), std::string::npos) << summary.str();
  EXPECT_FALSE(m.non_trainable_weights()[0].requires_grad());

  m.compile("adam", "mse");
  m.fit(kX, kY, {.batch_size = 2, .epochs = 2, .verbose = 0});
  EXPECT_EQ(m.non_trainable_weights()[0].item(), 4.0);  // changed by its layer only
  const auto dir = std::filesystem::temp_directory_path() / "kiln_layer_core";
  std::filesystem::create_directories(dir);
  const std::string path = (dir / "probe.kiln").string();
  m.save(path);
  Sequential loaded = load_model(path);
  ASSERT_EQ(loaded.non_trainable_weights().size(), 1u);
  EXPECT_EQ(loaded.non_trainable_weights()[0].item(), 4.0);
  EXPECT_EQ(loaded.layers()[0]->named_weights()[1].first, "calls");
  const auto a = m.predict(kX).to_vector<float>(), b = loaded.predict(kX).to_vector<float>();
  EXPECT_EQ(a, b);
  std::filesystem::remove_all(dir);
}

TEST(LayerCore, FrozenLayerGetsNoUpdatesButIsSavedFrozen) {
  utils::set_random_seed(0);
  Sequential m({layers::Dense(3, {.activation = "relu", .input_shape = {2}}), layers::Dense(1)});
  m.to(Device::cpu());
  m.layers()[0]->set_trainable(false);
  EXPECT_EQ(m.trainable_weights().size(), 2u);
  EXPECT_EQ(m.non_trainable_weights().size(), 2u);
  std::ostringstream summary;
  m.summary(summary);
  EXPECT_NE(summary.str().find(" Trainable params: 4 (16.00 B)"), std::string::npos) << summary.str();
  EXPECT_NE(summary.str().find(" Non-trainable params: 9 (36.00 B)"), std::string::npos) << summary.str();
  const Tensor frozen_before = m.layers()[0]->named_weights()[0].second.clone();
  const Tensor head_before = m.layers()[1]->named_weights()[0].second.clone();
  m.compile("sgd", "mse");
  m.fit(kX, kY, {.batch_size = 2, .epochs = 3, .verbose = 0});
  EXPECT_EQ(m.layers()[0]->named_weights()[0].second.to_vector<float>(), frozen_before.to_vector<float>());
  EXPECT_FALSE(m.layers()[0]->named_weights()[0].second.grad().defined());
  EXPECT_NE(m.layers()[1]->named_weights()[0].second.to_vector<float>(), head_before.to_vector<float>());

  const auto dir = std::filesystem::temp_directory_path() / "kiln_layer_core_frozen";
  std::filesystem::create_directories(dir);
  const std::string path = (dir / "frozen.kiln").string();
  m.save(path);
  Sequential loaded = load_model(path);
  EXPECT_FALSE(loaded.layers()[0]->trainable());
  EXPECT_TRUE(loaded.layers()[1]->trainable());
  EXPECT_EQ(loaded.layers()[0]->named_weights()[0].second.to_vector<float>(), frozen_before.to_vector<float>());
  // Unfreezing gives the weights back to the optimizer.
  loaded.layers()[0]->set_trainable(true);
  EXPECT_EQ(loaded.trainable_weights().size(), 4u);
  EXPECT_TRUE(loaded.layers()[0]->named_weights()[0].second.requires_grad());
  std::filesystem::remove_all(dir);
}

TEST(LayerCore, SavingAfterFreezingWithoutCompilingAgainIsRefusedNotWrittenUnloadably) {
  utils::set_random_seed(0);
  Sequential m({layers::Dense(3, {.input_shape = {2}}), layers::Dense(1)});
  m.to(Device::cpu());
  m.compile("adam", "mse");
  m.fit(kX, kY, {.batch_size = 2, .epochs = 1, .verbose = 0});
  m.layers()[0]->set_trainable(false);
  const auto dir = std::filesystem::temp_directory_path() / "kiln_layer_core_refreeze";
  std::filesystem::create_directories(dir);
  const std::string path = (dir / "m.kiln").string();
  EXPECT_EQ(message_of([&] { m.save(path); }),
            "[save] the optimizer holds slots for 4 weights but the model has 2 trainable weights (a layer was frozen "
            "or unfrozen since compile); expected compile() again before save, as after changing trainable in Keras");
  EXPECT_FALSE(std::filesystem::exists(path));
  m.compile("adam", "mse");
  m.fit(kX, kY, {.batch_size = 2, .epochs = 1, .verbose = 0});
  m.save(path);
  EXPECT_FALSE(load_model(path).layers()[0]->trainable());
  std::filesystem::remove_all(dir);
}

TEST(LayerCore, WeightSpecsCountWithoutAllocating) {
  layers::Dense huge(int64_t{1} << 30);
  // 2^30 x 2^20 float32 would be 4 PiB: a dry build only records the shapes.
  const auto specs = huge.weight_specs({int64_t{1} << 20});
  ASSERT_EQ(specs.size(), 2u);
  EXPECT_EQ(specs[0].name, "kernel");
  EXPECT_EQ(specs[0].shape, Shape({int64_t{1} << 20, int64_t{1} << 30}));
  EXPECT_FALSE(specs[0].value.defined());
  EXPECT_EQ(specs[1].shape, Shape({int64_t{1} << 30}));
  EXPECT_FALSE(huge.built());
  EXPECT_TRUE(huge.all_weights().empty());
}

TEST(LayerCore, RegistriesRefuseDuplicatesAndNameTheKnownClasses) {
  EXPECT_EQ(message_of([] { RegisterLayer<FlagProbe> again("FlagProbe"); }),
            "[register] layer class 'FlagProbe' is registered twice; expected unique names");
  EXPECT_TRUE(layer_registry().contains("Dense"));
  EXPECT_TRUE(loss_registry().contains("mse"));
  EXPECT_TRUE(optimizer_registry().contains("Adam"));
  const std::string unknown = message_of([] { losses::get("poisson"); });
  EXPECT_EQ(unknown.rfind("[loss] unknown loss 'poisson'; expected one of ", 0), 0u) << unknown;
  EXPECT_NE(unknown.find("mean_squared_error"), std::string::npos) << unknown;
}

TEST(LayerCore, AddWeightOutsideBuildIsAnError) {
  class Eager : public Layer {
   public:
    std::string class_name() const override { return "Eager"; }
    Shape compute_output_shape(const Shape& in) const override { return in; }
    Tensor call(const Tensor& x, bool) override {
      add_weight("late", {1}, *initializers::get("zeros"));
      return x;
    }
  };
  Eager layer;
  layer.set_name("eager");
  EXPECT_EQ(message_of([&] { layer.call(kX, false); }),
            "[eager] add_weight('late') called outside build; expected it in create_weights()");
}

}  // namespace
}  // namespace kiln
