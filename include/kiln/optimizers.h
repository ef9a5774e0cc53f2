/// Keras-style optimizers: step(params) applies one update from each param's grad().
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "kiln/registry.h"
#include "kiln/tensor.h"

namespace kiln {

namespace optimizers {
class DeviceUpdate;
}

/// Base of every optimizer: keeps per-parameter slots and the iteration count.
class Optimizer {
 public:
  virtual ~Optimizer() = default;
  /// Applies one update to `params` from their grad(); params without a grad are skipped.
  void step(const std::vector<Tensor>& params);
  /// Keras' name, e.g. "adam".
  virtual std::string name() const = 0;
  /// Keras' class name, e.g. "Adam"; also the name it is registered under.
  virtual std::string class_name() const = 0;
  /// Constructor arguments (Keras' get_config).
  virtual Config get_config() const = 0;
  /// Names of the slot tensors kept per parameter, in slot order (Keras' "momentum", "velocity");
  /// saved as "optimizer/<param index>/<slot name>".
  virtual std::vector<std::string> slot_names() const = 0;
  /// The update over `params` as device work that a recorded training step can replay, its
  /// per-step values read from the device (optimizers/device_update.h); nullptr when the optimizer
  /// has none (the default: a recorded step then runs this optimizer's step() after each replay).
  /// `max_steps` bounds the steps of one epoch.
  virtual std::unique_ptr<optimizers::DeviceUpdate> make_device_update(const std::vector<Tensor>& params,
                                                                       int64_t max_steps);
  /// A fresh optimizer with the same options (no slots, iteration 0).
  virtual std::unique_ptr<Optimizer> clone() const = 0;
  /// Updates applied so far.
  int64_t iterations() const { return iterations_; }
  /// Slot tensors (moments, velocities) per parameter, for saving.
  const std::vector<std::vector<Tensor>>& slots() const { return slots_; }
  /// Restores slots and the iteration count (from a checkpoint).
  void restore(std::vector<std::vector<Tensor>> slots, int64_t iterations);

 protected:
  /// Updates one parameter; `step` counts from 1.
  virtual void update(Tensor& param, const Tensor& grad, std::vector<Tensor>& slots, int64_t step) = 0;

 private:
  std::vector<std::vector<Tensor>> slots_;
  int64_t iterations_ = 0;
};

/// The table of optimizer classes, by class name and by Keras' lower-case names ("adam").
Registry<std::unique_ptr<Optimizer>>& optimizer_registry();

/// Registers optimizer class O under `class_name` and `alias` while this object is constructed;
/// O needs `static O from_config(const Config&)`.
template <typename O>
struct RegisterOptimizer {
  /// Registers O under both names.
  RegisterOptimizer(const std::string& class_name, const std::string& alias) {
    auto factory = [](const Config& config) -> std::unique_ptr<Optimizer> {
      return std::make_unique<O>(O::from_config(config));
    };
    optimizer_registry().add(class_name, factory);
    if (alias != class_name) optimizer_registry().add(alias, factory);
  }
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
  std::string class_name() const override { return "SGD"; }
  Config get_config() const override;
  /// Rebuilds from get_config().
  static SGD from_config(const Config& config);
  std::vector<std::string> slot_names() const override;
  std::unique_ptr<optimizers::DeviceUpdate> make_device_update(const std::vector<Tensor>& params,
                                                               int64_t max_steps) override;
  std::unique_ptr<Optimizer> clone() const override { return std::make_unique<SGD>(options_); }
  /// The options it was made with.
  const SGDOptions& options() const { return options_; }

 protected:
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
  std::string class_name() const override { return "Adam"; }
  Config get_config() const override;
  /// Rebuilds from get_config().
  static Adam from_config(const Config& config);
  std::vector<std::string> slot_names() const override { return {"momentum", "velocity"}; }
  std::unique_ptr<optimizers::DeviceUpdate> make_device_update(const std::vector<Tensor>& params,
                                                               int64_t max_steps) override;
  std::unique_ptr<Optimizer> clone() const override { return std::make_unique<Adam>(options_); }
  /// The options it was made with.
  const AdamOptions& options() const { return options_; }

 protected:
  void update(Tensor& param, const Tensor& grad, std::vector<Tensor>& slots, int64_t step) override;

 private:
  AdamOptions options_;
};

/// An optimizer by Keras name or class name with default options ("sgd", "adam", "Adam").
std::unique_ptr<Optimizer> get(const std::string& name);

}  // namespace optimizers
}  // namespace kiln
