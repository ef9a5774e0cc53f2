/// Keras-style optimizers: step(params) applies one update from each param's grad().
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <regex>
#include <string>
#include <utility>
#include <vector>

#include "kiln/registry.h"
#include "kiln/schedules.h"
#include "kiln/tensor.h"

namespace kiln {

namespace optimizers {
class DeviceUpdate;
class LossScaleOptimizer;
class LossScaleUpdate;
}  // namespace optimizers
namespace backend {
struct UpdateRule;
}

/// Where one slot tensor stands in Keras' list of optimizer variables: parameter `param`'s slot
/// `slot` (an index into slot_names()).
struct SlotPlace {
  std::size_t param = 0;  ///< the parameter's index
  std::size_t slot = 0;   ///< the slot's index in slot_names()
};

/// Base of every optimizer: keeps per-parameter slots and the iteration count. A user's optimizer
/// overrides update() (one parameter at a time); the built-in ones derive from
/// optimizers::KerasOptimizer, which adds Keras' common options.
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
  /// The learning rate of the next update (a schedule's value at iterations()); throws for an
  /// optimizer without one (the default).
  virtual double learning_rate() const;
  /// Sets a fixed learning rate for the next updates (what ReduceLROnPlateau does between
  /// epochs); throws when the rate is a schedule, as Keras does, or the optimizer has none.
  virtual void set_learning_rate(double value);
  /// Keras' finalize_variable_values: what training does to `params` when it ends. With use_ema,
  /// copies the moving averages into the weights (Keras' fit calls it after the last epoch); the
  /// default does nothing.
  virtual void finalize_variable_values(const std::vector<Tensor>& params);
  /// Keras' scale_loss: the loss whose gradients this optimizer expects. `loss` itself by default;
  /// loss scaling multiplies it by its scale.
  virtual Tensor scale_loss(const Tensor& loss);
  /// Whether a step with non-finite gradients is expected now and then and skipped by the update
  /// itself (loss scaling); training then checks only the layers' outputs for NaN. False by default.
  virtual bool skips_non_finite_steps() const;
  /// State beyond the slots and the iteration count (the rest of Keras' optimizer variables): named
  /// scalars or tensors on the host, such as a LossScaleOptimizer's
  /// "loss_scale_optimizer/dynamic_scale" and "loss_scale_optimizer/step_counter". Saved with the
  /// model as "optimizer/<name>" and kept by BackupAndRestore. None by default.
  virtual std::vector<std::pair<std::string, Tensor>> state_variables() const;
  /// Takes every state variable back from `values` (a checkpoint's, each of state_variables()'
  /// name, dtype and shape); throws kiln::Error naming the variable whose value it cannot take.
  virtual void restore_state_variables(const std::vector<std::pair<std::string, Tensor>>& values);
  /// Makes iterations() and state_variables() exact where updates are queued on a device and
  /// counted there (loss scaling's skipped steps): one read back. Nothing to do by default.
  virtual void synchronize();
  /// Updates applied so far.
  int64_t iterations() const { return iterations_; }
  /// Slot tensors (moments, velocities) per parameter, for saving.
  const std::vector<std::vector<Tensor>>& slots() const { return slots_; }
  /// Restores slots and the iteration count (from a checkpoint).
  void restore(std::vector<std::vector<Tensor>> slots, int64_t iterations);
  /// The slots of `params` in the order Keras' build() creates its optimizer variables (.keras
  /// files): the moving averages ("average") first, then each other slot name over every
  /// parameter. Adam (both slots per parameter) and Muon (a velocity only where it steps with
  /// AdamW) override it; slots missing from the order start at zero when loaded.
  virtual std::vector<SlotPlace> keras_variable_order(const std::vector<Tensor>& params) const;

 protected:
  /// Updates one parameter; `step` counts from 1. The default throws: override it, or apply().
  virtual void update(Tensor& param, const Tensor& grad, std::vector<Tensor>& slots, int64_t step);
  /// Updates every parameter of `params` whose slots are `slots` (one list per parameter, on its
  /// device); `iteration` counts earlier updates. The default calls update() for each parameter
  /// that has a grad.
  virtual void apply(const std::vector<Tensor>& params, std::vector<std::vector<Tensor>>& slots, int64_t iteration);
  /// The value slot `slot` starts with (Adagrad's initial accumulator); 0 by default.
  virtual double initial_slot_value(std::size_t slot) const;
  /// The moving averages' places ("average" over every parameter; none without one), which Keras
  /// creates before the rule's slots.
  std::vector<SlotPlace> average_places(const std::vector<Tensor>& params) const;

 private:
  // Loss scaling drives the optimizer it wraps: its slots' initial values and its update.
  friend class optimizers::LossScaleOptimizer;

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

/// Keras' arguments shared by every built-in optimizer (each options struct below repeats them, so
/// designated initializers can name them): the learning rate and what happens around the rule.
struct CommonOptions {
  LearningRate learning_rate = 0.001;                    ///< a number or a schedule of the iteration
  std::optional<double> weight_decay = std::nullopt;     ///< decoupled: w -= w * weight_decay * lr before the update
  std::optional<double> clipnorm = std::nullopt;         ///< each gradient scaled to norm <= clipnorm
  std::optional<double> clipvalue = std::nullopt;        ///< each gradient element clipped to +-clipvalue
  std::optional<double> global_clipnorm = std::nullopt;  ///< all gradients scaled to global norm <= this
  bool use_ema = false;                                  ///< keep a moving average of the weights
  /// average = m average + (1 - m) w (w itself at step 0). A number, as in Keras, or (a kiln
  /// extension) a schedule of the iteration like the learning rate's, each value in [0, 1]: with
  /// ema_overwrite_frequency k, momentum 1 on the steps between overwrites and m_t on every k-th
  /// makes the average the slow weights of Lookahead (Zhang et al. 2019) with step size 1 - m_t.
  LearningRate ema_momentum = 0.99;
  std::optional<int64_t> ema_overwrite_frequency = std::nullopt;  ///< every this many steps, w = average
};

/// The common options of any options struct below.
template <typename O>
CommonOptions common_options(const O& o) {
  return {o.learning_rate,   o.weight_decay, o.clipnorm,     o.clipvalue,
          o.global_clipnorm, o.use_ema,      o.ema_momentum, o.ema_overwrite_frequency};
}

/// Base of the built-in optimizers: Keras' common options (learning rate or schedule, weight
/// decay, clipping, EMA) around one fused update rule, the same on the CPU, on a GPU and in a
/// recorded training step. Per step, as Keras: gradients clipped, weights decayed, the rule
/// applied, the moving average updated.
class KerasOptimizer : public Optimizer {
 public:
  /// Keras' slot names: the rule's (rule_slot_names()), then "average" with use_ema.
  std::vector<std::string> slot_names() const final;
  double learning_rate() const override;
  void set_learning_rate(double value) override;
  void finalize_variable_values(const std::vector<Tensor>& params) override;
  std::unique_ptr<optimizers::DeviceUpdate> make_device_update(const std::vector<Tensor>& params,
                                                               int64_t max_steps) override;
  /// The common options now (the learning rate as last set).
  virtual CommonOptions common() const = 0;
  /// The rule's constants and the common options' (internal: the backend's description).
  virtual void describe(backend::UpdateRule& rule) const = 0;
  /// The rule's own slot names, in the rule's slot order.
  virtual std::vector<std::string> rule_slot_names() const = 0;
  /// Queues one update of `params` (one device, one dtype) with their `slots` (internal: the
  /// arguments of optimizers/device_update.h's queue_fused_update, which the default calls; Muon
  /// computes its matrix products first). The eager step, the recorded step and loss scaling all
  /// queue through here.
  virtual void queue_update(const std::vector<Tensor>& params, const std::vector<std::vector<Tensor>>& slots,
                            const Tensor& sum_squares, const void* table, const int64_t* index, const double* host_step,
                            const int32_t* skip) const;

 protected:
  /// Checks `common` (Keras' errors: at most one clip option, ema_momentum in [0, 1], ...);
  /// `op` names the class in errors.
  static void check_common(const std::string& op, const CommonOptions& common);
  /// The common options as Keras' config fields.
  static Config common_config(const CommonOptions& common);
  /// Reads common_config()'s fields of `config` over `defaults`; `op` names the class in errors.
  static CommonOptions common_from_config(const std::string& op, const Config& config, CommonOptions defaults);
  /// Stores a new fixed learning rate in the options.
  virtual void store_learning_rate(double value) = 0;
  /// Fills `rule`'s weight decay and clipping from common().
  void describe_common(backend::UpdateRule& rule) const;
  void apply(const std::vector<Tensor>& params, std::vector<std::vector<Tensor>>& slots, int64_t iteration) override;
};

/// Options of SGD, with Keras' defaults.
struct SGDOptions {
  LearningRate learning_rate = 0.01;                              ///< step size lr, or a schedule
  double momentum = 0.0;                                          ///< m; 0 keeps no velocity
  bool nesterov = false;                                          ///< Nesterov momentum
  std::optional<double> weight_decay = std::nullopt;              ///< see CommonOptions
  std::optional<double> clipnorm = std::nullopt;                  ///< see CommonOptions
  std::optional<double> clipvalue = std::nullopt;                 ///< see CommonOptions
  std::optional<double> global_clipnorm = std::nullopt;           ///< see CommonOptions
  bool use_ema = false;                                           ///< see CommonOptions
  LearningRate ema_momentum = 0.99;                               ///< see CommonOptions
  std::optional<int64_t> ema_overwrite_frequency = std::nullopt;  ///< see CommonOptions
};

/// Stochastic gradient descent, Keras' rule: v = m v - lr g; w += v (nesterov: w += m v - lr g).
class SGD : public KerasOptimizer {
 public:
  /// The optimizer with `options`.
  explicit SGD(SGDOptions options = {});
  std::string name() const override { return "SGD"; }
  std::string class_name() const override { return "SGD"; }
  Config get_config() const override;
  /// Rebuilds from get_config().
  static SGD from_config(const Config& config);
  std::vector<std::string> rule_slot_names() const override;
  std::unique_ptr<Optimizer> clone() const override { return std::make_unique<SGD>(options_); }
  CommonOptions common() const override { return common_options(options_); }
  void describe(backend::UpdateRule& rule) const override;
  /// The options it was made with (the learning rate as last set).
  const SGDOptions& options() const { return options_; }

 protected:
  void store_learning_rate(double value) override { options_.learning_rate = value; }

 private:
  SGDOptions options_;
};

/// Options of Adam, with Keras' defaults.
struct AdamOptions {
  LearningRate learning_rate = 0.001;                             ///< step size, or a schedule
  double beta_1 = 0.9;                                            ///< decay of the first-moment estimate
  double beta_2 = 0.999;                                          ///< decay of the second-moment estimate
  double epsilon = 1e-7;                                          ///< Keras' epsilon-hat, added to sqrt(v)
  std::optional<double> weight_decay = std::nullopt;              ///< see CommonOptions
  std::optional<double> clipnorm = std::nullopt;                  ///< see CommonOptions
  std::optional<double> clipvalue = std::nullopt;                 ///< see CommonOptions
  std::optional<double> global_clipnorm = std::nullopt;           ///< see CommonOptions
  bool use_ema = false;                                           ///< see CommonOptions
  LearningRate ema_momentum = 0.99;                               ///< see CommonOptions
  std::optional<int64_t> ema_overwrite_frequency = std::nullopt;  ///< see CommonOptions
};

/// Adam in Keras' epsilon-hat form.
class Adam : public KerasOptimizer {
 public:
  /// The optimizer with `options`.
  explicit Adam(AdamOptions options = {});
  std::string name() const override { return "Adam"; }
  std::string class_name() const override { return "Adam"; }
  Config get_config() const override;
  /// Rebuilds from get_config().
  static Adam from_config(const Config& config);
  std::vector<std::string> rule_slot_names() const override { return {"momentum", "velocity"}; }
  /// Keras' Adam builds momentum and velocity together: both per parameter, in turn.
  std::vector<SlotPlace> keras_variable_order(const std::vector<Tensor>& params) const override;
  std::unique_ptr<Optimizer> clone() const override { return std::make_unique<Adam>(options_); }
  CommonOptions common() const override { return common_options(options_); }
  void describe(backend::UpdateRule& rule) const override;
  /// The options it was made with (the learning rate as last set).
  const AdamOptions& options() const { return options_; }

 protected:
  /// Adam with `options`, errors naming `op` (AdamW).
  Adam(const std::string& op, AdamOptions options);
  void store_learning_rate(double value) override { options_.learning_rate = value; }

 private:
  AdamOptions options_;
};

/// Options of AdamW, with Keras' defaults (weight decay on by default).
struct AdamWOptions {
  LearningRate learning_rate = 0.001;                             ///< step size, or a schedule
  double weight_decay = 0.004;                                    ///< decoupled: w -= w * weight_decay * lr first
  double beta_1 = 0.9;                                            ///< decay of the first-moment estimate
  double beta_2 = 0.999;                                          ///< decay of the second-moment estimate
  double epsilon = 1e-7;                                          ///< Keras' epsilon-hat, added to sqrt(v)
  std::optional<double> clipnorm = std::nullopt;                  ///< see CommonOptions
  std::optional<double> clipvalue = std::nullopt;                 ///< see CommonOptions
  std::optional<double> global_clipnorm = std::nullopt;           ///< see CommonOptions
  bool use_ema = false;                                           ///< see CommonOptions
  LearningRate ema_momentum = 0.99;                               ///< see CommonOptions
  std::optional<int64_t> ema_overwrite_frequency = std::nullopt;  ///< see CommonOptions
};

/// AdamW: Adam with decoupled weight decay (Keras' AdamW, an Adam whose weight_decay is required).
class AdamW : public Adam {
 public:
  /// The optimizer with `options`.
  explicit AdamW(const AdamWOptions& options = {});
  std::string name() const override { return "AdamW"; }
  std::string class_name() const override { return "AdamW"; }
  /// Rebuilds from get_config().
  static AdamW from_config(const Config& config);
  std::unique_ptr<Optimizer> clone() const override;
};

/// Options of RMSprop, with Keras' defaults.
struct RMSpropOptions {
  LearningRate learning_rate = 0.001;                             ///< step size, or a schedule
  double rho = 0.9;                                               ///< decay of the mean square
  double momentum = 0.0;                                          ///< momentum of the increments; 0 keeps none
  double epsilon = 1e-7;                                          ///< added under the square root
  bool centered = false;                                          ///< divide by the variance, not the mean square
  std::optional<double> weight_decay = std::nullopt;              ///< see CommonOptions
  std::optional<double> clipnorm = std::nullopt;                  ///< see CommonOptions
  std::optional<double> clipvalue = std::nullopt;                 ///< see CommonOptions
  std::optional<double> global_clipnorm = std::nullopt;           ///< see CommonOptions
  bool use_ema = false;                                           ///< see CommonOptions
  LearningRate ema_momentum = 0.99;                               ///< see CommonOptions
  std::optional<int64_t> ema_overwrite_frequency = std::nullopt;  ///< see CommonOptions
};

/// RMSprop, Keras' rule: v = rho v + (1 - rho) g^2; (centered: a = rho a + (1 - rho) g, and v - a^2
/// under the root) inc = lr g / sqrt(v + eps); w -= inc, or with momentum mom = momentum mom + inc;
/// w -= mom. Slots "velocity", "momentum" (momentum > 0), "average_gradient" (centered).
class RMSprop : public KerasOptimizer {
 public:
  /// The optimizer with `options`.
  explicit RMSprop(RMSpropOptions options = {});
  std::string name() const override { return "RMSprop"; }
  std::string class_name() const override { return "RMSprop"; }
  Config get_config() const override;
  /// Rebuilds from get_config().
  static RMSprop from_config(const Config& config);
  std::vector<std::string> rule_slot_names() const override;
  std::unique_ptr<Optimizer> clone() const override { return std::make_unique<RMSprop>(options_); }
  CommonOptions common() const override { return common_options(options_); }
  void describe(backend::UpdateRule& rule) const override;
  /// The options it was made with (the learning rate as last set).
  const RMSpropOptions& options() const { return options_; }

 protected:
  void store_learning_rate(double value) override { options_.learning_rate = value; }

 private:
  RMSpropOptions options_;
};

/// Options of Adagrad, with Keras' defaults.
struct AdagradOptions {
  LearningRate learning_rate = 0.001;                             ///< step size, or a schedule
  double initial_accumulator_value = 0.1;                         ///< the accumulator's starting value
  double epsilon = 1e-7;                                          ///< added under the square root
  std::optional<double> weight_decay = std::nullopt;              ///< see CommonOptions
  std::optional<double> clipnorm = std::nullopt;                  ///< see CommonOptions
  std::optional<double> clipvalue = std::nullopt;                 ///< see CommonOptions
  std::optional<double> global_clipnorm = std::nullopt;           ///< see CommonOptions
  bool use_ema = false;                                           ///< see CommonOptions
  LearningRate ema_momentum = 0.99;                               ///< see CommonOptions
  std::optional<int64_t> ema_overwrite_frequency = std::nullopt;  ///< see CommonOptions
};

/// Adagrad, Keras' rule: acc += g^2; w -= lr g / sqrt(acc + eps). Slot "accumulator".
class Adagrad : public KerasOptimizer {
 public:
  /// The optimizer with `options`.
  explicit Adagrad(AdagradOptions options = {});
  std::string name() const override { return "Adagrad"; }
  std::string class_name() const override { return "Adagrad"; }
  Config get_config() const override;
  /// Rebuilds from get_config().
  static Adagrad from_config(const Config& config);
  std::vector<std::string> rule_slot_names() const override { return {"accumulator"}; }
  std::unique_ptr<Optimizer> clone() const override { return std::make_unique<Adagrad>(options_); }
  CommonOptions common() const override { return common_options(options_); }
  void describe(backend::UpdateRule& rule) const override;
  /// The options it was made with (the learning rate as last set).
  const AdagradOptions& options() const { return options_; }

 protected:
  void store_learning_rate(double value) override { options_.learning_rate = value; }
  double initial_slot_value(std::size_t slot) const override;

 private:
  AdagradOptions options_;
};

/// Options of Muon, with Keras' defaults (keras.optimizers.Muon, Keras 3.15).
struct MuonOptions {
  LearningRate learning_rate = 0.001;  ///< step size, or a schedule (the AdamW step's times adam_lr_ratio)
  double adam_beta_1 = 0.9;            ///< AdamW's decay of the first-moment estimate
  double adam_beta_2 = 0.999;          ///< AdamW's decay of the second-moment estimate
  /// Decoupled decay of the AdamW variables: w -= w * adam_weight_decay * lr (none: no decay).
  std::optional<double> adam_weight_decay = 0.004;
  double epsilon = 1e-7;  ///< AdamW's epsilon-hat, added to sqrt(v)
  /// Decoupled decay of the Muon variables: w -= w * weight_decay * lr (none: no decay).
  std::optional<double> weight_decay = 0.004;
  std::optional<double> clipnorm = std::nullopt;                  ///< not supported yet: must stay unset
  std::optional<double> clipvalue = std::nullopt;                 ///< not supported yet: must stay unset
  std::optional<double> global_clipnorm = std::nullopt;           ///< not supported yet: must stay unset
  bool use_ema = false;                                           ///< see CommonOptions
  LearningRate ema_momentum = 0.99;                               ///< see CommonOptions
  std::optional<int64_t> ema_overwrite_frequency = std::nullopt;  ///< see CommonOptions
  /// Regular expressions searched in each weight's variable path ("dense_1/kernel"): a match takes
  /// the AdamW step (typically the output layer's name).
  std::vector<std::string> exclude_layers = {};
  bool exclude_embeddings = true;  ///< a path containing "embedding" (any case) takes the AdamW step
  double muon_a = 3.4445;          ///< Newton-Schulz coefficient a
  double muon_b = -4.7750;         ///< Newton-Schulz coefficient b
  double muon_c = 2.0315;          ///< Newton-Schulz coefficient c
  double adam_lr_ratio = 1.0;      ///< the AdamW step's learning rate is learning_rate * this
  double momentum = 0.95;          ///< the Muon step's momentum
  int64_t ns_steps = 5;            ///< Newton-Schulz iterations
  bool nesterov = true;            ///< Nesterov momentum for the Muon step
  /// The Muon step is scaled by sqrt(max(rows, cols)) * rms_rate (Moonlight's rule, which lets it
  /// share AdamW's learning rate); none: unscaled.
  std::optional<double> rms_rate = 0.2;
  /// A kiln extension: weights of rank 3 to 5 (convolution kernels) take the Muon step too, as the
  /// matrix [product of all axes but the last, last axis]; Keras gives them AdamW.
  bool orthogonalize_conv_kernels = false;
};

/// Muon (keras.optimizers.Muon): MomentUm Orthogonalized by Newton-Schulz for matrices, AdamW for
/// everything else. A 2-D weight (and, with orthogonalize_conv_kernels, a convolution kernel) not
/// excluded by name: m = momentum m + g; d = g + momentum m (nesterov) or m; d is orthogonalized by
/// ns_steps quintic Newton-Schulz iterations (x = d / (||d||_F + 1e-7), transposed when it has
/// more rows than columns; x = a x + (b A + c A A) x with A = x x^T); w -= lr d (times the rms_rate
/// scale). Other weights: Adam's rule at learning_rate * adam_lr_ratio. Decoupled weight decay as
/// Keras: weight_decay on the Muon weights, adam_weight_decay on the others, both at learning_rate.
/// Slots "momentum" and "velocity" for every weight (a Muon weight's velocity stays 0; Keras keeps
/// none), then "average" with use_ema. The same on the CPU, on a GPU, in a recorded training step
/// and under loss scaling.
class Muon : public KerasOptimizer {
 public:
  /// The optimizer with `options`; throws kiln::Error naming a bad option (or a clip option, not
  /// supported yet, or an exclude_layers entry that is no regular expression).
  explicit Muon(MuonOptions options = {});
  std::string name() const override { return "Muon"; }
  std::string class_name() const override { return "Muon"; }
  Config get_config() const override;
  /// Rebuilds from get_config().
  static Muon from_config(const Config& config);
  std::vector<std::string> rule_slot_names() const override { return {"momentum", "velocity"}; }
  /// Keras' Muon: a momentum per parameter, each followed by a velocity where it steps with AdamW.
  std::vector<SlotPlace> keras_variable_order(const std::vector<Tensor>& params) const override;
  std::unique_ptr<Optimizer> clone() const override { return std::make_unique<Muon>(options_); }
  CommonOptions common() const override;
  /// The AdamW step's rule (its per-step values are the ones both steps read).
  void describe(backend::UpdateRule& rule) const override;
  void queue_update(const std::vector<Tensor>& params, const std::vector<std::vector<Tensor>>& slots,
                    const Tensor& sum_squares, const void* table, const int64_t* index, const double* host_step,
                    const int32_t* skip) const override;
  /// Whether `param` (a layer's weight) takes the Muon step rather than AdamW's.
  bool uses_muon_step(const Tensor& param) const;
  /// The options it was made with (the learning rate as last set).
  const MuonOptions& options() const { return options_; }

 protected:
  void store_learning_rate(double value) override { options_.learning_rate = value; }

 private:
  MuonOptions options_;
  std::vector<std::regex> excluded_;  // exclude_layers, compiled once
};

/// Options of LossScaleOptimizer, with Keras' defaults.
struct LossScaleOptions {
  double initial_scale = 32768.0;       ///< the loss scale of the first step (Keras' 2**15); > 0
  int64_t dynamic_growth_steps = 2000;  ///< the scale doubles after this many finite steps in a row; >= 1
};

/// Keras' LossScaleOptimizer: dynamic loss scaling around another optimizer, for mixed_float16
/// training, where small float16 gradients would otherwise round to zero. fit multiplies the loss
/// by the scale (scale_loss()) before backward; each step then divides the gradients by it and,
/// when all of them are finite, lets the inner optimizer apply them and counts a finite step (at
/// dynamic_growth_steps of them the scale doubles and the count restarts); when any is a NaN or an
/// infinity, the step is skipped (weights, slots and iterations() unchanged), the scale halves and
/// the count restarts. The scale and the count live on the parameters' device and the check and
/// the skip run there, so a training step never reads them back (a recorded step included).
/// Model::compile wraps its optimizer in one when a layer's dtype policy is "mixed_float16".
class LossScaleOptimizer : public Optimizer {
 public:
  /// Wraps `inner` (not itself a LossScaleOptimizer); throws for a null inner optimizer or bad options.
  explicit LossScaleOptimizer(std::unique_ptr<Optimizer> inner, LossScaleOptions options = {});
  /// Wraps a fresh copy of `inner` (its clone(): no slots, iteration 0).
  explicit LossScaleOptimizer(const Optimizer& inner, LossScaleOptions options = {});
  /// Moves the wrapper, its inner optimizer and its scale state.
  LossScaleOptimizer(LossScaleOptimizer&&) = default;
  /// Moves the wrapper, its inner optimizer and its scale state.
  LossScaleOptimizer& operator=(LossScaleOptimizer&&) = default;
  ~LossScaleOptimizer() override;

  std::string name() const override { return "LossScaleOptimizer"; }
  std::string class_name() const override { return "LossScaleOptimizer"; }
  /// Keras' fields: "name", "inner_optimizer" ({"class_name", "config"}), "initial_scale",
  /// "dynamic_growth_steps".
  Config get_config() const override;
  /// Rebuilds from get_config() (the inner optimizer from the optimizer registry).
  static LossScaleOptimizer from_config(const Config& config);
  /// The inner optimizer's slot names.
  std::vector<std::string> slot_names() const override { return inner_->slot_names(); }
  std::unique_ptr<optimizers::DeviceUpdate> make_device_update(const std::vector<Tensor>& params,
                                                               int64_t max_steps) override;
  std::unique_ptr<Optimizer> clone() const override;
  /// The inner optimizer's learning rate at the updates applied so far.
  double learning_rate() const override;
  /// Sets the inner optimizer's learning rate.
  void set_learning_rate(double value) override;
  /// The inner optimizer's (use_ema copies its averages into `params`).
  void finalize_variable_values(const std::vector<Tensor>& params) override;

  /// The wrapped optimizer (Keras' inner_optimizer).
  const Optimizer& inner_optimizer() const { return *inner_; }
  /// The options it was made with.
  const LossScaleOptions& options() const { return options_; }
  /// loss * the current scale (Keras' scale_loss), differentiable in `loss`; the scale is read on
  /// the device, so this can be recorded.
  Tensor scale_loss(const Tensor& loss) override;
  /// True: a step with a NaN or an infinity among its gradients is skipped and lowers the scale.
  bool skips_non_finite_steps() const override { return true; }
  /// "loss_scale_optimizer/dynamic_scale" (float32 []) and "loss_scale_optimizer/step_counter"
  /// (int64 []), Keras' names, read back from the device.
  std::vector<std::pair<std::string, Tensor>> state_variables() const override;
  /// Sets the scale and the count; throws unless the scale is finite and > 0 and the count >= 0.
  void restore_state_variables(const std::vector<std::pair<std::string, Tensor>>& values) override;
  /// The loss scale now (Keras' "dynamic_scale", float32; read back from the device).
  double dynamic_scale() const;
  /// Finite steps since the scale last changed (Keras' "step_counter"; read back from the device).
  int64_t step_counter() const;
  /// Sets the scale and the count (a checkpoint's), in place on the device; throws unless
  /// dynamic_scale is finite and > 0 and step_counter >= 0.
  void restore_loss_scale(double dynamic_scale, int64_t step_counter);
  /// Makes iterations() exact. Steps queued on a GPU count as updates until the device's count of
  /// skipped steps is read back, which happens here (one small read), every 64 eager steps, at
  /// fit's pass boundaries and before save; on the CPU after every step.
  void synchronize() override;

 protected:
  void apply(const std::vector<Tensor>& params, std::vector<std::vector<Tensor>>& slots, int64_t iteration) override;
  double initial_slot_value(std::size_t slot) const override;

 private:
  friend class LossScaleUpdate;
  // The device state on `device`, moved there (before any recording) if it is elsewhere.
  void place_state(Device device);
  // Notices a restore() from outside (load, BackupAndRestore): the count of updates restarts there.
  void check_restored();
  // Adds the device's count of applied updates to base_ and restarts it (a read from the device).
  void read_applied();
  // Queues one step on the device: unscale and check, the inner update (skipped on the device),
  // the scale's update; per-step values from `table` at the device's count of applied updates.
  void queue_step(const std::vector<Tensor>& params, const std::vector<std::vector<Tensor>>& slots, const Tensor& table,
                  const Tensor& sum_squares);
  // The update of an inner optimizer without a fused form: the check on the host.
  void host_apply(const std::vector<Tensor>& params, std::vector<std::vector<Tensor>>& slots);

  std::unique_ptr<Optimizer> inner_;
  LossScaleOptions options_;
  Tensor scale_;            // float32 []: Keras' dynamic_scale
  Tensor counter_;          // int64 []: Keras' step_counter
  Tensor applied_;          // int64 []: updates applied since base_ (the row of the per-step tables)
  Tensor nonfinite_;        // int32 []: whether this step's gradients hold a NaN or an infinity
  Tensor eager_table_;      // per-step values of the eager steps since base_
  Tensor eager_sums_;       // gradient norms of the eager steps (clipnorm, global_clipnorm)
  int64_t base_ = 0;        // iterations() when applied_ was last 0 (exact)
  int64_t since_base_ = 0;  // steps queued since then (applied_ <= since_base_)
};

/// An optimizer by Keras name or class name with default options ("sgd", "adam", "Adam").
std::unique_ptr<Optimizer> get(const std::string& name);

}  // namespace optimizers
}  // namespace kiln
