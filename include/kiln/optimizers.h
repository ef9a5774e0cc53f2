/// Keras-style optimizers: step(params) applies one update from each param's grad().
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "kiln/tensor.h"

namespace kiln {

/// Base of every optimizer: keeps per-parameter slots and the iteration count.
class Optimizer {
 public:
  virtual ~Optimizer() = default;
  /// Applies one update to `params` from their grad(); params without a grad are skipped.
  void step(const std::vector<Tensor>& params);
  /// Keras' name, e.g. "adam".
  virtual std::string name() const = 0;
  /// A fresh optimizer with the same options (no slots, iteration 0).
  virtual std::unique_ptr<Optimizer> clone() const = 0;
  /// Updates applied so far.
  int64_t iterations() const { return iterations_; }
  /// Slot tensors (moments, velocities) per parameter, for saving.
  const std::vector<std::vector<Tensor>>& slots() const { return slots_; }
  /// Restores slots and the iteration count (from a checkpoint).
  void restore(std::vector<std::vector<Tensor>> slots, int64_t iterations);

 protected:
  /// Number of slot tensors each parameter needs.
  virtual int slots_per_param() const = 0;
  /// Updates one parameter; `step` counts from 1.
  virtual void update(Tensor& param, const Tensor& grad, std::vector<Tensor>& slots, int64_t step) = 0;

 private:
  std::vector<std::vector<Tensor>> slots_;
  int64_t iterations_ = 0;
};

namespace optimizers {

/// Options of SGD, with Keras' defaults.
struct SGDOptions {
  double learning_rate = 0.01;  ///< step size lr
  double momentum = 0.0;        ///< m; 0 keeps no velocity
  bool nesterov = false;        ///< Nesterov momentum
};

/// Stochastic gradient descent, Keras' rule: v = m v - lr g; w += v (nesterov: w += m v - lr g).
class SGD : public Optimizer {
 public:
  /// The optimizer with `options`.
  explicit SGD(SGDOptions options = {});
  std::string name() const override { return "SGD"; }
  std::unique_ptr<Optimizer> clone() const override { return std::make_unique<SGD>(options_); }
  /// The options it was made with.
  const SGDOptions& options() const { return options_; }

 protected:
  int slots_per_param() const override { return options_.momentum != 0.0 ? 1 : 0; }
  void update(Tensor& param, const Tensor& grad, std::vector<Tensor>& slots, int64_t step) override;

 private:
  SGDOptions options_;
};

/// Options of Adam, with Keras' defaults.
struct AdamOptions {
  double learning_rate = 0.001;  ///< step size
  double beta_1 = 0.9;           ///< decay of the first-moment estimate
  double beta_2 = 0.999;         ///< decay of the second-moment estimate
  double epsilon = 1e-7;         ///< Keras' epsilon-hat, added to sqrt(v)
};

/// Adam in Keras' epsilon-hat form.
class Adam : public Optimizer {
 public:
  /// The optimizer with `options`.
  explicit Adam(AdamOptions options = {});
  std::string name() const override { return "Adam"; }
  std::unique_ptr<Optimizer> clone() const override { return std::make_unique<Adam>(options_); }
  /// The options it was made with.
  const AdamOptions& options() const { return options_; }

 protected:
  int slots_per_param() const override { return 2; }
  void update(Tensor& param, const Tensor& grad, std::vector<Tensor>& slots, int64_t step) override;

 private:
  AdamOptions options_;
};

/// An optimizer by Keras name with default options ("sgd", "adam").
std::unique_ptr<Optimizer> get(const std::string& name);

}  // namespace optimizers
}  // namespace kiln
