// LossScaleOptimizer (Keras' dynamic loss scaling) on the CPU: a non-finite gradient skips the
// update bit for bit and halves the scale, finite steps grow it, scaled training equals unscaled
// training bit for bit when nothing overflows, fit skips overflowing steps, save/load and
// BackupAndRestore keep the scale and the count, option and file errors, and compile's wrapping
// under mixed_float16.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "io/safetensors.h"
#include "kiln/kiln.h"
#include "kiln/mixed_precision.h"
#include "test_support.h"

using namespace kiln;
using kiln::testing::message_of;
using optimizers::LossScaleOptimizer;

namespace {

std::vector<uint32_t> bits_of(const Tensor& t) {
  std::vector<uint32_t> out;
  for (float v : t.to_vector<float>()) out.push_back(std::bit_cast<uint32_t>(v));
  return out;
}

// The bits of every weight of `model`.
std::vector<std::vector<uint32_t>> model_bits(const Model& model) {
  std::vector<std::vector<uint32_t>> out;
  for (const Tensor& w : model.trainable_weights()) out.push_back(bits_of(w));
  return out;
}

// Two parameters and a step whose gradients are `c` (the derivative of sum(w * c)) times the scale.
struct Params {
  Tensor a = Tensor::from_vector(std::vector<float>{0.5f, -1.25f, 2.0f}, Shape{3}).set_requires_grad();
  Tensor b = Tensor::from_vector(std::vector<float>{0.75f, -0.125f}, Shape{2}).set_requires_grad();
  std::vector<Tensor> list() const { return {a, b}; }

  void step(LossScaleOptimizer& opt, std::vector<float> ca, std::vector<float> cb) {
    for (Tensor p : list()) p.zero_grad();
    const Tensor loss =
        add(sum(mul(a, Tensor::from_vector(ca, Shape{3}))), sum(mul(b, Tensor::from_vector(cb, Shape{2}))));
    opt.scale_loss(loss).backward();
    opt.step(list());
  }
};

// The bits of every slot of `opt`.
std::vector<std::vector<uint32_t>> slot_bits(const Optimizer& opt) {
  std::vector<std::vector<uint32_t>> out;
  for (const auto& group : opt.slots())
    for (const Tensor& s : group) out.push_back(bits_of(s));
  return out;
}

const float kInf = std::numeric_limits<float>::infinity();

Sequential small_model() {
  return Sequential({layers::Dense(8, {.activation = "relu", .input_shape = {5}}), layers::Dense(3)});
}

std::pair<Tensor, Tensor> data(int64_t n, uint64_t seed) {
  Generator gen(seed);
  const Tensor x = Tensor::uniform({n, 5}, -1, 1, gen);
  const Tensor y = Tensor::uniform({n, 3}, -1, 1, gen);
  return {x, y};
}

LossScaleOptimizer& scaling_of(Model& model) { return dynamic_cast<LossScaleOptimizer&>(*model.optimizer()); }

std::string temp_path(const std::string& name) { return (std::filesystem::temp_directory_path() / name).string(); }

}  // namespace

TEST(LossScaleOptimizer, NonFiniteGradientSkipsTheUpdateAndHalvesTheScale) {
  Params p;
  LossScaleOptimizer opt(optimizers::Adam({.learning_rate = 0.01}), {.initial_scale = 1024.0});
  p.step(opt, {1, 2, 3}, {4, 5});
  p.step(opt, {0.5f, -1, 2}, {1, 1});
  EXPECT_EQ(opt.iterations(), 2);
  EXPECT_EQ(opt.inner_optimizer().iterations(), 2);
  EXPECT_EQ(opt.step_counter(), 2);
  const auto a = bits_of(p.a), b = bits_of(p.b);
  const auto slots = slot_bits(opt);
  p.step(opt, {1, kInf, 3}, {4, 5});  // one gradient element is infinite
  EXPECT_EQ(bits_of(p.a), a);
  EXPECT_EQ(bits_of(p.b), b);  // its gradient was finite, and it is skipped too
  EXPECT_EQ(slot_bits(opt), slots);
  EXPECT_EQ(opt.iterations(), 2);
  EXPECT_EQ(opt.inner_optimizer().iterations(), 2);
  EXPECT_EQ(opt.dynamic_scale(), 512.0);
  EXPECT_EQ(opt.step_counter(), 0);
  p.step(opt, {1, 2, std::nanf("")}, {4, 5});  // a NaN too
  EXPECT_EQ(bits_of(p.a), a);
  EXPECT_EQ(opt.iterations(), 2);
  EXPECT_EQ(opt.dynamic_scale(), 256.0);
  p.step(opt, {1, 2, 3}, {4, 5});
  EXPECT_NE(bits_of(p.a), a);
  EXPECT_EQ(opt.iterations(), 3);
  EXPECT_EQ(opt.step_counter(), 1);
}

TEST(LossScaleOptimizer, ScaleDoublesAfterGrowthStepsFiniteSteps) {
  Params p;
  LossScaleOptimizer opt(optimizers::SGD(), {.initial_scale = 8.0, .dynamic_growth_steps = 3});
  EXPECT_EQ(opt.dynamic_scale(), 8.0);
  EXPECT_EQ(opt.step_counter(), 0);
  for (int i = 0; i < 2; ++i) p.step(opt, {1, 2, 3}, {4, 5});
  EXPECT_EQ(opt.dynamic_scale(), 8.0);
  EXPECT_EQ(opt.step_counter(), 2);
  p.step(opt, {1, 2, 3}, {4, 5});
  EXPECT_EQ(opt.dynamic_scale(), 16.0);
  EXPECT_EQ(opt.step_counter(), 0);
  for (int i = 0; i < 2; ++i) p.step(opt, {1, 2, 3}, {4, 5});
  EXPECT_EQ(opt.step_counter(), 2);
  p.step(opt, {kInf, 2, 3}, {4, 5});  // the count restarts: the next growth is 3 finite steps away
  EXPECT_EQ(opt.dynamic_scale(), 8.0);
  EXPECT_EQ(opt.step_counter(), 0);
  for (int i = 0; i < 3; ++i) p.step(opt, {1, 2, 3}, {4, 5});
  EXPECT_EQ(opt.dynamic_scale(), 16.0);
  EXPECT_EQ(opt.iterations(), 8);
}

TEST(LossScaleOptimizer, ScaledTrainingEqualsUnscaledTrainingBitForBit) {
  // The scale is a power of two, so multiplying the loss and dividing the gradients are exact.
  const auto [x, y] = data(40, 3);
  auto run = [&](const Optimizer& opt, bool scaled) {
    utils::set_random_seed(5);
    Sequential model = small_model();
    if (scaled)
      model.compile(LossScaleOptimizer(opt, {.initial_scale = 4096.0, .dynamic_growth_steps = 2}),
                    losses::MeanSquaredError());
    else
      model.compile(opt, losses::MeanSquaredError());
    const History h = model.fit(x, y, {.batch_size = 8, .epochs = 3, .verbose = 0});
    if (scaled) {
      EXPECT_EQ(model.optimizer()->iterations(), 15);
      EXPECT_EQ(scaling_of(model).dynamic_scale(), 4096.0 * 128);  // 15 finite steps: 7 doublings
    }
    return std::make_pair(model_bits(model), h.history.at("loss"));
  };
  const auto sgd = optimizers::SGD({.learning_rate = 0.05, .momentum = 0.9});
  EXPECT_EQ(run(sgd, true), run(sgd, false));
  const auto adam = optimizers::Adam({.learning_rate = 0.01});
  EXPECT_EQ(run(adam, true), run(adam, false));
  const auto rms = optimizers::RMSprop({.learning_rate = 0.01, .clipnorm = 0.5});
  EXPECT_EQ(run(rms, true), run(rms, false));
}

TEST(LossScaleOptimizer, FitSkipsStepsWhoseScaledGradientsOverflow) {
  // 2^127: the scaled gradients overflow float32 until the scale has halved enough.
  const auto [x, y_unit] = data(64, 4);
  const Tensor y = mul(y_unit, 30.0);  // large errors: large gradients
  utils::set_random_seed(6);
  Sequential model = small_model();
  model.compile(LossScaleOptimizer(optimizers::Adam(), {.initial_scale = std::ldexp(1.0, 127)}),
                losses::MeanSquaredError());
  const History h = model.fit(x, y, {.batch_size = 8, .epochs = 2, .verbose = 0, .shuffle = false});
  const LossScaleOptimizer& opt = scaling_of(model);
  const int64_t skipped = 16 - opt.iterations();
  EXPECT_GT(skipped, 0);
  EXPECT_LT(skipped, 16);
  EXPECT_EQ(opt.dynamic_scale(), std::ldexp(1.0, 127 - static_cast<int>(skipped)));
  for (const auto& w : model.trainable_weights())
    for (float v : w.to_vector<float>()) EXPECT_TRUE(std::isfinite(v));
  for (double loss : h.history.at("loss")) EXPECT_TRUE(std::isfinite(loss));

  // The skipped steps changed nothing: training on only the applied batches gives the same
  // weights. Which ones were applied: the same training one batch per fit, watching iterations().
  utils::set_random_seed(6);
  Sequential stepwise = small_model();
  stepwise.compile(LossScaleOptimizer(optimizers::Adam(), {.initial_scale = std::ldexp(1.0, 127)}),
                   losses::MeanSquaredError());
  utils::set_random_seed(6);
  Sequential plain = small_model();
  plain.compile(optimizers::Adam(), losses::MeanSquaredError());
  const FitOptions one_step{.batch_size = 8, .epochs = 1, .verbose = 0, .shuffle = false};
  int64_t applied = 0;
  for (int epoch = 0; epoch < 2; ++epoch)
    for (int64_t b = 0; b < 8; ++b) {
      const Tensor xb = x.slice_rows(b * 8, b * 8 + 8), yb = y.slice_rows(b * 8, b * 8 + 8);
      stepwise.fit(xb, yb, one_step);
      if (stepwise.optimizer()->iterations() == applied) continue;  // skipped
      ++applied;
      plain.fit(xb, yb, one_step);
    }
  EXPECT_EQ(applied, opt.iterations());
  EXPECT_EQ(model_bits(stepwise), model_bits(model));
  EXPECT_EQ(model_bits(plain), model_bits(model));
}

TEST(LossScaleOptimizer, SaveAndLoadKeepTheScaleAndTheCount) {
  const auto [x, y] = data(40, 8);
  utils::set_random_seed(9);
  Sequential model = small_model();
  model.compile(LossScaleOptimizer(optimizers::Adam({.learning_rate = 0.01}),
                                   {.initial_scale = 1024.0, .dynamic_growth_steps = 3}),
                losses::MeanSquaredError());
  model.fit(x, y, {.batch_size = 8, .epochs = 1, .verbose = 0});  // 5 steps: one doubling, count 2
  ASSERT_EQ(scaling_of(model).dynamic_scale(), 2048.0);
  ASSERT_EQ(scaling_of(model).step_counter(), 2);
  const std::string path = temp_path("kiln_loss_scale.kiln");
  model.save(path);
  Model loaded = load_model(path);
  auto& opt = scaling_of(loaded);
  EXPECT_EQ(opt.dynamic_scale(), 2048.0);
  EXPECT_EQ(opt.step_counter(), 2);
  EXPECT_EQ(opt.iterations(), 5);
  EXPECT_EQ(opt.options().dynamic_growth_steps, 3);
  EXPECT_EQ(opt.options().initial_scale, 1024.0);
  EXPECT_EQ(opt.inner_optimizer().class_name(), "Adam");
  EXPECT_EQ(slot_bits(opt), slot_bits(*model.optimizer()));
  // Training on from the file is training on from the model.
  model.fit(x, y, {.batch_size = 8, .epochs = 1, .verbose = 0, .shuffle = false});
  loaded.fit(x, y, {.batch_size = 8, .epochs = 1, .verbose = 0, .shuffle = false});
  EXPECT_EQ(model_bits(loaded), model_bits(model));
  EXPECT_EQ(opt.dynamic_scale(), 8192.0);  // doubled at the 1st and 4th steps
  EXPECT_EQ(opt.step_counter(), 1);
  std::filesystem::remove(path);
}

TEST(LossScaleOptimizer, BackupAndRestoreResumesTheScale) {
  const auto [x, y] = data(24, 10);
  const std::string dir = temp_path("kiln_loss_scale_backup");
  std::filesystem::remove_all(dir);
  auto make = [] {
    utils::set_random_seed(12);
    Sequential model = small_model();
    model.compile(LossScaleOptimizer(optimizers::SGD({.learning_rate = 0.05}),
                                     {.initial_scale = 64.0, .dynamic_growth_steps = 2}),
                  losses::MeanSquaredError());
    return model;
  };
  Sequential first = make();
  auto backup = std::make_shared<callbacks::BackupAndRestore>(
      dir, callbacks::BackupAndRestoreOptions{.delete_checkpoint = false});
  first.fit(x, y, {.batch_size = 8, .epochs = 1, .verbose = 0, .callbacks = {backup}});
  Sequential second = make();
  second.fit(x, y, {.batch_size = 8, .epochs = 1, .verbose = 0, .callbacks = {backup}});  // resumes: no epoch left
  EXPECT_EQ(scaling_of(second).dynamic_scale(), 128.0);                                   // 3 steps: one doubling
  EXPECT_EQ(scaling_of(second).step_counter(), 1);
  EXPECT_EQ(second.optimizer()->iterations(), 3);
  EXPECT_EQ(model_bits(second), model_bits(first));
  std::filesystem::remove_all(dir);
}

TEST(LossScaleOptimizer, ConfigRoundTripsThroughTheRegistry) {
  const LossScaleOptimizer opt(optimizers::RMSprop({.learning_rate = 0.003}),
                               {.initial_scale = 256.0, .dynamic_growth_steps = 7});
  const Config config = opt.get_config();
  EXPECT_EQ(config.at("initial_scale"), 256.0);
  EXPECT_EQ(config.at("dynamic_growth_steps"), 7);
  EXPECT_EQ(config.at("inner_optimizer").at("class_name"), "RMSprop");
  const auto rebuilt = optimizer_registry().make("LossScaleOptimizer", config);
  EXPECT_EQ(rebuilt->get_config(), config);
  EXPECT_EQ(rebuilt->learning_rate(), opt.learning_rate());
}

TEST(LossScaleOptimizer, BadOptionsNameTheOption) {
  const auto sgd = optimizers::SGD();
  EXPECT_EQ(message_of([&] { (void)LossScaleOptimizer(sgd, {.initial_scale = 0.0}); }),
            "[LossScaleOptimizer] initial_scale is 0.000000; expected a number > 0 that float32 holds (the scale "
            "is kept in float32, as Keras)");
  EXPECT_NE(message_of([&] { (void)LossScaleOptimizer(sgd, {.initial_scale = -2.0}); }).find("initial_scale is -2"),
            std::string::npos);
  EXPECT_NE(message_of([&] { (void)LossScaleOptimizer(sgd, {.initial_scale = 1e39}); }).find("initial_scale is"),
            std::string::npos);
  EXPECT_EQ(message_of([&] { (void)LossScaleOptimizer(sgd, {.dynamic_growth_steps = 0}); }),
            "[LossScaleOptimizer] dynamic_growth_steps is 0; expected an integer >= 1");
  EXPECT_EQ(message_of([&] { (void)LossScaleOptimizer(std::unique_ptr<Optimizer>()); }),
            "[LossScaleOptimizer] the inner optimizer is null; expected an optimizer to wrap");
  EXPECT_EQ(message_of([&] { (void)LossScaleOptimizer(LossScaleOptimizer(sgd).clone()); }),
            "[LossScaleOptimizer] the inner optimizer is a LossScaleOptimizer; expected the optimizer to wrap (the "
            "loss is scaled once)");
  LossScaleOptimizer opt(sgd);
  // The generic state hooks (what save, load and BackupAndRestore use) name what they take.
  const auto vars = opt.state_variables();
  ASSERT_EQ(vars.size(), 2u);
  EXPECT_EQ(vars[0].first, "loss_scale_optimizer/dynamic_scale");
  EXPECT_EQ(vars[0].second.to_vector<float>(), std::vector<float>{32768.0f});
  EXPECT_EQ(vars[1].first, "loss_scale_optimizer/step_counter");
  EXPECT_EQ(vars[1].second.dtype(), DType::Int64);
  EXPECT_EQ(message_of([&] { opt.restore_state_variables({vars[0]}); }),
            "[LossScaleOptimizer] loss_scale_optimizer/step_counter is missing; expected one int64 value");
  EXPECT_EQ(message_of([&] {
              opt.restore_state_variables({vars[0], {"loss_scale_optimizer/other", vars[1].second}});
            }),
            "[LossScaleOptimizer] got state variable 'loss_scale_optimizer/other'; expected "
            "loss_scale_optimizer/dynamic_scale and loss_scale_optimizer/step_counter");
  opt.restore_state_variables(
      {{"loss_scale_optimizer/dynamic_scale", Tensor::from_vector(std::vector<float>{4.0f}, Shape())},
       {"loss_scale_optimizer/step_counter", Tensor::from_vector(std::vector<int64_t>{7}, Shape())}});
  EXPECT_EQ(opt.dynamic_scale(), 4.0);
  EXPECT_EQ(opt.step_counter(), 7);
  optimizers::SGD plain;
  EXPECT_EQ(message_of([&] { plain.restore_state_variables(vars); }),
            "[SGD] got a value for state variable 'loss_scale_optimizer/dynamic_scale'; expected none (the optimizer "
            "keeps no state beyond its slots)");
  EXPECT_TRUE(sgd.state_variables().empty());
  EXPECT_FALSE(sgd.skips_non_finite_steps());
  EXPECT_TRUE(opt.skips_non_finite_steps());
  EXPECT_EQ(message_of([&] { opt.restore_loss_scale(0.0, 1); }),
            "[LossScaleOptimizer] dynamic_scale is 0.000000; expected a finite float32 number > 0");
  EXPECT_EQ(message_of([&] { opt.restore_loss_scale(2.0, -1); }),
            "[LossScaleOptimizer] step_counter is -1; expected an integer >= 0");
  EXPECT_EQ(message_of([&] { LossScaleOptimizer::from_config(Config::object()); }),
            "[from_config] the LossScaleOptimizer config: \"inner_optimizer\" is missing; expected {\"class_name\": "
            "..., \"config\": ...} of the wrapped optimizer");
  EXPECT_NE(message_of([&] {
              LossScaleOptimizer::from_config({{"inner_optimizer", {{"class_name", "Nope"}}}});
            }).find("class_name \"Nope\" is not a registered optimizer class"),
            std::string::npos);
  EXPECT_NE(
      message_of([&] {
        LossScaleOptimizer::from_config({{"inner_optimizer", {{"class_name", "SGD"}}}, {"dynamic_growth_steps", -3}});
      }).find("dynamic_growth_steps is -3"),
      std::string::npos);
}

TEST(LossScaleOptimizer, LoadRefusesMissingOrBadState) {
  const auto [x, y] = data(16, 13);
  utils::set_random_seed(14);
  Sequential model = small_model();
  model.compile(LossScaleOptimizer(optimizers::SGD()), losses::MeanSquaredError());
  model.fit(x, y, {.batch_size = 8, .epochs = 1, .verbose = 0});
  const std::string path = temp_path("kiln_loss_scale_bad.kiln");
  model.save(path);
  const io::SafetensorsFile file = io::read_safetensors(path, "test");
  // Rewrites the file with `name` replaced by `value` (or left out when undefined).
  auto rewrite = [&](const std::string& name, const Tensor& value) {
    std::vector<std::pair<std::string, Tensor>> tensors;
    for (const auto& e : file.view.tensors) {
      if (e.name != name)
        tensors.emplace_back(e.name, io::to_tensor(e));
      else if (value.defined())
        tensors.emplace_back(e.name, value);
    }
    io::write_safetensors(path, tensors, file.view.metadata);
  };
  const std::string scale = "optimizer/loss_scale_optimizer/dynamic_scale";
  const std::string counter = "optimizer/loss_scale_optimizer/step_counter";
  rewrite(scale, Tensor());
  EXPECT_EQ(message_of([&] { load_model(path); }),
            "[load_model] " + path + ": no tensor '" + scale + "'; expected the LossScaleOptimizer's state (F32 [])");
  rewrite(scale, Tensor::from_vector(std::vector<float>{0.0f}, Shape()));
  EXPECT_EQ(message_of([&] { load_model(path); }),
            "[load_model] " + path +
                ": [LossScaleOptimizer] dynamic_scale is 0.000000; expected a finite float32 number > 0");
  rewrite(scale, Tensor::from_vector(std::vector<float>{2.0f}, Shape{1}));
  EXPECT_EQ(message_of([&] { load_model(path); }),
            "[load_model] " + path + ": tensor '" + scale + "' is F32 [1]; expected F32 []");
  rewrite(counter, Tensor::from_vector(std::vector<int64_t>{-4}, Shape()));
  EXPECT_EQ(message_of([&] { load_model(path); }),
            "[load_model] " + path + ": [LossScaleOptimizer] step_counter is -4; expected an integer >= 0");
  std::filesystem::remove(path);
}

TEST(LossScaleOptimizer, CompileWrapsTheOptimizerOfAMixedFloat16Model) {
  kiln::testing::RestoreGlobalPolicy guard;
  {
    Sequential plain = small_model();
    plain.compile("adam", "mse");
    EXPECT_EQ(plain.optimizer()->class_name(), "Adam");
  }
  mixed_precision::set_global_policy("mixed_float16");
  Sequential model = small_model();
  ASSERT_EQ(model.layers().front()->dtype_policy().name(), "mixed_float16");
  model.compile("adam", "mse");
  const auto* opt = dynamic_cast<const LossScaleOptimizer*>(model.optimizer());
  ASSERT_NE(opt, nullptr);
  EXPECT_EQ(opt->inner_optimizer().class_name(), "Adam");
  EXPECT_EQ(opt->options().initial_scale, 32768.0);
  EXPECT_EQ(opt->options().dynamic_growth_steps, 2000);
  // An optimizer that scales already is kept as it is.
  model.compile(LossScaleOptimizer(optimizers::SGD(), {.initial_scale = 2.0}), losses::MeanSquaredError());
  const auto* kept = dynamic_cast<const LossScaleOptimizer*>(model.optimizer());
  ASSERT_NE(kept, nullptr);
  EXPECT_EQ(kept->inner_optimizer().class_name(), "SGD");
  EXPECT_EQ(kept->options().initial_scale, 2.0);
  // mixed_bfloat16 needs no loss scaling (bfloat16 has float32's range), as in Keras.
  mixed_precision::set_global_policy("mixed_bfloat16");
  Sequential bf16 = small_model();
  bf16.compile("adam", "mse");
  EXPECT_EQ(bf16.optimizer()->class_name(), "Adam");
}

namespace {
// A user's optimizer without a fused update: plain gradient descent in update().
class PlainDescent : public Optimizer {
 public:
  std::string name() const override { return "PlainDescent"; }
  std::string class_name() const override { return "PlainDescent"; }
  Config get_config() const override { return Config::object(); }
  std::vector<std::string> slot_names() const override { return {}; }
  std::unique_ptr<Optimizer> clone() const override { return std::make_unique<PlainDescent>(); }

 protected:
  void update(Tensor& param, const Tensor& grad, std::vector<Tensor>&, int64_t) override {
    NoGradGuard no_grad;
    param.copy_(sub(param, mul(grad, 0.5)));
  }
};
}  // namespace

TEST(LossScaleOptimizer, WrapsAUsersOptimizer) {
  Params p;
  LossScaleOptimizer opt(PlainDescent(), {.initial_scale = 16.0});
  p.step(opt, {1, 2, 3}, {4, 5});
  EXPECT_EQ(p.a.to_vector<float>(), (std::vector<float>{0.0f, -2.25f, 0.5f}));
  EXPECT_EQ(opt.iterations(), 1);
  const auto a = bits_of(p.a);
  p.step(opt, {1, 2, kInf}, {4, 5});
  EXPECT_EQ(bits_of(p.a), a);
  EXPECT_EQ(opt.iterations(), 1);
  EXPECT_EQ(opt.dynamic_scale(), 8.0);
}

TEST(LossScaleOptimizer, KerasFileKeepsTheScaleAndTheCount) {
#if KILN_WITH_LIBZIP && KILN_WITH_HDF5
  const auto [x, y] = data(40, 16);
  utils::set_random_seed(15);
  Sequential model = small_model();
  model.compile(LossScaleOptimizer(optimizers::Adam({.learning_rate = 0.01}),
                                   {.initial_scale = 512.0, .dynamic_growth_steps = 2}),
                losses::MeanSquaredError());
  model.fit(x, y, {.batch_size = 8, .epochs = 1, .verbose = 0});  // 5 steps: two doublings, count 1
  const std::string path = temp_path("kiln_loss_scale.keras");
  model.save(path);
  Model loaded = load_model(path);
  auto& opt = scaling_of(loaded);
  EXPECT_EQ(opt.dynamic_scale(), 2048.0);
  EXPECT_EQ(opt.step_counter(), 1);
  EXPECT_EQ(opt.iterations(), 5);
  EXPECT_EQ(opt.inner_optimizer().class_name(), "Adam");
  EXPECT_EQ(opt.options().dynamic_growth_steps, 2);
  EXPECT_EQ(slot_bits(opt), slot_bits(*model.optimizer()));
  std::filesystem::remove(path);
#else
  GTEST_SKIP() << "built without libzip or libhdf5";
#endif
}
