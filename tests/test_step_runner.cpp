// The step runners: the schedule that picks eager or recorded steps (driven here by stand-in
// runners, so it runs everywhere), the report of why a model ran eagerly, an optimizer of the
// user's own, and on a GPU the recorded step against the eager one for the seed models.
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "kiln/kiln.h"
#include "model/step_schedule.h"
#include "step_equivalence.h"
#include "test_support.h"

using namespace kiln;

namespace {

// ---- the schedule, with stand-in runners ----

// Logs each step: "e3" when step 3 ran eagerly, "r3" when the recorded runner ran it.
struct StepLog {
  std::vector<std::string> steps;
  int settles = 0, starts = 0, made = 0;
  std::string joined() const {
    std::string out;
    for (const auto& s : steps) out += (out.empty() ? "" : " ") + s;
    return out;
  }
};

class LoggedWork : public model::StepWork {
 public:
  explicit LoggedWork(StepLog& log) : log_(log) {}
  void body(const model::Tensors&, const model::Tensors&) override {
    ADD_FAILURE() << "the schedule ran a body itself";
  }
  void eager(int64_t step, const model::Tensors&, const model::Tensors&) override {
    log_.steps.push_back("e" + std::to_string(step));
  }

 private:
  StepLog& log_;
};

class LoggedRecording : public model::StepRunner {
 public:
  LoggedRecording(StepLog& log, bool fail, bool stale) : log_(log), fail_(fail), stale_(stale) {}
  bool start_pass(int64_t) override {
    ++log_.starts;
    return !stale_ || ++passes_ == 1;  // stale: fits only the pass it was made in
  }
  bool run(int64_t step) override {
    if (fail_) return false;
    log_.steps.push_back("r" + std::to_string(step));
    return true;
  }
  void settle() override { ++log_.settles; }
  std::string failure() const override { return "boom"; }

 private:
  StepLog& log_;
  bool fail_, stale_;
  int passes_ = 0;
};

struct Stand {
  bool fail = false, stale = false, make_none = false;
  std::string note{};
};

// A schedule over `samples` rows at batch 4 with a stand-in recording made after `warmup` steps.
struct ScheduleRun {
  StepLog log;
  std::string printed;
  StepReport report;
};

ScheduleRun run_schedule(int64_t samples, int passes, model::RecordingPlan plan, const Stand& stand = {},
                         const std::string& said_before = "") {
  ScheduleRun run;
  const model::Batches batches({Tensor::zeros({samples, 1})}, {Tensor::zeros({samples, 1})}, 4);
  LoggedWork work(run.log);
  if (!plan.make && plan.never.empty())
    plan.make = [&](std::string& note) -> std::unique_ptr<model::StepRunner> {
      ++run.log.made;
      note = stand.note;
      if (stand.make_none) return nullptr;
      return std::make_unique<LoggedRecording>(run.log, stand.fail, stand.stale);
    };
  ::testing::internal::CaptureStdout();
  {
    model::StepSchedule schedule({.op = "fit", .eagerly = "training eagerly", .unit = "step"}, batches, work,
                                 std::move(plan), true, said_before);
    for (int p = 0; p < passes; ++p) {
      schedule.start_pass();
      for (int64_t s = 0; s < batches.steps(); ++s) schedule.run(s);
      schedule.finish_pass();
    }
    run.report = schedule.report();
  }
  run.printed = ::testing::internal::GetCapturedStdout();
  return run;
}

model::RecordingPlan after(int64_t warmup) { return {.warmup_steps = warmup}; }

}  // namespace

TEST(StepSchedule, WarmsUpThenReplaysFullBatchesAndRunsThePartialOneEagerly) {
  // 5 full batches and a partial one, two passes: the recording is made at the first full batch
  // after two eager ones, and settles before the eager partial batch and at each pass's end.
  const ScheduleRun run = run_schedule(22, 2, after(2));
  EXPECT_EQ(run.log.joined(), "e0 e1 r2 r3 r4 e5 r0 r1 r2 r3 r4 e5");
  EXPECT_EQ(run.log.made, 1);
  EXPECT_EQ(run.log.settles, 4);
  EXPECT_EQ(run.printed, "");
  EXPECT_TRUE(run.report.recorded);
  EXPECT_EQ(run.report.reason, "");
}

TEST(StepSchedule, OnlyFullBatchesWarmUp) {
  // One full batch per pass: the partial batches do not count, so the third pass records.
  const ScheduleRun run = run_schedule(6, 3, after(2));
  EXPECT_EQ(run.log.joined(), "e0 e1 e0 e1 r0 e1");
  EXPECT_TRUE(run.report.recorded);
}

TEST(StepSchedule, ReportsAWarmUpThatLeftNothingToRecord) {
  const ScheduleRun run = run_schedule(8, 1, after(2));
  EXPECT_EQ(run.log.joined(), "e0 e1");
  EXPECT_EQ(run.log.made, 0);
  EXPECT_FALSE(run.report.recorded);
  EXPECT_EQ(run.report.reason, "every full step ran eagerly as warm-up (the recording follows 2 of them)");
  EXPECT_EQ(run.printed, "");
}

TEST(StepSchedule, AFailedRecordingRunsThatStepAndTheRestEagerly) {
  const ScheduleRun run = run_schedule(16, 2, after(1), {.fail = true});
  EXPECT_EQ(run.log.joined(), "e0 e1 e2 e3 e0 e1 e2 e3");
  EXPECT_EQ(run.log.made, 1);  // not tried again
  EXPECT_FALSE(run.report.recorded);
  EXPECT_EQ(run.report.reason, "recording the step failed: boom");
  EXPECT_EQ(run.printed, "fit: training eagerly; recording the step failed: boom\n");
}

TEST(StepSchedule, SaysWhyRecordingIsNotTriedUnlessExpected) {
  const ScheduleRun expected = run_schedule(8, 1, {.never = "cuda_graphs is false", .never_is_expected = true});
  EXPECT_EQ(expected.log.joined(), "e0 e1");
  EXPECT_EQ(expected.printed, "");
  EXPECT_FALSE(expected.report.recorded);
  EXPECT_EQ(expected.report.reason, "cuda_graphs is false");

  const ScheduleRun news = run_schedule(3, 1, {.never = "no full batch to record"});
  EXPECT_EQ(news.printed, "fit: training eagerly; no full batch to record\n");
  EXPECT_EQ(news.report.reason, "no full batch to record");
  // Not again where a previous call already said it.
  EXPECT_EQ(run_schedule(3, 1, {.never = "no full batch to record"}, {}, "no full batch to record").printed, "");
}

TEST(StepSchedule, SaysWhatStaysEagerBesideTheRecording) {
  const ScheduleRun run = run_schedule(12, 1, after(1), {.note = "its update runs eagerly"});
  EXPECT_EQ(run.log.joined(), "e0 r1 r2");
  EXPECT_EQ(run.printed, "fit: its update runs eagerly\n");
  EXPECT_TRUE(run.report.recorded);
  EXPECT_EQ(run.report.reason, "its update runs eagerly");

  const ScheduleRun none = run_schedule(12, 1, after(1), {.make_none = true, .note = "no way"});
  EXPECT_EQ(none.log.joined(), "e0 e1 e2");
  EXPECT_EQ(none.log.made, 1);
  EXPECT_EQ(none.printed, "fit: training eagerly; no way\n");
  EXPECT_FALSE(none.report.recorded);
  EXPECT_EQ(none.report.reason, "no way");
}

TEST(StepSchedule, WarmsUpAgainWhenTheRecordingNoLongerFits) {
  // The stand-in fits only its first pass (as after the model moved): the second pass warms up
  // again and makes another.
  const ScheduleRun run = run_schedule(12, 2, after(1), {.stale = true});
  EXPECT_EQ(run.log.joined(), "e0 r1 r2 e0 r1 r2");
  EXPECT_EQ(run.log.made, 2);
  EXPECT_TRUE(run.report.recorded);
}

TEST(StepSchedule, TellsThePlanWhenWarm) {
  int warmed = 0;
  model::RecordingPlan plan = after(2);
  plan.warmed = [&] { ++warmed; };
  run_schedule(12, 2, plan);
  EXPECT_EQ(warmed, 1);
}

// ---- the model's report ----

namespace {

// The house-price seed: y = 1.5 x + 3.5 on six samples.
std::pair<Tensor, Tensor> house_prices() {
  return {Tensor::from_vector<float>({1, 2, 3, 4, 5, 6}, Shape{6, 1}),
          Tensor::from_vector<float>({5.0f, 6.5f, 8.0f, 9.5f, 11.0f, 12.5f}, Shape{6, 1})};
}

Sequential house_price_model(const Optimizer& optimizer) {
  utils::set_random_seed(1);
  Sequential model({layers::Dense(1, {.input_shape = {1}})});
  model.compile(optimizer, losses::MeanSquaredError());
  return model;
}

// Gradient descent written the way a user writes an optimizer: no device-side update.
class PlainDescent : public Optimizer {
 public:
  explicit PlainDescent(double learning_rate) : learning_rate_(learning_rate) {}
  std::string name() const override { return "plain_descent"; }
  std::string class_name() const override { return "PlainDescent"; }
  Config get_config() const override { return {{"learning_rate", learning_rate_}}; }
  std::vector<std::string> slot_names() const override { return {}; }
  std::unique_ptr<Optimizer> clone() const override { return std::make_unique<PlainDescent>(learning_rate_); }

 protected:
  void update(Tensor& param, const Tensor& grad, std::vector<Tensor>&, int64_t) override {
    param.copy_(param - grad * learning_rate_);
  }

 private:
  double learning_rate_;
};

}  // namespace

TEST(StepReport, SaysWhyACpuModelRanEagerlyWithoutALine) {
  const auto [x, y] = house_prices();
  Sequential model = house_price_model(optimizers::SGD());
  ASSERT_TRUE(model.device().is_cpu());
  ::testing::internal::CaptureStdout();
  model.fit(x, y, {.batch_size = 2, .epochs = 2, .verbose = 2});
  model.evaluate(x, y, {.batch_size = 2, .verbose = 1});
  const std::string printed = ::testing::internal::GetCapturedStdout();
  EXPECT_EQ(printed.find("eagerly"), std::string::npos) << printed;  // the device's nature: no line
  for (const StepReport& report : {model.last_fit_execution(), model.last_evaluate_execution()}) {
    EXPECT_FALSE(report.recorded);
    EXPECT_EQ(report.reason, "the device cpu cannot record work (CUDA graphs need a CUDA device)");
  }
  model.fit(x, y, {.epochs = 1, .verbose = 0, .cuda_graphs = false});
  EXPECT_EQ(model.last_fit_execution().reason, "cuda_graphs is false");
  model.fit(x, y, {.epochs = 0, .verbose = 0});
  EXPECT_EQ(model.last_fit_execution().reason, "the device cpu cannot record work (CUDA graphs need a CUDA device)");
}

TEST(StepReport, EmptyBeforeTheFirstFit) {
  Sequential model = house_price_model(optimizers::SGD());
  EXPECT_FALSE(model.last_fit_execution().recorded);
  EXPECT_EQ(model.last_fit_execution().reason, "");
}

TEST(UserOptimizer, TrainsLikeTheBuiltInOne) {
  // Plain descent is SGD without momentum: the same updates, step by step.
  const auto [x, y] = house_prices();
  Sequential mine = house_price_model(PlainDescent(0.01));
  Sequential builtin = house_price_model(optimizers::SGD({.learning_rate = 0.01}));
  const FitOptions opt{.batch_size = 4, .epochs = 50, .verbose = 0};
  const History h = mine.fit(x, y, opt);
  const History ref = builtin.fit(x, y, opt);
  EXPECT_LT(h.history.at("loss").back(), h.history.at("loss").front());
  EXPECT_EQ(mine.optimizer()->iterations(), 50 * 2);
  const auto w = mine.trainable_weights(), w_ref = builtin.trainable_weights();
  ASSERT_EQ(w.size(), w_ref.size());
  for (std::size_t i = 0; i < w.size(); ++i) {
    const auto a = w[i].to_vector<float>(), b = w_ref[i].to_vector<float>();
    for (std::size_t k = 0; k < a.size(); ++k) EXPECT_NEAR(a[k], b[k], 1e-5) << "weight " << i << "[" << k << "]";
  }
  EXPECT_FALSE(mine.last_fit_execution().recorded);
}

// ---- the equivalence check's pieces, on the CPU ----

namespace {
Sequential stateful_model() {
  Sequential model({layers::Conv2D(8, {3, 3}, {.activation = "relu", .input_shape = {8, 8, 3}}),
                    layers::BatchNormalization(), layers::Flatten(), layers::Dropout(0.25), layers::Dense(10)});
  model.compile(optimizers::Adam(), losses::SparseCategoricalCrossentropy({.from_logits = true}), {"accuracy"});
  return model;
}

std::vector<std::string> names(const std::vector<kiln::testing::WeightBits>& weights) {
  std::vector<std::string> out;
  for (const auto& w : weights) out.push_back(w.name);
  return out;
}
}  // namespace

TEST(StepEquivalence, ComparesEveryWeightTrainableOrNot) {
  const auto trained = [] {
    utils::set_random_seed(7);
    Sequential model = stateful_model();
    const auto [x, y] = kiln::testing::random_data_for(model, 19, 8);
    model.fit(x, y, {.batch_size = 4, .epochs = 2, .verbose = 0});
    return kiln::testing::weight_bits(model);
  };
  const auto [trainable, others] = trained();
  EXPECT_EQ(names(trainable), (std::vector<std::string>{"conv2d/kernel", "conv2d/bias", "batch_normalization/gamma",
                                                        "batch_normalization/beta", "dense/kernel", "dense/bias"}));
  EXPECT_EQ(names(others),
            (std::vector<std::string>{"batch_normalization/moving_mean", "batch_normalization/moving_variance",
                                      "dropout/seed_generator_state"}));
  // The same seed on the same device: the same bits.
  const auto [trainable_again, others_again] = trained();
  kiln::testing::expect_same_bits(trainable, trainable_again);
  kiln::testing::expect_same_bits(others, others_again);
}

// ---- on a GPU: recorded steps against eager ones ----

namespace {

// The seed CIFAR-10 recipe: Conv2D 32 3x3 relu, MaxPool 2, Flatten, Dense 64 relu, Dense 10
// logits; Adam; sparse cross-entropy from logits; accuracy.
Sequential seed_cifar10_model() {
  Sequential model({layers::Conv2D(32, {3, 3}, {.activation = "relu", .input_shape = {32, 32, 3}}),
                    layers::MaxPooling2D({2, 2}), layers::Flatten(), layers::Dense(64, {.activation = "relu"}),
                    layers::Dense(10)});
  model.compile(optimizers::Adam(), losses::SparseCategoricalCrossentropy({.from_logits = true}), {"accuracy"});
  return model;
}

Sequential seed_house_price_model() {
  Sequential model({layers::Dense(1, {.input_shape = {1}})});
  model.compile("sgd", "mean_squared_error");
  return model;
}

}  // namespace

TEST(RecordedStep, SeedCifar10ModelEqualsEager) {
  EXPECT_RECORDED_STEP_EQUALS_EAGER(seed_cifar10_model, {.batch_size = 10, .samples = 63, .epochs = 3});
}

TEST(RecordedStep, SeedHousePriceModelEqualsEager) {
  // Batches of 2 so that there are full batches to record (the seed's own 6 samples at 32 have none).
  EXPECT_RECORDED_STEP_EQUALS_EAGER(seed_house_price_model, {.batch_size = 2, .samples = 7, .epochs = 4});
}

TEST(RecordedStep, SgdWithNesterovMomentumEqualsEager) {
  EXPECT_RECORDED_STEP_EQUALS_EAGER([] {
    Sequential model = seed_cifar10_model();
    model.compile(optimizers::SGD({.learning_rate = 0.05, .momentum = 0.9, .nesterov = true}),
                  losses::SparseCategoricalCrossentropy({.from_logits = true}));
    return model;
  });
}

TEST(RecordedStep, MovingStatisticsAndDropoutMasksEqualEager) {
  // Layers with state that a training step updates in place: BatchNormalization's moving
  // statistics and Dropout's counter (each replay must draw the mask the eager step draws).
  EXPECT_RECORDED_STEP_EQUALS_EAGER(stateful_model);
}

TEST(RecordedStep, UserOptimizerRunsEagerlyAfterEachReplayAndEqualsEager) {
  const auto model_with_own_optimizer = [] {
    Sequential model = seed_cifar10_model();
    model.compile(PlainDescent(0.05), losses::SparseCategoricalCrossentropy({.from_logits = true}), {"accuracy"});
    return model;
  };
  EXPECT_RECORDED_STEP_EQUALS_EAGER(model_with_own_optimizer);
  // Reported, with a line at verbose 1.
  utils::set_random_seed(3);
  Sequential model = model_with_own_optimizer();
  model.to(Device::gpu(0));
  const auto [x, y] = kiln::testing::random_data_for(model, 40, 4);
  ::testing::internal::CaptureStdout();
  model.fit(x, y, {.batch_size = 8, .epochs = 1, .verbose = 1});
  const std::string printed = ::testing::internal::GetCapturedStdout();
  const std::string note =
      "recording forward and backward only: the optimizer PlainDescent has no device-side update, so its update "
      "runs eagerly after each replay";
  EXPECT_NE(printed.find("fit: " + note + "\n"), std::string::npos) << printed;
  EXPECT_TRUE(model.last_fit_execution().recorded);
  EXPECT_EQ(model.last_fit_execution().reason, note);
}

TEST(RecordedStep, SeedHousePriceRunSaysItHasNoFullBatch) {
  REQUIRE_GPU();
  const auto [x, y] = house_prices();
  utils::set_random_seed(1);
  Sequential model = seed_house_price_model();
  model.to(Device::gpu(0));
  ::testing::internal::CaptureStdout();
  model.fit(x, y, {.epochs = 3, .verbose = 2});
  const std::string printed = ::testing::internal::GetCapturedStdout();
  const std::string reason = "no full batch to record (6 samples, batch_size 32)";
  EXPECT_NE(printed.find("fit: training eagerly; " + reason + "\n"), std::string::npos) << printed;
  EXPECT_FALSE(model.last_fit_execution().recorded);
  EXPECT_EQ(model.last_fit_execution().reason, reason);
}

TEST(RecordedStep, GpuReportsCoverFitAndEvaluate) {
  REQUIRE_GPU();
  utils::set_random_seed(2);
  Sequential model = seed_cifar10_model();
  model.to(Device::gpu(0));
  const auto [x, y] = kiln::testing::random_data_for(model, 50, 5);
  model.fit(x, y, {.batch_size = 10, .epochs = 1, .verbose = 0, .validation_data = {{x, y}}});
  EXPECT_TRUE(model.last_fit_execution().recorded) << model.last_fit_execution().reason;
  EXPECT_EQ(model.last_fit_execution().reason, "");
  EXPECT_TRUE(model.last_evaluate_execution().recorded) << model.last_evaluate_execution().reason;
  model.fit(x, y, {.batch_size = 10, .epochs = 1, .verbose = 0, .check_numerics = true});
  EXPECT_FALSE(model.last_fit_execution().recorded);
  EXPECT_EQ(model.last_fit_execution().reason, "check_numerics reads every layer's output back at every step");
}
