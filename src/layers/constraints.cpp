// Keras' weight constraints (MaxNorm, UnitNorm, NonNeg) and the constraint registry. A norm over
// any set of axes: the axes are moved to the front, the weight seen as [reduced, kept] and its
// column norms computed with one sum over rows.
#include "kiln/constraints.h"

#include <algorithm>
#include <cmath>

#include "io/json_fields.h"
#include "kiln/autograd.h"
#include "kiln/error.h"
#include "kiln/ops.h"

namespace kiln {

Registry<std::shared_ptr<const Constraint>>& constraint_registry() {
  static Registry<std::shared_ptr<const Constraint>> registry("constraint");
  return registry;
}

namespace constraints {

namespace {

constexpr double kEpsilon = 1e-7;  // Keras' backend.epsilon()

void check_axes(const std::string& op, const std::vector<int64_t>& axis) {
  if (axis.empty()) throw Error(op, "axis is empty; expected at least one axis");
  for (std::size_t i = 0; i < axis.size(); ++i) {
    if (axis[i] < 0) throw Error(op, "axis " + std::to_string(axis[i]) + " is negative; expected axes >= 0");
    for (std::size_t j = 0; j < i; ++j)
      if (axis[j] == axis[i]) throw Error(op, "axis " + std::to_string(axis[i]) + " is listed twice");
  }
}

// w with each slice over `axis` multiplied by factor(norm of the slice), norm = sqrt(sum(w^2)).
template <typename Factor>
Tensor scale_slices(const std::string& op, const Tensor& w, const std::vector<int64_t>& axis, Factor factor) {
  NoGradGuard no_grad;
  const int64_t rank = w.ndim();
  for (int64_t a : axis)
    if (a >= rank)
      throw Error(op, "axis " + std::to_string(a) + " is out of range for a weight of shape " + w.shape().str());
  std::vector<int64_t> order = axis;
  for (int64_t d = 0; d < rank; ++d)
    if (std::find(axis.begin(), axis.end(), d) == axis.end()) order.push_back(d);
  int64_t reduced = 1;
  for (int64_t a : axis) reduced *= w.size(a);
  const bool moved = !std::is_sorted(order.begin(), order.end());  // sorted: already in place
  const Tensor front = moved ? permute(w, order) : w;
  const Tensor matrix = reshape(front, Shape{reduced, w.numel() / reduced});
  const Tensor norms = sqrt(sum(square(matrix), 0));
  Tensor scaled = reshape(mul(matrix, factor(norms)), front.shape());
  if (!moved) return scaled;
  std::vector<int64_t> back(static_cast<std::size_t>(rank));
  for (int64_t i = 0; i < rank; ++i) back[static_cast<std::size_t>(order[static_cast<std::size_t>(i)])] = i;
  return permute(scaled, back);
}

std::vector<int64_t> axis_field(const io::JsonFields& f) {
  if (!f.has("axis")) return {0};
  const Config& a = f.at("axis");
  if (a.is_number_integer()) return {a.get<int64_t>()};
  std::vector<int64_t> axes;
  if (!a.is_array()) f.fail("\"axis\" is " + a.dump() + "; expected an integer or a list of integers");
  for (const Config& x : a) {
    if (!x.is_number_integer()) f.fail("\"axis\" holds " + x.dump() + "; expected integers");
    axes.push_back(x.get<int64_t>());
  }
  return axes;
}

Config axis_config(const std::vector<int64_t>& axis) { return axis.size() == 1 ? Config(axis[0]) : Config(axis); }

}  // namespace

MaxNorm::MaxNorm(double max_value, std::vector<int64_t> axis) : max_value_(max_value), axis_(std::move(axis)) {
  if (!(std::isfinite(max_value) && max_value > 0))
    throw Error("MaxNorm", "max_value is " + std::to_string(max_value) + "; expected a finite number > 0");
  check_axes("MaxNorm", axis_);
}

Config MaxNorm::get_config() const { return {{"max_value", max_value_}, {"axis", axis_config(axis_)}}; }

Tensor MaxNorm::operator()(const Tensor& w) const {
  return scale_slices("MaxNorm", w, axis_,
                      [&](const Tensor& n) { return div(clip(n, 0.0, max_value_), add(n, kEpsilon)); });
}

MaxNorm MaxNorm::from_config(const Config& config) {
  const io::JsonFields f(config, "the MaxNorm config", "from_config");
  return MaxNorm(f.has("max_value") ? f.number("max_value") : 2.0, axis_field(f));
}

UnitNorm::UnitNorm(std::vector<int64_t> axis) : axis_(std::move(axis)) { check_axes("UnitNorm", axis_); }

Config UnitNorm::get_config() const { return {{"axis", axis_config(axis_)}}; }

Tensor UnitNorm::operator()(const Tensor& w) const {
  return scale_slices("UnitNorm", w, axis_, [](const Tensor& n) {
    const Tensor ones = Tensor::full(n.shape(), 1.0, n.dtype(), n.device());
    return div(ones, add(n, kEpsilon));
  });
}

UnitNorm UnitNorm::from_config(const Config& config) {
  return UnitNorm(axis_field(io::JsonFields(config, "the UnitNorm config", "from_config")));
}

Tensor NonNeg::operator()(const Tensor& w) const {
  NoGradGuard no_grad;
  return relu(w);
}

NonNeg NonNeg::from_config(const Config& config) {
  (void)io::JsonFields(config, "the NonNeg config", "from_config");
  return {};
}

std::shared_ptr<const Constraint> max_norm(double max_value, std::vector<int64_t> axis) {
  return std::make_shared<MaxNorm>(max_value, std::move(axis));
}
std::shared_ptr<const Constraint> unit_norm(std::vector<int64_t> axis) {
  return std::make_shared<UnitNorm>(std::move(axis));
}
std::shared_ptr<const Constraint> non_neg() { return std::make_shared<NonNeg>(); }

namespace {
const RegisterConstraint<MaxNorm> max_norm_registered("MaxNorm");
const RegisterConstraint<UnitNorm> unit_norm_registered("UnitNorm");
const RegisterConstraint<NonNeg> non_neg_registered("NonNeg");
}  // namespace

}  // namespace constraints
}  // namespace kiln
