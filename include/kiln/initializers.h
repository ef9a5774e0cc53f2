/// Keras' weight initializers, by class ("GlorotUniform") or by name ("glorot_uniform").
#pragma once

#include <memory>
#include <string>

#include "kiln/registry.h"
#include "kiln/tensor.h"

namespace kiln {

class Generator;

/// Base of every initializer: fills a new weight of a given shape.
class Initializer {
 public:
  virtual ~Initializer() = default;
  /// Keras' class name, e.g. "GlorotUniform"; also the name it is registered under.
  virtual std::string class_name() const = 0;
  /// Constructor arguments (Keras' get_config).
  virtual Config get_config() const { return Config::object(); }
  /// A new float32 tensor of `shape` on `device`, drawn from `gen` on the host (so every device
  /// gets the same values for the same seed).
  virtual Tensor operator()(const Shape& shape, Generator& gen, Device device) const = 0;
};

/// The table of initializer classes; each is registered under its class name and its Keras
/// snake_case name.
Registry<std::shared_ptr<Initializer>>& initializer_registry();

namespace initializers {

/// Keras' fans of a weight shape: [in, out] for 2-D; for [..., in, out] both times the product of
/// the leading (receptive field) dimensions; a 1-D shape gives its extent twice, a scalar 1.
std::pair<int64_t, int64_t> compute_fans(const Shape& shape);

/// An initializer by Keras name or class name with default arguments ("glorot_uniform",
/// "HeNormal", "zeros", ...); throws naming the known ones.
std::shared_ptr<Initializer> get(const std::string& name);
/// Throws unless `name` is a registered initializer; `op` names the layer in the message.
void check(const std::string& name, const std::string& op);

/// U(-limit, limit), limit = sqrt(6 / (fan_in + fan_out)): Dense's and Conv2D's kernel default.
class GlorotUniform : public Initializer {
 public:
  std::string class_name() const override { return "GlorotUniform"; }
  /// Rebuilds from get_config().
  static GlorotUniform from_config(const Config& config);
  Tensor operator()(const Shape& shape, Generator& gen, Device device) const override;
};

/// All zeros: the bias default.
class Zeros : public Initializer {
 public:
  std::string class_name() const override { return "Zeros"; }
  /// Rebuilds from get_config().
  static Zeros from_config(const Config& config);
  Tensor operator()(const Shape& shape, Generator& gen, Device device) const override;
};

/// All ones (BatchNormalization's gamma and moving variance).
class Ones : public Initializer {
 public:
  std::string class_name() const override { return "Ones"; }
  /// Rebuilds from get_config().
  static Ones from_config(const Config& config);
  Tensor operator()(const Shape& shape, Generator& gen, Device device) const override;
};

/// Keras' VarianceScaling: values of variance `scale / n`, n the fan given by `mode` ("fan_in",
/// "fan_out" or "fan_avg", at least 1). Distribution "truncated_normal" ("normal" is read as it)
/// draws a normal of stddev sqrt(scale / n) / .87962566103423978 and redraws every value beyond two
/// stddevs, so the kept values have stddev sqrt(scale / n); "untruncated_normal" draws a normal of
/// stddev sqrt(scale / n); "uniform" draws U(-limit, limit), limit = sqrt(3 scale / n).
class VarianceScaling : public Initializer {
 public:
  /// Keras' defaults; scale must be finite and > 0.
  explicit VarianceScaling(double scale = 1.0, std::string mode = "fan_in",
                           std::string distribution = "truncated_normal");
  std::string class_name() const override { return "VarianceScaling"; }
  Config get_config() const override;
  /// Rebuilds from get_config().
  static VarianceScaling from_config(const Config& config);
  Tensor operator()(const Shape& shape, Generator& gen, Device device) const override;
  /// The scale factor.
  double scale() const { return scale_; }
  /// "fan_in", "fan_out" or "fan_avg".
  const std::string& mode() const { return mode_; }
  /// "truncated_normal", "untruncated_normal" or "uniform".
  const std::string& distribution() const { return distribution_; }

 private:
  double scale_;
  std::string mode_;
  std::string distribution_;
};

/// Truncated normal of stddev sqrt(2 / (fan_in + fan_out)) after truncation (VarianceScaling(1, fan_avg)).
class GlorotNormal : public VarianceScaling {
 public:
  /// Keras' GlorotNormal.
  GlorotNormal() : VarianceScaling(1.0, "fan_avg", "truncated_normal") {}
  std::string class_name() const override { return "GlorotNormal"; }
  Config get_config() const override { return Config::object(); }
  /// Rebuilds from get_config().
  static GlorotNormal from_config(const Config& config);
};

/// Truncated normal of stddev sqrt(2 / fan_in) after truncation (VarianceScaling(2, fan_in)).
class HeNormal : public VarianceScaling {
 public:
  /// Keras' HeNormal.
  HeNormal() : VarianceScaling(2.0, "fan_in", "truncated_normal") {}
  std::string class_name() const override { return "HeNormal"; }
  Config get_config() const override { return Config::object(); }
  /// Rebuilds from get_config().
  static HeNormal from_config(const Config& config);
};

/// U(-limit, limit), limit = sqrt(6 / fan_in) (VarianceScaling(2, fan_in, uniform)).
class HeUniform : public VarianceScaling {
 public:
  /// Keras' HeUniform.
  HeUniform() : VarianceScaling(2.0, "fan_in", "uniform") {}
  std::string class_name() const override { return "HeUniform"; }
  Config get_config() const override { return Config::object(); }
  /// Rebuilds from get_config().
  static HeUniform from_config(const Config& config);
};

/// Truncated normal of stddev sqrt(1 / fan_in) after truncation (VarianceScaling(1, fan_in)).
class LecunNormal : public VarianceScaling {
 public:
  /// Keras' LecunNormal.
  LecunNormal() : VarianceScaling(1.0, "fan_in", "truncated_normal") {}
  std::string class_name() const override { return "LecunNormal"; }
  Config get_config() const override { return Config::object(); }
  /// Rebuilds from get_config().
  static LecunNormal from_config(const Config& config);
};

/// U(-limit, limit), limit = sqrt(3 / fan_in) (VarianceScaling(1, fan_in, uniform)).
class LecunUniform : public VarianceScaling {
 public:
  /// Keras' LecunUniform.
  LecunUniform() : VarianceScaling(1.0, "fan_in", "uniform") {}
  std::string class_name() const override { return "LecunUniform"; }
  Config get_config() const override { return Config::object(); }
  /// Rebuilds from get_config().
  static LecunUniform from_config(const Config& config);
};

/// A normal of `mean` and `stddev`, not truncated (Keras' defaults 0 and 0.05).
class RandomNormal : public Initializer {
 public:
  /// stddev must be finite and >= 0, mean finite.
  explicit RandomNormal(double mean = 0.0, double stddev = 0.05);
  std::string class_name() const override { return "RandomNormal"; }
  Config get_config() const override { return {{"mean", mean_}, {"stddev", stddev_}}; }
  /// Rebuilds from get_config().
  static RandomNormal from_config(const Config& config);
  Tensor operator()(const Shape& shape, Generator& gen, Device device) const override;

 private:
  double mean_, stddev_;
};

/// A normal of `mean` and `stddev` with every value beyond two stddevs redrawn (Keras' defaults 0 and
/// 0.05); unlike VarianceScaling, stddev is the one before truncation, as in Keras.
class TruncatedNormal : public Initializer {
 public:
  /// stddev must be finite and >= 0, mean finite.
  explicit TruncatedNormal(double mean = 0.0, double stddev = 0.05);
  std::string class_name() const override { return "TruncatedNormal"; }
  Config get_config() const override { return {{"mean", mean_}, {"stddev", stddev_}}; }
  /// Rebuilds from get_config().
  static TruncatedNormal from_config(const Config& config);
  Tensor operator()(const Shape& shape, Generator& gen, Device device) const override;

 private:
  double mean_, stddev_;
};

/// U(minval, maxval) (Keras' defaults -0.05 and 0.05).
class RandomUniform : public Initializer {
 public:
  /// Both finite, minval <= maxval.
  explicit RandomUniform(double minval = -0.05, double maxval = 0.05);
  std::string class_name() const override { return "RandomUniform"; }
  Config get_config() const override { return {{"minval", minval_}, {"maxval", maxval_}}; }
  /// Rebuilds from get_config().
  static RandomUniform from_config(const Config& config);
  Tensor operator()(const Shape& shape, Generator& gen, Device device) const override;

 private:
  double minval_, maxval_;
};

/// Keras' Identity: gain times the identity matrix eye(rows, columns) for a 2-D shape (rows may
/// differ from columns). A kiln extension, as PyTorch's dirac_: for a convolution kernel [KH, KW,
/// C, F] the identity convolution, gain at the window's centre (KH / 2, KW / 2, rounded down) of
/// input channel f in filter f for f < min(C, F), zero elsewhere, so a 'same' convolution passes
/// its first min(C, F) channels unchanged. Other shapes throw, naming the shape.
class Identity : public Initializer {
 public:
  /// gain must be finite.
  explicit Identity(double gain = 1.0);
  std::string class_name() const override { return "Identity"; }
  Config get_config() const override { return {{"gain", gain_}}; }
  /// Rebuilds from get_config().
  static Identity from_config(const Config& config);
  Tensor operator()(const Shape& shape, Generator& gen, Device device) const override;

 private:
  double gain_;
};

}  // namespace initializers

/// Registers initializer class I under `class_name` and `keras_name` (e.g. "GlorotUniform",
/// "glorot_uniform") while this object is constructed; I needs `static I from_config(const Config&)`.
template <typename I>
struct RegisterInitializer {
  /// Registers I under both names.
  RegisterInitializer(const std::string& class_name, const std::string& keras_name) {
    auto factory = [](const Config& config) -> std::shared_ptr<Initializer> {
      return std::make_shared<I>(I::from_config(config));
    };
    initializer_registry().add(class_name, factory);
    if (keras_name != class_name) initializer_registry().add(keras_name, factory);
  }
};

}  // namespace kiln
