// Keras' callbacks: EarlyStopping's wait, baseline, warm-up and restored weights; ReduceLROnPlateau's
// reductions, cooldown and floor; LearningRateScheduler; CSVLogger's bytes; TerminateOnNaN; and
// BackupAndRestore resuming a run killed with SIGKILL bit for bit. Small models on the CPU.
#include <gtest/gtest.h>
#include <signal.h>
#ifndef _WIN32
#include <sys/wait.h>
#include <unistd.h>
#endif

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <sstream>

#include "callbacks/python_repr.h"
#include "kiln/kiln.h"
#include "test_support.h"

using namespace kiln;
using kiln::callbacks::Logs;
using kiln::testing::message_of;
using kiln::testing::process_id;
namespace fs = std::filesystem;

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

// A fresh directory per test; models on the CPU, where training is deterministic.
class CallbacksTest : public kiln::testing::CpuTestInFolder {};

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

bool same_bits(const Tensor& a, const Tensor& b) {
  const Tensor ca = a.cpu(), cb = b.cpu();
  return ca.shape() == cb.shape() && ca.dtype() == cb.dtype() &&
         std::memcmp(ca.raw_data(), cb.raw_data(), ca.nbytes()) == 0;
}

// Copies of every weight, trainable or not, layer by layer.
std::vector<Tensor> all_weights(const Model& m) {
  std::vector<Tensor> out;
  for (const auto& layer : m.layers())
    for (const auto& [name, w] : layer->named_weights()) out.push_back(w.clone());
  return out;
}

void expect_same(const std::vector<Tensor>& a, const std::vector<Tensor>& b, const std::string& what) {
  ASSERT_EQ(a.size(), b.size()) << what;
  for (std::size_t i = 0; i < a.size(); ++i) EXPECT_TRUE(same_bits(a[i], b[i])) << what << ": weight " << i;
}

bool differ(const std::vector<Tensor>& a, const std::vector<Tensor>& b) {
  for (std::size_t i = 0; i < a.size(); ++i)
    if (!same_bits(a[i], b[i])) return true;
  return false;
}

// y = 2x - 1 with a BatchNormalization in front, so the model has non-trainable weights too.
Sequential line_model(uint64_t seed, double lr = 0.05) {
  utils::set_random_seed(seed);
  Sequential m({layers::BatchNormalization({.input_shape = {1}}), layers::Dense(1)});
  m.compile(optimizers::SGD({.learning_rate = lr}), losses::MeanSquaredError());
  return m;
}

struct Data {
  Tensor x, y;
};

Data line_data(double sign = 1.0) {
  std::vector<float> xs, ys;
  for (int i = 0; i < 12; ++i) {
    xs.push_back(static_cast<float>(i) / 4.0f);
    ys.push_back(static_cast<float>(sign * (2.0 * xs.back() - 1.0)));
  }
  return {Tensor::from_vector(xs, {12, 1}), Tensor::from_vector(ys, {12, 1})};
}

// Runs `cb` over one logs map per epoch, as fit would; returns on_epoch_end's answers.
std::vector<bool> drive(Callback& cb, Model& m, const std::string& key, const std::vector<double>& values) {
  cb.on_train_begin(m);
  std::vector<bool> out;
  for (std::size_t e = 0; e < values.size(); ++e) {
    out.push_back(cb.on_epoch_end(m, static_cast<int>(e), {{key, values[e]}}));
    if (!out.back()) break;
  }
  cb.on_train_end(m);
  return out;
}

// Records what callbacks before it did: the weights after each epoch and the learning rate each
// epoch ran with.
class Recorder : public Callback {
 public:
  void on_epoch_begin(Model& m, int) override { rates.push_back(m.optimizer()->learning_rate()); }
  bool on_epoch_end(Model& m, int, const Logs&) override {
    weights.push_back(all_weights(m));
    return true;
  }
  std::vector<double> rates;
  std::vector<std::vector<Tensor>> weights;
};

}  // namespace

// ---- Monitor and number formatting ----

TEST(CallbacksPythonRepr, WritesNumbersAsPythonsRepr) {
  using callbacks::detail::python_repr;
  // Each expected string is what Python 3 prints for repr(float).
  EXPECT_EQ(python_repr(0.5), "0.5");
  EXPECT_EQ(python_repr(1e-05), "1e-05");
  EXPECT_EQ(python_repr(0.0001), "0.0001");
  EXPECT_EQ(python_repr(123.0), "123.0");
  EXPECT_EQ(python_repr(100.0), "100.0");
  EXPECT_EQ(python_repr(1e16), "1e+16");
  EXPECT_EQ(python_repr(1.5e16), "1.5e+16");
  EXPECT_EQ(python_repr(1e15), "1000000000000000.0");
  EXPECT_EQ(python_repr(123456789012345.6), "123456789012345.6");
  EXPECT_EQ(python_repr(12345.678), "12345.678");
  EXPECT_EQ(python_repr(1.0 / 3.0), "0.3333333333333333");
  EXPECT_EQ(python_repr(-2.5e-7), "-2.5e-07");
  EXPECT_EQ(python_repr(0.0), "0.0");
  EXPECT_EQ(python_repr(-0.0), "-0.0");
  EXPECT_EQ(python_repr(static_cast<float>(0.01)), "0.009999999776482582");
  EXPECT_EQ(python_repr(static_cast<double>(static_cast<float>(0.01)) * 0.1), "0.0009999999776482583");
  EXPECT_EQ(python_repr(5e-324), "5e-324");
  EXPECT_EQ(python_repr(1.7976931348623157e308), "1.7976931348623157e+308");
  EXPECT_EQ(python_repr(kNaN), "nan");
  EXPECT_EQ(python_repr(kInf), "inf");
  EXPECT_EQ(python_repr(-kInf), "-inf");
}

TEST(CallbacksMonitor, AutoModeFollowsKerasDirections) {
  using callbacks::Monitor;
  EXPECT_FALSE(Monitor("t", "val_loss", "auto", 0).maximize());
  EXPECT_FALSE(Monitor("t", "dense_1_loss", "auto", 0).maximize());
  EXPECT_TRUE(Monitor("t", "val_accuracy", "auto", 0).maximize());
  EXPECT_TRUE(Monitor("t", "acc", "auto", 0).maximize());
  EXPECT_TRUE(Monitor("t", "val_sparse_top_k_categorical_accuracy", "auto", 0).maximize());
  EXPECT_FALSE(Monitor("t", "val_mae", "auto", 0).maximize());
  EXPECT_FALSE(Monitor("t", "mean_squared_error", "auto", 0).maximize());
  EXPECT_TRUE(Monitor("t", "loss", "max", 0).maximize());
  EXPECT_FALSE(Monitor("t", "accuracy", "min", 0).maximize());
  EXPECT_EQ(message_of([] { Monitor("EarlyStopping", "val_f1", "auto", 0); }),
            "[EarlyStopping] mode \"auto\" cannot tell whether monitor \"val_f1\" should be minimized or "
            "maximized; expected mode \"min\" or \"max\"");
  EXPECT_EQ(message_of([] { Monitor("EarlyStopping", "loss", "up", 0); }),
            "[EarlyStopping] mode \"up\" is unknown; expected \"auto\", \"min\" or \"max\"");
  EXPECT_EQ(message_of([] { Monitor("EarlyStopping", "", "auto", 0); }),
            "[EarlyStopping] monitor is empty; expected the name of a log, e.g. \"val_loss\"");
  EXPECT_EQ(message_of([] { Monitor("EarlyStopping", "loss", "auto", kNaN); }),
            "[EarlyStopping] min_delta is nan; expected a finite number");
}

TEST(CallbacksMonitor, ImprovementNeedsMoreThanMinDelta) {
  const callbacks::Monitor down("t", "loss", "min", -0.1);  // Keras takes |min_delta|
  EXPECT_TRUE(down.is_improvement(5.0, std::nullopt));
  EXPECT_TRUE(down.is_improvement(0.85, 1.0));
  EXPECT_FALSE(down.is_improvement(0.9, 1.0));  // 0.9 + 0.1 is not below 1.0
  EXPECT_FALSE(down.is_improvement(kNaN, 1.0));
  const callbacks::Monitor up("t", "accuracy", "auto", 0.1);
  EXPECT_TRUE(up.is_improvement(0.65, 0.5));
  EXPECT_FALSE(up.is_improvement(0.55, 0.5));
  const callbacks::Monitor exact("t", "loss", "min", 0.0);
  EXPECT_FALSE(exact.is_improvement(1.0, 1.0));
  EXPECT_TRUE(exact.is_improvement(std::nextafter(1.0, 0.0), 1.0));
}

// ---- EarlyStopping ----

TEST_F(CallbacksTest, EarlyStoppingCountsPatience) {
  Sequential m = line_model(1);
  callbacks::EarlyStopping es({.monitor = "loss", .patience = 2});
  // Best at epoch 1; epochs 2 and 3 do not improve: the wait reaches 2 at epoch 3.
  EXPECT_EQ(drive(es, m, "loss", {1.0, 0.9, 0.95, 0.92, 0.91}), (std::vector<bool>{true, true, true, false}));
  EXPECT_EQ(es.stopped_epoch(), 3);
  EXPECT_EQ(es.best_epoch(), 1);
  EXPECT_EQ(es.best(), 0.9);
  EXPECT_EQ(es.wait(), 2);
  // patience 0: the first epoch that does not improve stops.
  callbacks::EarlyStopping eager({.monitor = "loss"});
  EXPECT_EQ(drive(eager, m, "loss", {1.0, 0.9, 0.9}), (std::vector<bool>{true, true, false}));
  // The object serves another fit: on_train_begin resets it.
  EXPECT_EQ(drive(es, m, "loss", {3.0, 2.0, 1.0, 0.5}), (std::vector<bool>{true, true, true, true}));
  EXPECT_EQ(es.stopped_epoch(), 0);
  EXPECT_EQ(es.best(), 0.5);
}

TEST_F(CallbacksTest, EarlyStoppingMinDeltaAndMaxMode) {
  Sequential m = line_model(1);
  callbacks::EarlyStopping loose({.monitor = "loss", .min_delta = 0.1, .patience = 1});
  EXPECT_EQ(drive(loose, m, "loss", {1.0, 0.95, 0.85}), (std::vector<bool>{true, false}));
  callbacks::EarlyStopping strict({.monitor = "loss", .min_delta = 0.0, .patience = 1});
  EXPECT_EQ(drive(strict, m, "loss", {1.0, 0.95, 0.85}), (std::vector<bool>{true, true, true}));
  callbacks::EarlyStopping up({.monitor = "val_accuracy", .min_delta = 0.1, .patience = 1});
  EXPECT_EQ(drive(up, m, "val_accuracy", {0.5, 0.55, 0.7}), (std::vector<bool>{true, false}));
  callbacks::EarlyStopping up2({.monitor = "val_accuracy", .min_delta = 0.1, .patience = 1});
  EXPECT_EQ(drive(up2, m, "val_accuracy", {0.5, 0.65, 0.8, 0.7}), (std::vector<bool>{true, true, true, false}));
}

TEST_F(CallbacksTest, EarlyStoppingBaselineAndWarmUp) {
  Sequential m = line_model(1);
  // Improvements that miss the baseline do not reset the wait: it stops at the first epoch that
  // does not improve once the wait exceeds patience.
  callbacks::EarlyStopping base({.monitor = "loss", .patience = 2, .baseline = 0.5});
  EXPECT_EQ(drive(base, m, "loss", {1.0, 0.9, 0.8, 0.85}), (std::vector<bool>{true, true, true, false}));
  EXPECT_EQ(base.wait(), 4);
  // Beating the baseline resets it.
  callbacks::EarlyStopping beaten({.monitor = "loss", .patience = 2, .baseline = 0.5});
  EXPECT_EQ(drive(beaten, m, "loss", {1.0, 0.4, 0.45, 0.46}), (std::vector<bool>{true, true, true, false}));
  EXPECT_EQ(beaten.best(), 0.4);
  callbacks::EarlyStopping fresh({.monitor = "loss", .patience = 2, .baseline = 0.5});
  EXPECT_EQ(drive(fresh, m, "loss", {1.0, 0.4, 0.3, 0.2, 0.45}), (std::vector<bool>{true, true, true, true, true}));
  // Epochs before start_from_epoch are not watched, even when they get worse.
  callbacks::EarlyStopping warm({.monitor = "loss", .patience = 0, .start_from_epoch = 2});
  EXPECT_EQ(drive(warm, m, "loss", {1.0, 2.0, 3.0, 4.0}), (std::vector<bool>{true, true, true, false}));
  EXPECT_EQ(warm.best_epoch(), 2);
  EXPECT_EQ(warm.stopped_epoch(), 3);
}

TEST_F(CallbacksTest, EarlyStoppingRestoresTheBestEpochsWeightsExactly) {
  // Driven by hand: one real epoch of training between the callback's calls, with scripted logs
  // whose best epoch is 2 of 5; every weight (BatchNormalization's moving statistics too) must come
  // back exactly.
  const Data d = line_data();
  Sequential m = line_model(3);
  callbacks::EarlyStopping es({.monitor = "loss", .patience = 10, .restore_best_weights = true});
  const std::vector<double> losses{5.0, 4.0, 1.0, 2.0, 3.0};
  std::vector<std::vector<Tensor>> after;
  es.on_train_begin(m);
  for (int e = 0; e < 5; ++e) {
    m.fit(d.x, d.y, {.batch_size = 4, .epochs = 1, .verbose = 0});
    after.push_back(all_weights(m));
    EXPECT_TRUE(es.on_epoch_end(m, e, {{"loss", losses[static_cast<std::size_t>(e)]}}));
  }
  ASSERT_TRUE(differ(after[2], after[4]));
  ASSERT_GT(m.non_trainable_weights().size(), 0u);
  // Keras 3 restores at the end of training also when it did not stop it.
  es.on_train_end(m);
  EXPECT_EQ(es.stopped_epoch(), 0);
  EXPECT_EQ(es.best_epoch(), 2);
  expect_same(all_weights(m), after[2], "restored");

  // Without restore_best_weights the last weights stay.
  callbacks::EarlyStopping keep({.monitor = "loss", .patience = 10});
  keep.on_train_begin(m);
  for (int e = 0; e < 3; ++e) keep.on_epoch_end(m, e, {{"loss", losses[static_cast<std::size_t>(e)]}});
  const auto before = all_weights(m);
  keep.on_train_end(m);
  expect_same(all_weights(m), before, "kept");
}

TEST_F(CallbacksTest, EarlyStoppingInFitStopsAndRestores) {
  // Validation targets of the opposite sign: as training fits y, val_loss grows, so training stops
  // `patience` epochs after the best one and the best epoch's weights come back.
  const Data d = line_data(), v = line_data(-1.0);
  Sequential m = line_model(5);
  auto es = std::make_shared<callbacks::EarlyStopping>(
      callbacks::EarlyStoppingOptions{.patience = 2, .verbose = 1, .restore_best_weights = true});
  auto rec = std::make_shared<Recorder>();
  ::testing::internal::CaptureStdout();
  const History h = m.fit(
      d.x, d.y, {.batch_size = 4, .epochs = 30, .verbose = 0, .validation_data = {{v.x, v.y}}, .callbacks = {rec, es}});
  const std::string out = ::testing::internal::GetCapturedStdout();
  const auto& val = h.history.at("val_loss");
  const int best = static_cast<int>(std::min_element(val.begin(), val.end()) - val.begin());
  ASSERT_LT(val.size(), 30u) << "training was not stopped";
  EXPECT_EQ(static_cast<int>(val.size()), best + 3);
  EXPECT_EQ(es->stopped_epoch(), best + 2);
  EXPECT_EQ(es->best_epoch(), best);
  ASSERT_TRUE(differ(rec->weights[static_cast<std::size_t>(best)], rec->weights.back()));
  expect_same(all_weights(m), rec->weights[static_cast<std::size_t>(best)], "restored");
  EXPECT_EQ(out, "Epoch " + std::to_string(best + 3) +
                     ": early stopping\nRestoring model weights from the end of the best epoch: " +
                     std::to_string(best + 1) + ".\n");

  // The monitored log must exist: without validation_data there is no val_loss.
  Sequential n = line_model(5);
  auto missing = std::make_shared<callbacks::EarlyStopping>();
  EXPECT_EQ(message_of([&] { n.fit(d.x, d.y, {.epochs = 2, .verbose = 0, .callbacks = {missing}}); }),
            "[EarlyStopping] monitor \"val_loss\" is not among the epoch's logs (loss); expected one of them (val_* "
            "logs need validation_data)");
}

TEST(CallbacksConfig, EarlyStoppingRefusesBadOptions) {
  using callbacks::EarlyStopping;
  EXPECT_EQ(message_of([] { EarlyStopping({.patience = -1}); }),
            "[EarlyStopping] patience is -1; expected >= 0 (epochs without improvement before stopping)");
  EXPECT_EQ(message_of([] { EarlyStopping({.start_from_epoch = -2}); }),
            "[EarlyStopping] start_from_epoch is -2; expected >= 0 (the first 0-based epoch watched)");
  EXPECT_EQ(message_of([] { EarlyStopping({.baseline = kInf}); }),
            "[EarlyStopping] baseline is inf; expected a finite number");
  EXPECT_EQ(message_of([] { EarlyStopping({.mode = "maximum"}); }),
            "[EarlyStopping] mode \"maximum\" is unknown; expected \"auto\", \"min\" or \"max\"");
  EXPECT_EQ(message_of([] { EarlyStopping({.monitor = "val_f1"}); }),
            "[EarlyStopping] mode \"auto\" cannot tell whether monitor \"val_f1\" should be minimized or "
            "maximized; expected mode \"min\" or \"max\"");
  EXPECT_EQ(message_of([] { EarlyStopping({.monitor = "val_f1", .mode = "max"}); }), "(no error)");
}

// ---- ReduceLROnPlateau ----

TEST_F(CallbacksTest, ReduceLROnPlateauReducesAfterPatience) {
  Sequential m = line_model(1, 0.01);
  Optimizer& opt = *m.optimizer();
  callbacks::ReduceLROnPlateau r({.monitor = "loss", .factor = 0.5, .patience = 2});
  r.on_train_begin(m);
  // Flat values: no improvement after the first (min_delta 1e-4); reductions at epochs 2 and 4.
  const double f = static_cast<float>(0.01);  // Keras reads its float32 variable
  const std::vector<double> want{0.01, 0.01, f * 0.5, f * 0.5, static_cast<float>(f * 0.5) * 0.5};
  for (int e = 0; e < 5; ++e) {
    EXPECT_TRUE(r.on_epoch_end(m, e, {{"loss", 1.0}}));
    EXPECT_EQ(opt.learning_rate(), want[static_cast<std::size_t>(e)]) << "after epoch " << e;
  }
  // An improvement (by more than min_delta) resets the wait.
  Sequential n = line_model(1, 0.01);
  callbacks::ReduceLROnPlateau r2({.monitor = "loss", .factor = 0.5, .patience = 2});
  r2.on_train_begin(n);
  const std::vector<double> values{1.0, 0.5, 0.6, 0.4, 0.45, 0.46, 0.39995};
  std::vector<double> rates;
  for (std::size_t e = 0; e < values.size(); ++e) {
    r2.on_epoch_end(n, static_cast<int>(e), {{"loss", values[e]}});
    rates.push_back(n.optimizer()->learning_rate());
  }
  EXPECT_EQ(rates, (std::vector<double>{0.01, 0.01, 0.01, 0.01, 0.01, f * 0.5, f * 0.5}));
  EXPECT_EQ(r2.wait(), 1);  // 0.39995 is within min_delta of 0.4
  EXPECT_EQ(r2.best(), 0.4);
}

TEST_F(CallbacksTest, ReduceLROnPlateauRespectsCooldownAndMinLr) {
  Sequential m = line_model(1, 0.01);
  callbacks::ReduceLROnPlateau r({.monitor = "loss", .factor = 0.5, .patience = 1, .cooldown = 2});
  r.on_train_begin(m);
  std::vector<int> reduced_at;
  double lr = m.optimizer()->learning_rate();
  for (int e = 0; e < 8; ++e) {
    r.on_epoch_end(m, e, {{"loss", 1.0}});
    if (m.optimizer()->learning_rate() != lr) reduced_at.push_back(e);
    lr = m.optimizer()->learning_rate();
  }
  // Keras counts the cooldown down at the start of each epoch's check, so cooldown 2 leaves one
  // epoch uncounted after each reduction.
  EXPECT_EQ(reduced_at, (std::vector<int>{1, 3, 5, 7}));

  Sequential n = line_model(1, 0.01);
  callbacks::ReduceLROnPlateau floor({.monitor = "loss", .factor = 0.1, .patience = 0, .min_lr = 0.005});
  ::testing::internal::CaptureStdout();
  floor.on_train_begin(n);
  for (int e = 0; e < 4; ++e) floor.on_epoch_end(n, e, {{"loss", 1.0}});
  EXPECT_EQ(::testing::internal::GetCapturedStdout(), "");
  EXPECT_EQ(n.optimizer()->learning_rate(), 0.005);  // max(lr * 0.1, min_lr), then no further "reduction"

  Sequential v = line_model(1, 0.01);
  callbacks::ReduceLROnPlateau loud({.monitor = "loss", .factor = 0.1, .patience = 0, .verbose = 1});
  ::testing::internal::CaptureStdout();
  loud.on_train_begin(v);
  for (int e = 0; e < 2; ++e) loud.on_epoch_end(v, e, {{"loss", 1.0}});
  EXPECT_EQ(::testing::internal::GetCapturedStdout(),
            "\nEpoch 2: ReduceLROnPlateau reducing learning rate to 0.0009999999776482583.\n");
}

TEST_F(CallbacksTest, ReduceLROnPlateauInFitTrainsWithTheNewRate) {
  // min_delta so large that no epoch after the first improves: with patience 1 the rate halves
  // after every epoch from the second on. The same rates given by LearningRateScheduler must train
  // to the same weights bit for bit.
  const Data d = line_data();
  Sequential a = line_model(7, 0.01);
  auto rec_a = std::make_shared<Recorder>();
  auto plateau = std::make_shared<callbacks::ReduceLROnPlateau>(
      callbacks::ReduceLROnPlateauOptions{.monitor = "loss", .factor = 0.5, .patience = 1, .min_delta = 1e9});
  a.fit(d.x, d.y, {.batch_size = 4, .epochs = 4, .verbose = 0, .callbacks = {plateau, rec_a}});
  const double f = static_cast<float>(0.01), h = static_cast<float>(f * 0.5);
  EXPECT_EQ(rec_a->rates, (std::vector<double>{0.01, 0.01, f * 0.5, h * 0.5}));

  Sequential b = line_model(7, 0.01);
  const std::vector<double> rates = rec_a->rates;
  auto sched = std::make_shared<callbacks::LearningRateScheduler>(
      [rates](int epoch) { return rates[static_cast<std::size_t>(epoch)]; });
  b.fit(d.x, d.y, {.batch_size = 4, .epochs = 4, .verbose = 0, .callbacks = {sched}});
  expect_same(all_weights(a), all_weights(b), "plateau vs scheduler");
  Sequential c = line_model(7, 0.01);
  c.fit(d.x, d.y, {.batch_size = 4, .epochs = 4, .verbose = 0});
  EXPECT_TRUE(differ(all_weights(a), all_weights(c)));
}

TEST_F(CallbacksTest, ReduceLROnPlateauRefusesBadOptionsAndSchedules) {
  using callbacks::ReduceLROnPlateau;
  EXPECT_EQ(message_of([] { ReduceLROnPlateau({.factor = 1.0}); }),
            "[ReduceLROnPlateau] factor is 1.0; expected a number in [0, 1) (the learning rate is multiplied by it; "
            "Keras refuses a factor >= 1)");
  EXPECT_EQ(message_of([] { ReduceLROnPlateau({.factor = -0.5}); }),
            "[ReduceLROnPlateau] factor is -0.5; expected a number in [0, 1) (the learning rate is multiplied by "
            "it; Keras refuses a factor >= 1)");
  EXPECT_EQ(message_of([] { ReduceLROnPlateau({.patience = -1}); }),
            "[ReduceLROnPlateau] patience is -1; expected >= 0 (epochs without improvement before reducing)");
  EXPECT_EQ(message_of([] { ReduceLROnPlateau({.cooldown = -3}); }),
            "[ReduceLROnPlateau] cooldown is -3; expected >= 0 (epochs to wait after a reduction)");
  EXPECT_EQ(message_of([] { ReduceLROnPlateau({.min_lr = -1e-3}); }),
            "[ReduceLROnPlateau] min_lr is -0.001; expected a finite number >= 0");
  EXPECT_EQ(message_of([] { ReduceLROnPlateau({.mode = "down"}); }),
            "[ReduceLROnPlateau] mode \"down\" is unknown; expected \"auto\", \"min\" or \"max\"");

  utils::set_random_seed(0);
  Sequential m({layers::Dense(1, {.input_shape = {1}})});
  m.compile(optimizers::SGD({.learning_rate = schedules::ExponentialDecay(
                                 {.initial_learning_rate = 0.1, .decay_steps = 10, .decay_rate = 0.9})}),
            losses::MeanSquaredError());
  const Data d = line_data();
  auto r = std::make_shared<ReduceLROnPlateau>(callbacks::ReduceLROnPlateauOptions{.monitor = "loss"});
  EXPECT_EQ(message_of([&] { m.fit(d.x, d.y, {.epochs = 1, .verbose = 0, .callbacks = {r}}); }),
            "[ReduceLROnPlateau] the optimizer SGD takes its learning rate from a schedule, which cannot be set; "
            "expected an optimizer made with a number as its learning_rate");
  Sequential n = line_model(1);
  auto missing = std::make_shared<ReduceLROnPlateau>();
  EXPECT_EQ(message_of([&] { n.fit(d.x, d.y, {.epochs = 1, .verbose = 0, .callbacks = {missing}}); }),
            "[ReduceLROnPlateau] monitor \"val_loss\" is not among the epoch's logs (loss); expected one of them "
            "(val_* logs need validation_data)");
}

// ---- LearningRateScheduler ----

TEST_F(CallbacksTest, LearningRateSchedulerSetsEachEpochsRate) {
  const Data d = line_data();
  Sequential m = line_model(2, 0.01);
  auto rec = std::make_shared<Recorder>();
  std::vector<std::pair<int, double>> calls;
  auto sched = std::make_shared<callbacks::LearningRateScheduler>(
      [&calls](int epoch, double lr) {
        calls.emplace_back(epoch, lr);
        return epoch < 2 ? lr : lr * 0.5;
      },
      1);
  ::testing::internal::CaptureStdout();
  m.fit(d.x, d.y, {.batch_size = 4, .epochs = 4, .verbose = 0, .callbacks = {sched, rec}});
  const std::string out = ::testing::internal::GetCapturedStdout();
  const double f = static_cast<float>(0.01), g = static_cast<float>(f * 0.5);
  EXPECT_EQ(calls, (std::vector<std::pair<int, double>>{{0, f}, {1, f}, {2, f}, {3, g}}));
  EXPECT_EQ(rec->rates, (std::vector<double>{f, f, f * 0.5, g * 0.5}));
  EXPECT_EQ(out,
            "\nEpoch 1: LearningRateScheduler setting learning rate to 0.009999999776482582.\n"
            "\nEpoch 2: LearningRateScheduler setting learning rate to 0.009999999776482582.\n"
            "\nEpoch 3: LearningRateScheduler setting learning rate to 0.004999999888241291.\n"
            "\nEpoch 4: LearningRateScheduler setting learning rate to 0.0024999999441206455.\n");

  // A rate of 0 leaves every trainable weight as it was: the optimizer really uses the rate.
  Sequential z = line_model(2, 0.01);
  const auto before = z.trainable_weights();
  std::vector<Tensor> copies;
  for (const Tensor& w : before) copies.push_back(w.clone());
  auto zero = std::make_shared<callbacks::LearningRateScheduler>([](int) { return 0.0; });
  z.fit(d.x, d.y, {.batch_size = 4, .epochs = 2, .verbose = 0, .callbacks = {zero}});
  expect_same(z.trainable_weights(), copies, "rate 0");
  // Resuming starts the schedule at initial_epoch.
  calls.clear();
  Sequential r = line_model(2, 0.01);
  ::testing::internal::CaptureStdout();
  r.fit(d.x, d.y, {.batch_size = 4, .epochs = 5, .verbose = 0, .initial_epoch = 3, .callbacks = {sched}});
  (void)::testing::internal::GetCapturedStdout();
  ASSERT_EQ(calls.size(), 2u);
  EXPECT_EQ(calls[0].first, 3);
  EXPECT_EQ(calls[1].first, 4);
}

TEST_F(CallbacksTest, LearningRateSchedulerRefusesBadSchedules) {
  using callbacks::LearningRateScheduler;
  EXPECT_EQ(message_of([] { LearningRateScheduler(std::function<double(int, double)>{}); }),
            "[LearningRateScheduler] schedule is empty; expected a function of (epoch, lr) returning the rate");
  EXPECT_EQ(message_of([] { LearningRateScheduler([](int) { return 0.1; }, -1); }),
            "[LearningRateScheduler] verbose is -1; expected 0 or 1");
  const Data d = line_data();
  Sequential m = line_model(1, 0.01);
  auto nan = std::make_shared<LearningRateScheduler>([](int e, double lr) { return e == 1 ? kNaN : lr; });
  EXPECT_EQ(message_of([&] { m.fit(d.x, d.y, {.epochs = 3, .verbose = 0, .callbacks = {nan}}); }),
            "[LearningRateScheduler] schedule(1, 0.009999999776482582) returned nan; expected a finite learning "
            "rate >= 0");
  auto negative = std::make_shared<LearningRateScheduler>([](int) { return -0.1; });
  EXPECT_EQ(message_of([&] { m.fit(d.x, d.y, {.epochs = 1, .verbose = 0, .callbacks = {negative}}); }),
            "[LearningRateScheduler] schedule(0, 0.009999999776482582) returned -0.1; expected a finite learning "
            "rate >= 0");
}

// ---- CSVLogger ----

TEST_F(CallbacksTest, CSVLoggerWritesKerasBytes) {
  Sequential m = line_model(1);
  callbacks::CSVLogger log(path("log.csv"));
  log.on_train_begin(m);
  log.on_epoch_end(m, 0, {{"loss", 0.5}, {"accuracy", 0.25}, {"val_loss", 1e-05}, {"val_accuracy", 0.1}});
  // Flushed per row: the file holds the epoch before training ends.
  EXPECT_EQ(read_text(path("log.csv")), "epoch,accuracy,loss,val_accuracy,val_loss\r\n0,0.25,0.5,0.1,1e-05\r\n");
  log.on_epoch_end(m, 1, {{"loss", 123.0}, {"val_loss", kNaN}, {"accuracy", 1.0 / 3.0}});  // no val_accuracy
  log.on_train_end(m);
  EXPECT_EQ(read_text(path("log.csv")),
            "epoch,accuracy,loss,val_accuracy,val_loss\r\n0,0.25,0.5,0.1,1e-05\r\n"
            "1,0.3333333333333333,123.0,NA,nan\r\n");

  // Without val_* logs Keras adds a val_ column for each log, filled with NA.
  callbacks::CSVLogger plain(path("plain.csv"), {.separator = ";"});
  plain.on_train_begin(m);
  plain.on_epoch_end(m, 0, {{"loss", 2.0}, {"mae", 0.75}});
  plain.on_train_end(m);
  EXPECT_EQ(read_text(path("plain.csv")), "epoch;loss;mae;val_loss;val_mae\r\n0;2.0;0.75;NA;NA\r\n");

  // Python's minimal quoting: fields holding the separator are quoted.
  callbacks::CSVLogger dots(path("dots.csv"), {.separator = "."});
  dots.on_train_begin(m);
  dots.on_epoch_end(m, 10, {{"loss", 0.5}, {"val_loss", 2.0}});
  dots.on_train_end(m);
  EXPECT_EQ(read_text(path("dots.csv")), "epoch.loss.val_loss\r\n10.\"0.5\".\"2.0\"\r\n");
}

TEST_F(CallbacksTest, CSVLoggerAppendsOrReplaces) {
  Sequential m = line_model(1);
  const auto run = [&](const callbacks::CSVLoggerOptions& o, int first, int n) {
    callbacks::CSVLogger log(path("log.csv"), o);
    log.on_train_begin(m);
    for (int e = first; e < first + n; ++e) log.on_epoch_end(m, e, {{"loss", 1.0 + e}, {"val_loss", 2.0 + e}});
    log.on_train_end(m);
  };
  run({}, 0, 2);
  run({.append = true}, 2, 1);  // no second header
  EXPECT_EQ(read_text(path("log.csv")), "epoch,loss,val_loss\r\n0,1.0,2.0\r\n1,2.0,3.0\r\n2,3.0,4.0\r\n");
  run({}, 0, 1);  // replaced
  EXPECT_EQ(read_text(path("log.csv")), "epoch,loss,val_loss\r\n0,1.0,2.0\r\n");
  std::ofstream(path("log.csv"), std::ios::trunc).close();
  run({.append = true}, 5, 1);  // an empty file gets the header
  EXPECT_EQ(read_text(path("log.csv")), "epoch,loss,val_loss\r\n5,6.0,7.0\r\n");
  fs::remove(path("log.csv"));
  run({.append = true}, 0, 1);  // so does a new one
  EXPECT_EQ(read_text(path("log.csv")), "epoch,loss,val_loss\r\n0,1.0,2.0\r\n");
}

TEST_F(CallbacksTest, CSVLoggerInFitRecordsHistoryExactly) {
  const Data d = line_data(), v = line_data(-1.0);
  Sequential m = line_model(4);
  auto log = std::make_shared<callbacks::CSVLogger>(path("fit.csv"));
  const History h = m.fit(
      d.x, d.y, {.batch_size = 5, .epochs = 3, .verbose = 0, .validation_data = {{v.x, v.y}}, .callbacks = {log}});
  std::istringstream in(read_text(path("fit.csv")));
  std::string line;
  std::getline(in, line);
  EXPECT_EQ(line, "epoch,loss,val_loss\r");
  for (int e = 0; e < 3; ++e) {
    ASSERT_TRUE(std::getline(in, line));
    ASSERT_EQ(line.back(), '\r');
    std::istringstream row(line.substr(0, line.size() - 1));
    std::string epoch, loss, val_loss;
    std::getline(row, epoch, ',');
    std::getline(row, loss, ',');
    std::getline(row, val_loss, ',');
    EXPECT_EQ(epoch, std::to_string(e));
    // repr reads back as the very double History holds.
    EXPECT_EQ(std::stod(loss), h.history.at("loss")[static_cast<std::size_t>(e)]);
    EXPECT_EQ(std::stod(val_loss), h.history.at("val_loss")[static_cast<std::size_t>(e)]);
  }
  EXPECT_FALSE(std::getline(in, line));
}

TEST_F(CallbacksTest, CSVLoggerRefusesBadArguments) {
  using callbacks::CSVLogger;
  EXPECT_EQ(message_of([] { CSVLogger(""); }), "[CSVLogger] filename is empty; expected a file name");
  for (const std::string sep : {"", ",,", "\""})
    EXPECT_EQ(message_of([&] { CSVLogger("x.csv", {.separator = sep}); }),
              "[CSVLogger] separator \"" + sep +
                  "\" is not usable; expected one character other than '\"', '\\r' and '\\n' (as Python's csv module)");
  Sequential m = line_model(1);
  CSVLogger nowhere(path("no/such/dir/log.csv"));
  EXPECT_EQ(message_of([&] { nowhere.on_train_begin(m); }),
            "[CSVLogger] cannot open " + path("no/such/dir/log.csv") +
                " for writing (No such file or directory); expected a writable file in an existing directory");
}

// ---- TerminateOnNaN ----

TEST_F(CallbacksTest, TerminateOnNaNStopsAtANonFiniteLoss) {
  Sequential m = line_model(1);
  callbacks::TerminateOnNaN t;
  EXPECT_TRUE(t.stops_on_non_finite_loss());
  EXPECT_TRUE(t.on_epoch_end(m, 0, {{"loss", 0.5}}));
  EXPECT_TRUE(t.on_epoch_end(m, 0, {{"val_loss", kNaN}}));  // Keras watches the training loss only
  ::testing::internal::CaptureStdout();
  EXPECT_FALSE(t.on_epoch_end(m, 2, {{"loss", kNaN}}));
  EXPECT_FALSE(t.on_epoch_end(m, 3, {{"loss", -kInf}}));
  EXPECT_EQ(::testing::internal::GetCapturedStdout(),
            "Epoch 3: Invalid loss, terminating training\nEpoch 4: Invalid loss, terminating training\n");
  callbacks::TerminateOnNaN raising({.raise_error = true});
  EXPECT_FALSE(raising.stops_on_non_finite_loss());
  try {
    raising.on_epoch_end(m, 4, {{"loss", kInf}});
    ADD_FAILURE() << "no error";
  } catch (const NonFiniteError& e) {
    EXPECT_STREQ(e.what(),
                 "[TerminateOnNaN] NaN or Inf loss encountered at epoch 5. Loss value: inf. Terminating training "
                 "immediately.");
  }
}

TEST_F(CallbacksTest, FitRaisesAtANonFiniteLossBeforeCallbacksSeeIt) {
  // fit stops at the step whose loss is not finite by throwing NonFiniteError; TerminateOnNaN's
  // on_epoch_end is never reached (callbacks.h: TerminateOnNaN).
  Data d = line_data();
  d.x.data<float>()[7] = std::numeric_limits<float>::quiet_NaN();
  Sequential m({layers::Dense(1, {.input_shape = {1}})});
  m.compile("sgd", "mse");
  struct Ends : Callback {
    int epochs = 0;
    bool on_epoch_end(Model&, int, const Logs&) override { return ++epochs > 0; }
  };
  auto ends = std::make_shared<Ends>();
  EXPECT_THROW(m.fit(d.x, d.y,
                     {.batch_size = 4,
                      .epochs = 2,
                      .verbose = 0,
                      .shuffle = false,
                      .callbacks = {std::make_shared<callbacks::TerminateOnNaN>(), ends}}),
               NonFiniteError);
  EXPECT_EQ(ends->epochs, 0);
}

// ---- BackupAndRestore ----

namespace {

// fit with the backup among its callbacks: fit asks Callback::resume_epoch after on_train_begin, so
// the same call resumes after a kill.
History fit_with_backup(Model& m, const Tensor& x, const Tensor& y, const FitOptions& o,
                        const callbacks::BackupAndRestore&) {
  return m.fit(x, y, o);
}

Sequential small_cnn(uint64_t seed) {
  utils::set_random_seed(seed);
  Sequential m({layers::Conv2D(4, {3, 3}, {.activation = "relu", .input_shape = {8, 8, 3}}),
                layers::BatchNormalization(), layers::MaxPooling2D({2, 2}), layers::Flatten(),
                layers::Dense(8, {.activation = "relu"}), layers::Dense(4)});
  m.compile(optimizers::Adam({.learning_rate = 0.01}), losses::SparseCategoricalCrossentropy({.from_logits = true}),
            {"accuracy"});
  return m;
}

Data cnn_data(int64_t n) {
  Generator gen(7);
  Tensor x = Tensor::uniform({n, 8, 8, 3}, 0.0, 1.0, gen);
  std::vector<int32_t> labels(static_cast<std::size_t>(n));
  for (auto& l : labels) l = static_cast<int32_t>(gen.below(4));
  return {x, Tensor::from_vector(labels)};
}

}  // namespace

TEST_F(CallbacksTest, BackupAndRestoreResumesAKilledRunBitForBit) {
#ifdef _WIN32
  GTEST_SKIP() << "needs fork() and SIGKILL";
#else
  const int threads = get_num_threads();
  set_num_threads(1);  // reductions in one order in every process
  const Data d = cnn_data(30), v = cnn_data(9);
  const FitOptions base{.batch_size = 7, .epochs = 5, .verbose = 0, .validation_data = {{v.x, v.y}}};
  const auto run = [&](const std::string& name, std::vector<std::shared_ptr<Callback>> extra) {
    Sequential m = small_cnn(11);
    auto backup = std::make_shared<callbacks::BackupAndRestore>(path(name));
    FitOptions o = base;
    o.callbacks = {backup, std::make_shared<callbacks::CSVLogger>(path(name + ".csv"),
                                                                  callbacks::CSVLoggerOptions{.append = true})};
    o.callbacks.insert(o.callbacks.end(), extra.begin(), extra.end());
    const History h = fit_with_backup(m, d.x, d.y, o, *backup);
    return std::make_pair(std::move(m), h);
  };

  auto [straight, full] = run("straight", {});
  EXPECT_FALSE(fs::exists(path("straight"))) << "the backup is removed when training ends";

  // The same run, killed with SIGKILL right after epoch 3's backup.
  struct Kill : Callback {
    bool on_epoch_end(Model&, int epoch, const Logs&) override {
      if (epoch == 2) ::raise(SIGKILL);
      return true;
    }
  };
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    try {
      run("run", {std::make_shared<Kill>()});
    } catch (...) {
      ::_exit(3);
    }
    ::_exit(4);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << "the child ended with status " << status;
  ASSERT_EQ(checkpoint_epoch(path("run/latest.kiln")), 2);

  // Rerunning the same call finishes the training: epochs 4 and 5, as the uninterrupted run had them.
  utils::set_random_seed(999);  // the backup holds the generator, whatever the process did meanwhile
  auto [resumed, rest] = run("run", {});
  EXPECT_EQ(rest.epoch, (std::vector<int>{3, 4}));
  ASSERT_EQ(rest.history.size(), full.history.size());
  for (const auto& [name, values] : full.history)
    EXPECT_EQ(rest.history.at(name), std::vector<double>(values.begin() + 3, values.end())) << name;
  expect_same(all_weights(resumed), all_weights(straight), "resumed");
  EXPECT_EQ(resumed.optimizer()->iterations(), straight.optimizer()->iterations());
  for (std::size_t i = 0; i < straight.optimizer()->slots().size(); ++i)
    expect_same(resumed.optimizer()->slots()[i], straight.optimizer()->slots()[i], "slots");
  EXPECT_EQ(resumed.generator().state(), straight.generator().state());
  // The killed run's CSV rows and the resumed run's make the uninterrupted run's file.
  EXPECT_EQ(read_text(path("run.csv")), read_text(path("straight.csv")));
  EXPECT_FALSE(fs::exists(path("run")));
  set_num_threads(threads);
#endif
}

TEST_F(CallbacksTest, BackupAndRestoreRestoresTheWholeTrainingState) {
  const Data d = line_data();
  Sequential a = line_model(1, 0.01);
  a.fit(d.x, d.y, {.batch_size = 4, .epochs = 2, .verbose = 0});
  a.optimizer()->set_learning_rate(0.003);  // as ReduceLROnPlateau would
  callbacks::BackupAndRestore backup(path("b"), {.delete_checkpoint = false});
  backup.on_train_begin(a);
  EXPECT_EQ(backup.resume_epoch(a), -1);  // nothing to restore yet
  EXPECT_TRUE(backup.on_epoch_end(a, 6, {}));
  EXPECT_EQ(backup.backup_path(), (fs::path(path("b")) / "latest.kiln").string());
  EXPECT_EQ(checkpoint_epoch(backup.backup_path()), 6);

  Sequential b = line_model(2, 0.01);  // other weights, a fresh optimizer
  ASSERT_TRUE(differ(all_weights(a), all_weights(b)));
  callbacks::BackupAndRestore again(path("b"), {.delete_checkpoint = false});
  again.on_train_begin(b);
  EXPECT_EQ(again.resume_epoch(b), 7);
  expect_same(all_weights(b), all_weights(a), "weights");
  EXPECT_EQ(b.optimizer()->iterations(), a.optimizer()->iterations());
  EXPECT_EQ(b.optimizer()->learning_rate(), 0.003);
  EXPECT_EQ(b.generator().state(), a.generator().state());
  // delete_checkpoint false keeps the backup; rerunning a finished call runs no epoch.
  again.on_train_end(b);
  EXPECT_TRUE(fs::exists(again.backup_path()));
  auto keep = std::make_shared<callbacks::BackupAndRestore>(
      path("b"), callbacks::BackupAndRestoreOptions{.delete_checkpoint = false});
  const History h = fit_with_backup(b, d.x, d.y, {.epochs = 7, .verbose = 0, .callbacks = {keep}}, *keep);
  EXPECT_TRUE(h.epoch.empty());

  // The default removes the backup, and the directory only when nothing else is in it.
  std::ofstream(path("b/notes.txt")) << "mine";
  callbacks::BackupAndRestore remove(path("b"));
  remove.on_train_end(b);
  EXPECT_FALSE(fs::exists(remove.backup_path()));
  EXPECT_TRUE(fs::exists(path("b/notes.txt")));
  fs::remove(path("b/notes.txt"));
  remove.on_epoch_end(b, 0, {});
  remove.on_train_end(b);
  EXPECT_FALSE(fs::exists(path("b")));
}

TEST_F(CallbacksTest, BackupAndRestoreRefusesBackupsOfOtherModels) {
  EXPECT_EQ(message_of([] { callbacks::BackupAndRestore(""); }),
            "[BackupAndRestore] backup_dir is empty; expected a directory to keep the backup in");
  EXPECT_EQ(message_of([] { callbacks::BackupAndRestore("d", {.save_freq = "100"}); }),
            "[BackupAndRestore] save_freq \"100\" is not supported; expected \"epoch\" (fit calls callbacks at "
            "epoch ends only, so backups every n batches are not possible)");
  Sequential a = line_model(1);
  callbacks::BackupAndRestore backup(path("b"));
  backup.on_epoch_end(a, 0, {});
  const std::string file = backup.backup_path();

  utils::set_random_seed(3);
  Sequential wider({layers::BatchNormalization({.input_shape = {1}}), layers::Dense(2)});
  wider.compile(optimizers::SGD(), losses::MeanSquaredError());
  const auto before = all_weights(wider);
  EXPECT_EQ(message_of([&] { backup.on_train_begin(wider); }),
            "[BackupAndRestore] the backup " + file +
                " does not fit the model: weight dense/kernel [1, 1] there, dense/kernel [1, 2] in the model; "
                "expected the model that wrote it (remove the backup to start training afresh)");
  expect_same(all_weights(wider), before, "unchanged");

  Sequential adam = line_model(1);
  adam.compile(optimizers::Adam(), losses::MeanSquaredError());
  EXPECT_EQ(message_of([&] { backup.on_train_begin(adam); }),
            "[BackupAndRestore] the backup " + file +
                " does not fit the model: it was trained with SGD, the model is compiled with Adam; expected the "
                "model that wrote it (remove the backup to start training afresh)");

  std::ofstream(file, std::ios::trunc | std::ios::binary) << "not a model";
  const std::string msg = message_of([&] { backup.on_train_begin(a); });
  EXPECT_TRUE(
      msg.starts_with("[BackupAndRestore] the backup " + file + " cannot be read ([safetensors] " + file + ": "))
      << msg;
  EXPECT_TRUE(msg.ends_with("); expected a file written by BackupAndRestore (remove it to start training afresh)"))
      << msg;
}

// ---- on a GPU: the callbacks' changes reach recorded steps and kept evaluations ----

TEST_F(CallbacksTest, CudaLearningRateChangesReachRecordedSteps) {
  REQUIRE_GPU();
  const Data d = cnn_data(64);
  Sequential m = small_cnn(21);
  m.to(Device::gpu());
  // Rate 0 from the second epoch on: the recorded step must read the new rate, leaving the
  // trainable weights exactly as the first epoch left them.
  auto sched = std::make_shared<callbacks::LearningRateScheduler>([](int epoch) { return epoch == 0 ? 0.01 : 0.0; });
  auto rec = std::make_shared<Recorder>();
  m.fit(d.x, d.y, {.batch_size = 8, .epochs = 3, .verbose = 0, .callbacks = {sched, rec}});
  ASSERT_TRUE(m.last_fit_execution().recorded) << m.last_fit_execution().reason;
  const auto trainable = [&](const std::vector<Tensor>& all) {
    std::vector<Tensor> out;
    std::size_t i = 0;
    for (const auto& layer : m.layers())
      for (const auto& w : layer->all_weights()) {
        if (w.trainable) out.push_back(all[i]);
        ++i;
      }
    return out;
  };
  expect_same(trainable(rec->weights[2]), trainable(rec->weights[0]), "rate 0");
}

TEST_F(CallbacksTest, CudaRestoredWeightsReachTheKeptEvaluation) {
  REQUIRE_GPU();
  const Data d = cnn_data(64), v = cnn_data(24);
  Sequential m = small_cnn(22);
  m.to(Device::gpu());
  auto es = std::make_shared<callbacks::EarlyStopping>(
      callbacks::EarlyStoppingOptions{.monitor = "loss", .patience = 10, .mode = "max", .restore_best_weights = true});
  auto rec = std::make_shared<Recorder>();
  // mode "max" on a falling loss: the best epoch is an early one, so restoring changes the weights.
  const History h = m.fit(
      d.x, d.y, {.batch_size = 8, .epochs = 4, .verbose = 0, .validation_data = {{v.x, v.y}}, .callbacks = {rec, es}});
  const auto& best = rec->weights[static_cast<std::size_t>(es->best_epoch())];
  ASSERT_TRUE(differ(best, rec->weights.back()));
  expect_same(all_weights(m), best, "restored");
  // evaluate reuses the recording fit's validation made; it must see the restored weights.
  EXPECT_EQ(m.evaluate(v.x, v.y, {.batch_size = 8, .verbose = 0}),
            m.evaluate(v.x, v.y, {.batch_size = 8, .verbose = 0, .cuda_graphs = false}));
  EXPECT_EQ(h.history.at("loss").size(), 4u);
}
