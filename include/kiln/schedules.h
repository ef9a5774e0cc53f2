/// Keras' learning-rate schedules: the learning rate as a function of the optimizer's iteration
/// count (0 for the first update), registered by class name with get_config/from_config so that a
/// saved model keeps its schedule.
#pragma once

#include <concepts>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "kiln/registry.h"

namespace kiln {

/// Base of every schedule: the learning rate at an iteration. Schedules are immutable, so an
/// optimizer and its clones share one.
class LearningRateSchedule {
 public:
  virtual ~LearningRateSchedule() = default;
  /// The learning rate of the update made when the optimizer has counted `step` iterations
  /// (Keras calls the schedule with `optimizer.iterations` before the update).
  virtual double operator()(int64_t step) const = 0;
  /// Keras' class name, e.g. "CosineDecay"; also the name it is registered under.
  virtual std::string class_name() const = 0;
  /// Constructor arguments (Keras' get_config); throws kiln::Error where the schedule cannot be
  /// written down (a C++ function).
  virtual Config get_config() const = 0;
};

/// The table of schedule classes, by class name.
Registry<std::shared_ptr<const LearningRateSchedule>>& schedule_registry();

/// Registers schedule class S under `class_name` while this object is constructed; S needs
/// `static S from_config(const Config&)`.
template <typename S>
struct RegisterSchedule {
  /// Registers S.
  explicit RegisterSchedule(const std::string& class_name) {
    schedule_registry().add(class_name, [](const Config& config) -> std::shared_ptr<const LearningRateSchedule> {
      return std::make_shared<S>(S::from_config(config));
    });
  }
};

namespace schedules {

/// Options of ExponentialDecay (no defaults in Keras but staircase = false).
struct ExponentialDecayOptions {
  double initial_learning_rate = 0.0;  ///< the rate at step 0
  int64_t decay_steps = 0;             ///< steps per factor of decay_rate; > 0
  double decay_rate = 0.0;             ///< factor per decay_steps
  bool staircase = false;              ///< decay in whole periods (floor(step / decay_steps))
};

/// initial_learning_rate * decay_rate ^ (step / decay_steps); the exponent floored when staircase.
class ExponentialDecay : public LearningRateSchedule {
 public:
  /// The schedule with `options`; throws when decay_steps <= 0.
  explicit ExponentialDecay(ExponentialDecayOptions options);
  double operator()(int64_t step) const override;
  std::string class_name() const override { return "ExponentialDecay"; }
  Config get_config() const override;
  /// Rebuilds from get_config().
  static ExponentialDecay from_config(const Config& config);
  /// The options it was made with.
  const ExponentialDecayOptions& options() const { return options_; }

 private:
  ExponentialDecayOptions options_;
};

/// values[0] while step <= boundaries[0], values[i] while boundaries[i-1] < step <= boundaries[i],
/// and values.back() after the last boundary.
class PiecewiseConstantDecay : public LearningRateSchedule {
 public:
  /// The schedule; throws unless values has one more entry than boundaries and the boundaries
  /// increase.
  PiecewiseConstantDecay(std::vector<int64_t> boundaries, std::vector<double> values);
  double operator()(int64_t step) const override;
  std::string class_name() const override { return "PiecewiseConstantDecay"; }
  Config get_config() const override;
  /// Rebuilds from get_config().
  static PiecewiseConstantDecay from_config(const Config& config);
  /// The step boundaries.
  const std::vector<int64_t>& boundaries() const { return boundaries_; }
  /// The learning rates between the boundaries.
  const std::vector<double>& values() const { return values_; }

 private:
  std::vector<int64_t> boundaries_;
  std::vector<double> values_;
};

/// Options of CosineDecay, with Keras' defaults.
struct CosineDecayOptions {
  double initial_learning_rate = 0.0;                  ///< the rate at step 0 (the start of the warm-up)
  int64_t decay_steps = 0;                             ///< steps of the cosine decay; > 0
  double alpha = 0.0;                                  ///< the final rate as a fraction of the decayed-from rate
  std::optional<double> warmup_target = std::nullopt;  ///< the rate the warm-up reaches; none: no warm-up
  int64_t warmup_steps = 0;                            ///< steps of the linear warm-up
};

/// Keras 3's CosineDecay: with a warmup_target, a linear warm-up from initial_learning_rate to
/// warmup_target over warmup_steps, then the cosine decay from warmup_target; the decay itself is
/// lr0 * ((1 - alpha) * 0.5 * (1 + cos(pi * min(s, decay_steps) / decay_steps)) + alpha).
class CosineDecay : public LearningRateSchedule {
 public:
  /// The schedule with `options`; throws when decay_steps <= 0 or warmup_steps < 0.
  explicit CosineDecay(CosineDecayOptions options);
  double operator()(int64_t step) const override;
  std::string class_name() const override { return "CosineDecay"; }
  Config get_config() const override;
  /// Rebuilds from get_config().
  static CosineDecay from_config(const Config& config);
  /// The options it was made with.
  const CosineDecayOptions& options() const { return options_; }

 private:
  CosineDecayOptions options_;
};

/// Options of PolynomialDecay, with Keras' defaults.
struct PolynomialDecayOptions {
  double initial_learning_rate = 0.0;  ///< the rate at step 0
  int64_t decay_steps = 0;             ///< steps to reach end_learning_rate; > 0
  double end_learning_rate = 0.0001;   ///< the rate after decay_steps
  double power = 1.0;                  ///< exponent of the polynomial
  bool cycle = false;                  ///< restart with decay_steps * ceil(step / decay_steps)
};

/// (initial - end) * (1 - s / d) ^ power + end, with s = min(step, decay_steps) and d =
/// decay_steps, or, when cycle, s = step and d = decay_steps * ceil(step / decay_steps) (1 at 0).
class PolynomialDecay : public LearningRateSchedule {
 public:
  /// The schedule with `options`; throws when decay_steps <= 0.
  explicit PolynomialDecay(PolynomialDecayOptions options);
  double operator()(int64_t step) const override;
  std::string class_name() const override { return "PolynomialDecay"; }
  Config get_config() const override;
  /// Rebuilds from get_config().
  static PolynomialDecay from_config(const Config& config);
  /// The options it was made with.
  const PolynomialDecayOptions& options() const { return options_; }

 private:
  PolynomialDecayOptions options_;
};

/// A learning rate given as a C++ function of the step (Keras accepts any callable). It cannot be
/// saved: get_config() throws, so saving a model that uses one says so.
class FunctionSchedule : public LearningRateSchedule {
 public:
  /// The schedule `fn`; throws when `fn` is empty.
  explicit FunctionSchedule(std::function<double(int64_t)> fn);
  double operator()(int64_t step) const override { return fn_(step); }
  std::string class_name() const override { return "FunctionSchedule"; }
  /// Throws: a C++ function cannot be written to a config.
  Config get_config() const override;

 private:
  std::function<double(int64_t)> fn_;
};

}  // namespace schedules

/// An optimizer's learning rate: a fixed number (settable between epochs, as Keras' learning-rate
/// variable) or a schedule of the iteration count. Converts from a number, a schedule object or a
/// function of the step, so `{.learning_rate = 0.01}` and `{.learning_rate =
/// schedules::CosineDecay({...})}` both work.
class LearningRate {
 public:
  /// A fixed learning rate.
  LearningRate(double value) : value_(value) {}  // NOLINT(google-explicit-constructor)
  /// A shared schedule; throws when null.
  LearningRate(std::shared_ptr<const LearningRateSchedule> schedule);  // NOLINT(google-explicit-constructor)
  /// A copy of `schedule`.
  template <typename S>
  requires std::derived_from<S, LearningRateSchedule> LearningRate(
      const S& schedule)  // NOLINT(google-explicit-constructor)
      : schedule_(std::make_shared<S>(schedule)) {}
  /// A function of the step (a schedules::FunctionSchedule, which cannot be saved).
  LearningRate(std::function<double(int64_t)> fn);  // NOLINT(google-explicit-constructor)

  /// Whether this is a schedule rather than a fixed number.
  bool is_schedule() const { return schedule_ != nullptr; }
  /// The schedule, or nullptr for a fixed number.
  const LearningRateSchedule* schedule() const { return schedule_.get(); }
  /// The learning rate of the update made after `iterations` updates.
  double at(int64_t iterations) const { return schedule_ ? (*schedule_)(iterations) : value_; }
  /// Keras' config value: the number, or {"class_name": ..., "config": ...} of the schedule.
  Config to_config() const;
  /// Reads to_config()'s value; `where` names it in errors.
  static LearningRate from_config(const Config& value, const std::string& where);
  /// Whether this is the fixed number `value`.
  bool operator==(double value) const { return !schedule_ && value_ == value; }

 private:
  double value_ = 0.0;
  std::shared_ptr<const LearningRateSchedule> schedule_;
};

}  // namespace kiln
