/// Keras' weight regularizers: a penalty on a weight that fit adds to the loss.
#pragma once

#include <memory>
#include <string>

#include "kiln/registry.h"
#include "kiln/tensor.h"

namespace kiln {

/// Base of every regularizer.
class Regularizer {
 public:
  virtual ~Regularizer() = default;
  /// Keras' class name, e.g. "L2"; also the name it is registered under.
  virtual std::string class_name() const = 0;
  /// Constructor arguments (Keras' get_config).
  virtual Config get_config() const { return Config::object(); }
  /// The penalty of weight `w`, a one-element tensor that tracks gradients.
  virtual Tensor operator()(const Tensor& w) const = 0;
};

/// The table of regularizer classes by class name.
Registry<std::shared_ptr<const Regularizer>>& regularizer_registry();

/// Registers regularizer class R under `class_name`; R needs `static R from_config(const Config&)`.
template <typename R>
struct RegisterRegularizer {
  /// Registers R.
  explicit RegisterRegularizer(const std::string& class_name) {
    regularizer_registry().add(class_name, [](const Config& config) -> std::shared_ptr<const Regularizer> {
      return std::make_shared<R>(R::from_config(config));
    });
  }
};

namespace regularizers {

/// factor * sum(w^2) (Keras' L2; default factor 0.01).
class L2 : public Regularizer {
 public:
  /// The penalty factor * sum(w^2); factor must be finite and >= 0.
  explicit L2(double l2 = 0.01);
  std::string class_name() const override { return "L2"; }
  Config get_config() const override { return {{"l2", l2_}}; }
  Tensor operator()(const Tensor& w) const override;
  /// Rebuilds from get_config().
  static L2 from_config(const Config& config);
  /// The factor.
  double l2() const { return l2_; }

 private:
  double l2_;
};

/// An L2 regularizer to put in a layer's options: `.kernel_regularizer = kiln::regularizers::l2(1e-4)`.
std::shared_ptr<const Regularizer> l2(double factor = 0.01);

}  // namespace regularizers
}  // namespace kiln
