// The CPU's optimizer_update, whose common rules run loops with their switches fixed at compile time,
// against the per-element formula with every switch read at run time (backend/optimizer_math.h's
// update_element on RuleConstants), bit for bit: each rule kind, momentum and nesterov, weight decay,
// clipping, the moving average, a learning-rate multiplier, a tensor without a gradient, both float
// types.
#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "backend/optimizer_math.h"
#include "kiln/kiln.h"

namespace {

using kiln::backend::ClipKind;
using kiln::backend::cpu;
using kiln::backend::UpdateKind;
using kiln::backend::UpdateRule;
using kiln::backend::UpdateTensor;

UpdateRule rule(UpdateKind kind, double momentum = 0.0, bool nesterov = false) {
  UpdateRule r;
  r.kind = kind;
  r.momentum = momentum;
  r.nesterov = nesterov;
  return r;
}

std::string describe(const UpdateRule& r) {
  return "kind " + std::to_string(static_cast<int>(r.kind)) + " momentum " + std::to_string(r.momentum) +
         (r.nesterov ? " nesterov" : "") + (r.weight_decay ? " decay" : "") + " clip " +
         std::to_string(static_cast<int>(r.clip)) + (r.centered ? " centered" : "");
}

// The tensors' values: weights, gradient, three slots, the average, the direction. The first two
// slots are positive (the velocities and Adagrad's accumulator are) and the third small (RMSprop's
// average gradient, whose square is taken from the velocity), so that no value is a NaN: NaNs would
// compare unequal, however equal the bits.
template <typename T>
struct Values {
  std::vector<T> w, g, slot[3], average, direction;
};

template <typename T>
Values<T> random_values(int64_t n, std::mt19937& rng) {
  std::uniform_real_distribution<double> signed_value(-1.0, 1.0), positive(0.01, 1.0);
  Values<T> v;
  const auto fill = [&](std::vector<T>& out, bool is_positive) {
    out.resize(static_cast<std::size_t>(n));
    for (T& x : out) x = static_cast<T>(is_positive ? positive(rng) : signed_value(rng));
  };
  fill(v.w, false);
  fill(v.g, false);
  fill(v.slot[0], true);
  fill(v.slot[1], true);
  fill(v.slot[2], false);
  for (T& x : v.slot[2]) x = x / T(20);
  fill(v.average, false);
  fill(v.direction, false);
  return v;
}

template <typename T>
UpdateTensor tensor_of(Values<T>& v, bool with_gradient, bool with_average) {
  UpdateTensor t;
  t.w = v.w.data();
  t.g = with_gradient ? v.g.data() : nullptr;
  for (int k = 0; k < 3; ++k) t.slot[k] = v.slot[k].data();
  t.direction = v.direction.data();
  t.average = with_average ? v.average.data() : nullptr;
  t.n = static_cast<int64_t>(v.w.size());
  t.lr_scale = 0.5;
  return t;
}

template <typename T>
void expect_update_matches_the_formula(kiln::DType dtype) {
  std::vector<UpdateRule> rules = {
      rule(UpdateKind::Sgd),  rule(UpdateKind::Sgd, 0.9),     rule(UpdateKind::Sgd, 0.9, true),
      rule(UpdateKind::Adam), rule(UpdateKind::Rmsprop, 0.5), rule(UpdateKind::Adagrad),
      rule(UpdateKind::Muon)};
  for (std::size_t k = 0, n = rules.size(); k < n; ++k) {  // each with weight decay too
    UpdateRule decayed = rules[k];
    decayed.weight_decay = true;
    decayed.weight_decay_rate = 0.004;
    rules.push_back(decayed);
  }
  UpdateRule clipped = rule(UpdateKind::Adam);
  clipped.clip = ClipKind::Value;
  clipped.clip_value = 0.5;
  rules.push_back(clipped);
  UpdateRule centered = rule(UpdateKind::Rmsprop);
  centered.centered = true;
  rules.push_back(centered);

  // learning rate, Adam's alpha, EMA momentum, overwrite with the average
  const double step[kiln::backend::kStepValues] = {0.03, 0.02, 0.99, 0.0};
  std::mt19937 rng(31);
  const int64_t n = 1003;  // not a multiple of any vector width
  for (const UpdateRule& r : rules)
    for (const bool with_average : {false, true})
      for (const bool with_gradient : {true, false}) {
        SCOPED_TRACE(describe(r) + (with_average ? " average" : "") + (with_gradient ? "" : " no gradient"));
        Values<T> got = random_values<T>(n, rng);
        Values<T> want = got;
        UpdateTensor got_tensor = tensor_of(got, with_gradient, with_average);
        cpu().optimizer_update(dtype, r, &got_tensor, 1, nullptr, nullptr, nullptr, step, nullptr);
        const UpdateTensor want_tensor = tensor_of(want, with_gradient, with_average);
        const auto constants = kiln::backend::math::constants_of<T>(r);
        const auto s = kiln::backend::math::step_of<T>(step);
        for (int64_t i = 0; i < n; ++i) kiln::backend::math::update_element(constants, s, T(1), want_tensor, i);
        EXPECT_EQ(got.w, want.w) << "weights";
        for (int k = 0; k < 3; ++k) EXPECT_EQ(got.slot[k], want.slot[k]) << "slot " << k;
        EXPECT_EQ(got.average, want.average) << "average";
      }
}

}  // namespace

TEST(CpuOptimizerUpdate, EveryRuleEqualsTheElementFormulaBitForBitInFloat32) {
  expect_update_matches_the_formula<float>(kiln::DType::Float32);
}

TEST(CpuOptimizerUpdate, EveryRuleEqualsTheElementFormulaBitForBitInFloat64) {
  expect_update_matches_the_formula<double>(kiln::DType::Float64);
}
