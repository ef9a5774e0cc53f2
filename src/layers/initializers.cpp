// Keras' fans, the initializer registry and Keras' initializers, drawn on the host from the model's
// generator so that every device gets the same values for the same seed.
#include "kiln/initializers.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <vector>

#include "io/json_fields.h"
#include "kiln/error.h"
#include "kiln/random.h"

namespace kiln {

Registry<std::shared_ptr<Initializer>>& initializer_registry() {
  static Registry<std::shared_ptr<Initializer>> registry("initializer");
  return registry;
}

namespace initializers {

std::pair<int64_t, int64_t> compute_fans(const Shape& shape) {
  const int64_t n = shape.ndim();
  if (n == 0) return {1, 1};
  if (n == 1) return {shape[0], shape[0]};
  int64_t receptive = 1;
  for (int64_t i = 0; i + 2 < n; ++i) receptive *= shape[i];
  return {shape[n - 2] * receptive, shape[n - 1] * receptive};
}

void check(const std::string& name, const std::string& op) {
  if (!initializer_registry().contains(name)) throw Error(op, initializer_registry().unknown(name));
}

std::shared_ptr<Initializer> get(const std::string& name) {
  return initializer_registry().make(name, Config::object());
}

Tensor GlorotUniform::operator()(const Shape& shape, Generator& gen, Device device) const {
  const auto [fan_in, fan_out] = compute_fans(shape);
  const double limit = std::sqrt(6.0 / static_cast<double>(fan_in + fan_out));
  return Tensor::uniform(shape, -limit, limit, gen, DType::Float32, device);
}

Tensor Zeros::operator()(const Shape& shape, Generator&, Device device) const {
  return Tensor::zeros(shape, DType::Float32, device);
}

Tensor Ones::operator()(const Shape& shape, Generator&, Device device) const {
  return Tensor::ones(shape, DType::Float32, device);
}

namespace {

// Keras truncates its normals at two standard deviations; the stddev of the kept values is this
// fraction of the one drawn from (VarianceScaling divides by it so the kept values have the target).
constexpr double kTruncatedStddev = .87962566103423978;

// mean + stddev z for standard normals z, redrawing every |z| > 2 when `truncated`.
Tensor normal_values(const Shape& shape, double mean, double stddev, bool truncated, Generator& gen, Device device,
                     const char* op) {
  for (int64_t d : shape.dims())
    if (d < 0) throw Error(op, "negative extent in shape " + shape.str() + "; expected sizes >= 0");
  std::vector<float> values(static_cast<std::size_t>(shape.numel()));
  for (float& v : values) {
    double z = gen.normal();
    while (truncated && std::abs(z) > 2.0) z = gen.normal();
    v = static_cast<float>(mean + stddev * z);
  }
  return Tensor::from_vector(values, shape, device);
}

void check_normal(const char* op, double mean, double stddev) {
  if (!std::isfinite(mean)) throw Error(op, "mean is " + std::to_string(mean) + "; expected a finite number");
  if (!std::isfinite(stddev) || stddev < 0)
    throw Error(op, "stddev is " + std::to_string(stddev) + "; expected a finite number >= 0");
}

io::JsonFields fields(const Config& config, const std::string& class_name) {
  return io::JsonFields(config, "the " + class_name + " config", "from_config");
}

double number_or(const io::JsonFields& f, const std::string& key, double fallback) {
  return f.has(key) ? f.number(key) : fallback;
}

}  // namespace

VarianceScaling::VarianceScaling(double scale, std::string mode, std::string distribution)
    : scale_(scale), mode_(std::move(mode)), distribution_(std::move(distribution)) {
  if (!std::isfinite(scale) || scale <= 0)
    throw Error("variance_scaling", "scale is " + std::to_string(scale) + "; expected a finite number > 0");
  if (mode_ != "fan_in" && mode_ != "fan_out" && mode_ != "fan_avg")
    throw Error("variance_scaling", "mode '" + mode_.substr(0, 60) + "'; expected fan_in, fan_out or fan_avg");
  for (char& c : distribution_) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (distribution_ == "normal") distribution_ = "truncated_normal";  // Keras reads it so
  if (distribution_ != "truncated_normal" && distribution_ != "untruncated_normal" && distribution_ != "uniform")
    throw Error("variance_scaling", "distribution '" + distribution_.substr(0, 60) +
                                        "'; expected truncated_normal, untruncated_normal or uniform");
}

Config VarianceScaling::get_config() const {
  return {{"scale", scale_}, {"mode", mode_}, {"distribution", distribution_}};
}

VarianceScaling VarianceScaling::from_config(const Config& config) {
  const auto f = fields(config, "VarianceScaling");
  return VarianceScaling(number_or(f, "scale", 1.0), f.has("mode") ? f.string("mode") : "fan_in",
                         f.has("distribution") ? f.string("distribution") : "truncated_normal");
}

Tensor VarianceScaling::operator()(const Shape& shape, Generator& gen, Device device) const {
  const auto [fan_in, fan_out] = compute_fans(shape);
  const double fan = mode_ == "fan_in"    ? static_cast<double>(fan_in)
                     : mode_ == "fan_out" ? static_cast<double>(fan_out)
                                          : static_cast<double>(fan_in + fan_out) / 2.0;
  const double scale = scale_ / std::max(1.0, fan);
  if (distribution_ == "uniform") {
    const double limit = std::sqrt(3.0 * scale);
    return Tensor::uniform(shape, -limit, limit, gen, DType::Float32, device);
  }
  const bool truncated = distribution_ == "truncated_normal";
  const double stddev = truncated ? std::sqrt(scale) / kTruncatedStddev : std::sqrt(scale);
  return normal_values(shape, 0.0, stddev, truncated, gen, device, "variance_scaling");
}

RandomNormal::RandomNormal(double mean, double stddev) : mean_(mean), stddev_(stddev) {
  check_normal("random_normal", mean, stddev);
}

Tensor RandomNormal::operator()(const Shape& shape, Generator& gen, Device device) const {
  return normal_values(shape, mean_, stddev_, false, gen, device, "random_normal");
}

RandomNormal RandomNormal::from_config(const Config& config) {
  const auto f = fields(config, "RandomNormal");
  return RandomNormal(number_or(f, "mean", 0.0), number_or(f, "stddev", 0.05));
}

TruncatedNormal::TruncatedNormal(double mean, double stddev) : mean_(mean), stddev_(stddev) {
  check_normal("truncated_normal", mean, stddev);
}

Tensor TruncatedNormal::operator()(const Shape& shape, Generator& gen, Device device) const {
  return normal_values(shape, mean_, stddev_, true, gen, device, "truncated_normal");
}

TruncatedNormal TruncatedNormal::from_config(const Config& config) {
  const auto f = fields(config, "TruncatedNormal");
  return TruncatedNormal(number_or(f, "mean", 0.0), number_or(f, "stddev", 0.05));
}

RandomUniform::RandomUniform(double minval, double maxval) : minval_(minval), maxval_(maxval) {
  if (!std::isfinite(minval) || !std::isfinite(maxval) || minval > maxval)
    throw Error("random_uniform", "minval " + std::to_string(minval) + " and maxval " + std::to_string(maxval) +
                                      "; expected finite numbers with minval <= maxval");
}

Tensor RandomUniform::operator()(const Shape& shape, Generator& gen, Device device) const {
  return Tensor::uniform(shape, minval_, maxval_, gen, DType::Float32, device);
}

RandomUniform RandomUniform::from_config(const Config& config) {
  const auto f = fields(config, "RandomUniform");
  return RandomUniform(number_or(f, "minval", -0.05), number_or(f, "maxval", 0.05));
}

Identity::Identity(double gain) : gain_(gain) {
  if (!std::isfinite(gain)) throw Error("identity", "gain is " + std::to_string(gain) + "; expected a finite number");
}

Tensor Identity::operator()(const Shape& shape, Generator&, Device device) const {
  std::vector<float> values(static_cast<std::size_t>(shape.numel()), 0.0F);
  const auto gain = static_cast<float>(gain_);
  if (shape.ndim() == 2) {
    for (int64_t i = 0; i < std::min(shape[0], shape[1]); ++i)
      values[static_cast<std::size_t>(i * shape[1] + i)] = gain;
  } else if (shape.ndim() == 4) {
    const int64_t C = shape[2], F = shape[3], centre = (shape[0] / 2 * shape[1] + shape[1] / 2) * C * F;
    for (int64_t f = 0; f < std::min(C, F); ++f) values[static_cast<std::size_t>(centre + f * F + f)] = gain;
  } else {
    throw Error("identity",
                "shape " + shape.str() + "; expected a matrix [rows, columns] or a convolution kernel [KH, KW, C, F]");
  }
  return Tensor::from_vector(values, shape, device);
}

Identity Identity::from_config(const Config& config) {
  const auto f = fields(config, "Identity");
  return Identity(number_or(f, "gain", 1.0));
}

GlorotNormal GlorotNormal::from_config(const Config&) { return {}; }
HeNormal HeNormal::from_config(const Config&) { return {}; }
HeUniform HeUniform::from_config(const Config&) { return {}; }
LecunNormal LecunNormal::from_config(const Config&) { return {}; }
LecunUniform LecunUniform::from_config(const Config&) { return {}; }
GlorotUniform GlorotUniform::from_config(const Config&) { return {}; }
Zeros Zeros::from_config(const Config&) { return {}; }
Ones Ones::from_config(const Config&) { return {}; }

namespace {
const RegisterInitializer<GlorotUniform> glorot_uniform("GlorotUniform", "glorot_uniform");
const RegisterInitializer<Zeros> zeros("Zeros", "zeros");
const RegisterInitializer<Ones> ones("Ones", "ones");
const RegisterInitializer<VarianceScaling> variance_scaling("VarianceScaling", "variance_scaling");
const RegisterInitializer<GlorotNormal> glorot_normal("GlorotNormal", "glorot_normal");
const RegisterInitializer<HeNormal> he_normal("HeNormal", "he_normal");
const RegisterInitializer<HeUniform> he_uniform("HeUniform", "he_uniform");
const RegisterInitializer<LecunNormal> lecun_normal("LecunNormal", "lecun_normal");
const RegisterInitializer<LecunUniform> lecun_uniform("LecunUniform", "lecun_uniform");
const RegisterInitializer<RandomNormal> random_normal("RandomNormal", "random_normal");
const RegisterInitializer<TruncatedNormal> truncated_normal("TruncatedNormal", "truncated_normal");
const RegisterInitializer<RandomUniform> random_uniform("RandomUniform", "random_uniform");
const RegisterInitializer<Identity> identity("Identity", "identity");
}  // namespace

}  // namespace initializers
}  // namespace kiln
