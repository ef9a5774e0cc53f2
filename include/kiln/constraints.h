/// Keras' weight constraints: a projection applied to a weight after each optimizer update
/// (`kernel_constraint`, `bias_constraint` of Dense and Conv2D), e.g. unit-norm filters.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "kiln/registry.h"
#include "kiln/tensor.h"

namespace kiln {

/// Base of every constraint.
class Constraint {
 public:
  virtual ~Constraint() = default;
  /// Keras' class name, e.g. "UnitNorm"; also the name it is registered under.
  virtual std::string class_name() const = 0;
  /// Constructor arguments (Keras' get_config).
  virtual Config get_config() const { return Config::object(); }
  /// The projected weight (same shape and dtype as `w`, on its device; not differentiated).
  virtual Tensor operator()(const Tensor& w) const = 0;
};

/// The table of constraint classes by class name.
Registry<std::shared_ptr<const Constraint>>& constraint_registry();

/// Registers constraint class C under `class_name`; C needs `static C from_config(const Config&)`.
template <typename C>
struct RegisterConstraint {
  /// Registers C.
  explicit RegisterConstraint(const std::string& class_name) {
    constraint_registry().add(class_name, [](const Config& config) -> std::shared_ptr<const Constraint> {
      return std::make_shared<C>(C::from_config(config));
    });
  }
};

namespace constraints {

/// Each slice's L2 norm over `axis` (Keras' axis: an int or a list) clipped to at most max_value:
/// w * clip(n, 0, max_value) / (1e-7 + n) (Keras' MaxNorm; defaults 2 and axis 0).
class MaxNorm : public Constraint {
 public:
  /// The constraint; throws unless max_value is finite and > 0 and the axes are distinct and >= 0.
  explicit MaxNorm(double max_value = 2.0, std::vector<int64_t> axis = {0});
  std::string class_name() const override { return "MaxNorm"; }
  Config get_config() const override;
  Tensor operator()(const Tensor& w) const override;
  /// Rebuilds from get_config().
  static MaxNorm from_config(const Config& config);

 private:
  double max_value_;
  std::vector<int64_t> axis_;
};

/// Each slice's L2 norm over `axis` made 1: w / (1e-7 + n) (Keras' UnitNorm; default axis 0). For a
/// Conv2D kernel [kh, kw, in, out], axis {0, 1, 2} gives every filter unit norm.
class UnitNorm : public Constraint {
 public:
  /// The constraint; throws unless the axes are distinct and >= 0.
  explicit UnitNorm(std::vector<int64_t> axis = {0});
  std::string class_name() const override { return "UnitNorm"; }
  Config get_config() const override;
  Tensor operator()(const Tensor& w) const override;
  /// Rebuilds from get_config().
  static UnitNorm from_config(const Config& config);

 private:
  std::vector<int64_t> axis_;
};

/// Negative entries set to 0 (Keras' NonNeg).
class NonNeg : public Constraint {
 public:
  std::string class_name() const override { return "NonNeg"; }
  Tensor operator()(const Tensor& w) const override;
  /// Rebuilds from get_config().
  static NonNeg from_config(const Config& config);
};

/// A MaxNorm to put in a layer's options: `.kernel_constraint = kiln::constraints::max_norm(3)`.
std::shared_ptr<const Constraint> max_norm(double max_value = 2.0, std::vector<int64_t> axis = {0});
/// A UnitNorm to put in a layer's options: `.kernel_constraint = kiln::constraints::unit_norm({0, 1, 2})`.
std::shared_ptr<const Constraint> unit_norm(std::vector<int64_t> axis = {0});
/// A NonNeg to put in a layer's options.
std::shared_ptr<const Constraint> non_neg();

}  // namespace constraints
}  // namespace kiln
