// Learning-rate schedules in Keras' formulas (evaluated in double; the optimizer rounds the rate to
// the variable's dtype), their configs and registration, and LearningRate's number-or-schedule.
#include "kiln/schedules.h"

#include <algorithm>
#include <cmath>
#include <numbers>

#include "io/json_fields.h"
#include "kiln/error.h"

namespace kiln {

namespace schedules {

namespace {

void check_decay_steps(const std::string& op, int64_t decay_steps) {
  if (decay_steps <= 0)
    throw Error(op, "decay_steps is " + std::to_string(decay_steps) + "; expected a positive number of steps");
}

void check_finite(const std::string& op, const char* option, double value) {
  if (!std::isfinite(value))
    throw Error(op, std::string(option) + " is " + std::to_string(value) + "; expected a finite number");
}

double number_or(const io::JsonFields& f, const std::string& key, double fallback) {
  return f.has(key) ? f.number(key) : fallback;
}

int64_t steps_field(const io::JsonFields& f, const std::string& key, int64_t fallback) {
  return f.has(key) ? f.integer(key, 0, INT64_MAX) : fallback;
}

}  // namespace

ExponentialDecay::ExponentialDecay(ExponentialDecayOptions options) : options_(options) {
  check_decay_steps("ExponentialDecay", options.decay_steps);
  check_finite("ExponentialDecay", "initial_learning_rate", options.initial_learning_rate);
  check_finite("ExponentialDecay", "decay_rate", options.decay_rate);
}

double ExponentialDecay::operator()(int64_t step) const {
  double p = static_cast<double>(step) / static_cast<double>(options_.decay_steps);
  if (options_.staircase) p = std::floor(p);
  return options_.initial_learning_rate * std::pow(options_.decay_rate, p);
}

Config ExponentialDecay::get_config() const {
  return {{"initial_learning_rate", options_.initial_learning_rate},
          {"decay_steps", options_.decay_steps},
          {"decay_rate", options_.decay_rate},
          {"staircase", options_.staircase}};
}

ExponentialDecay ExponentialDecay::from_config(const Config& config) {
  const io::JsonFields f(config, "the ExponentialDecay config", "from_config");
  return ExponentialDecay({.initial_learning_rate = f.number("initial_learning_rate"),
                           .decay_steps = f.integer("decay_steps", 1, INT64_MAX),
                           .decay_rate = f.number("decay_rate"),
                           .staircase = f.has("staircase") ? f.boolean("staircase") : false});
}

PiecewiseConstantDecay::PiecewiseConstantDecay(std::vector<int64_t> boundaries, std::vector<double> values)
    : boundaries_(std::move(boundaries)), values_(std::move(values)) {
  if (boundaries_.size() + 1 != values_.size())
    throw Error("PiecewiseConstantDecay", "got " + std::to_string(boundaries_.size()) + " boundaries and " +
                                              std::to_string(values_.size()) +
                                              " values; expected one more value than boundaries");
  for (std::size_t i = 1; i < boundaries_.size(); ++i)
    if (boundaries_[i] <= boundaries_[i - 1])
      throw Error("PiecewiseConstantDecay", "boundaries must increase; boundary " + std::to_string(i) + " is " +
                                                std::to_string(boundaries_[i]) + " after " +
                                                std::to_string(boundaries_[i - 1]));
  for (double v : values_) check_finite("PiecewiseConstantDecay", "a value", v);
}

double PiecewiseConstantDecay::operator()(int64_t step) const {
  // The first boundary not below the step: values_[i] covers (boundaries[i-1], boundaries[i]].
  const auto it = std::lower_bound(boundaries_.begin(), boundaries_.end(), step);
  return values_[static_cast<std::size_t>(it - boundaries_.begin())];
}

Config PiecewiseConstantDecay::get_config() const { return {{"boundaries", boundaries_}, {"values", values_}}; }

PiecewiseConstantDecay PiecewiseConstantDecay::from_config(const Config& config) {
  const io::JsonFields f(config, "the PiecewiseConstantDecay config", "from_config");
  const Config& b = f.at("boundaries");
  const Config& v = f.at("values");
  if (!b.is_array() || !v.is_array()) f.fail("\"boundaries\" and \"values\" must be lists; expected two lists");
  std::vector<int64_t> boundaries;
  std::vector<double> values;
  for (const auto& x : b) {
    if (!x.is_number_integer()) f.fail("a boundary is " + x.dump() + "; expected an integer step");
    boundaries.push_back(x.get<int64_t>());
  }
  for (const auto& x : v) {
    if (!x.is_number()) f.fail("a value is " + x.dump() + "; expected a number");
    values.push_back(x.get<double>());
  }
  return PiecewiseConstantDecay(std::move(boundaries), std::move(values));
}

CosineDecay::CosineDecay(CosineDecayOptions options) : options_(options) {
  check_decay_steps("CosineDecay", options.decay_steps);
  check_finite("CosineDecay", "initial_learning_rate", options.initial_learning_rate);
  check_finite("CosineDecay", "alpha", options.alpha);
  if (options.warmup_target) check_finite("CosineDecay", "warmup_target", *options.warmup_target);
  if (options.warmup_steps < 0)
    throw Error("CosineDecay",
                "warmup_steps is " + std::to_string(options.warmup_steps) + "; expected a number of steps >= 0");
}

double CosineDecay::operator()(int64_t step) const {
  const auto& o = options_;
  const double decay_steps = static_cast<double>(o.decay_steps);
  auto decay = [&](double s, double from) {
    const double cosine = 0.5 * (1.0 + std::cos(std::numbers::pi * (s / decay_steps)));
    return from * ((1.0 - o.alpha) * cosine + o.alpha);
  };
  double s = static_cast<double>(step);
  if (!o.warmup_target) return decay(std::min(s, decay_steps), o.initial_learning_rate);
  const double warmup_steps = static_cast<double>(o.warmup_steps);
  s = std::min(s, decay_steps + warmup_steps);
  if (s < warmup_steps)
    return (*o.warmup_target - o.initial_learning_rate) * (s / warmup_steps) + o.initial_learning_rate;
  return decay(s - warmup_steps, *o.warmup_target);
}

Config CosineDecay::get_config() const {
  return {{"initial_learning_rate", options_.initial_learning_rate},
          {"decay_steps", options_.decay_steps},
          {"alpha", options_.alpha},
          {"warmup_target", options_.warmup_target ? Config(*options_.warmup_target) : Config(nullptr)},
          {"warmup_steps", options_.warmup_steps}};
}

CosineDecay CosineDecay::from_config(const Config& config) {
  const io::JsonFields f(config, "the CosineDecay config", "from_config");
  const CosineDecayOptions d;
  return CosineDecay(
      {.initial_learning_rate = f.number("initial_learning_rate"),
       .decay_steps = f.integer("decay_steps", 1, INT64_MAX),
       .alpha = number_or(f, "alpha", d.alpha),
       .warmup_target = f.has("warmup_target") ? std::optional<double>(f.number("warmup_target")) : std::nullopt,
       .warmup_steps = steps_field(f, "warmup_steps", d.warmup_steps)});
}

PolynomialDecay::PolynomialDecay(PolynomialDecayOptions options) : options_(options) {
  check_decay_steps("PolynomialDecay", options.decay_steps);
  check_finite("PolynomialDecay", "initial_learning_rate", options.initial_learning_rate);
  check_finite("PolynomialDecay", "end_learning_rate", options.end_learning_rate);
  check_finite("PolynomialDecay", "power", options.power);
}

double PolynomialDecay::operator()(int64_t step) const {
  const auto& o = options_;
  double s = static_cast<double>(step);
  double d = static_cast<double>(o.decay_steps);
  if (o.cycle)
    d *= s == 0 ? 1.0 : std::ceil(s / d);
  else
    s = std::min(s, d);
  return (o.initial_learning_rate - o.end_learning_rate) * std::pow(1.0 - s / d, o.power) + o.end_learning_rate;
}

Config PolynomialDecay::get_config() const {
  return {{"initial_learning_rate", options_.initial_learning_rate},
          {"decay_steps", options_.decay_steps},
          {"end_learning_rate", options_.end_learning_rate},
          {"power", options_.power},
          {"cycle", options_.cycle}};
}

PolynomialDecay PolynomialDecay::from_config(const Config& config) {
  const io::JsonFields f(config, "the PolynomialDecay config", "from_config");
  const PolynomialDecayOptions d;
  return PolynomialDecay({.initial_learning_rate = f.number("initial_learning_rate"),
                          .decay_steps = f.integer("decay_steps", 1, INT64_MAX),
                          .end_learning_rate = number_or(f, "end_learning_rate", d.end_learning_rate),
                          .power = number_or(f, "power", d.power),
                          .cycle = f.has("cycle") ? f.boolean("cycle") : d.cycle});
}

FunctionSchedule::FunctionSchedule(std::function<double(int64_t)> fn) : fn_(std::move(fn)) {
  if (!fn_) throw Error("FunctionSchedule", "the function is empty; expected a function of the step");
}

Config FunctionSchedule::get_config() const {
  throw Error("save",
              "the learning rate is a C++ function of the step, which cannot be saved; expected a number or a "
              "registered schedule (ExponentialDecay, PiecewiseConstantDecay, CosineDecay, PolynomialDecay or "
              "one registered with RegisterSchedule)");
}

namespace {
const RegisterSchedule<ExponentialDecay> exponential_registered("ExponentialDecay");
const RegisterSchedule<PiecewiseConstantDecay> piecewise_registered("PiecewiseConstantDecay");
const RegisterSchedule<CosineDecay> cosine_registered("CosineDecay");
const RegisterSchedule<PolynomialDecay> polynomial_registered("PolynomialDecay");
}  // namespace

}  // namespace schedules

Registry<std::shared_ptr<const LearningRateSchedule>>& schedule_registry() {
  static Registry<std::shared_ptr<const LearningRateSchedule>> registry("learning-rate schedule");
  return registry;
}

LearningRate::LearningRate(std::shared_ptr<const LearningRateSchedule> schedule) : schedule_(std::move(schedule)) {
  if (!schedule_) throw Error("LearningRate", "the schedule is null; expected a schedule or a number");
}

LearningRate::LearningRate(std::function<double(int64_t)> fn)
    : schedule_(std::make_shared<schedules::FunctionSchedule>(std::move(fn))) {}

Config LearningRate::to_config() const {
  if (!schedule_) return value_;
  return {{"class_name", schedule_->class_name()}, {"config", schedule_->get_config()}};
}

LearningRate LearningRate::from_config(const Config& value, const std::string& where) {
  if (value.is_number()) return value.get<double>();
  const io::JsonFields f(value, where, "from_config");
  const std::string class_name = f.string("class_name");
  return schedule_registry().make(class_name, f.has("config") ? f.at("config") : Config::object());
}

}  // namespace kiln
