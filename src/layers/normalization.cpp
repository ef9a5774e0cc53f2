// Normalization: (x - mean) / max(sqrt(variance), 1e-7) per kept index, from given values or from
// adapt()'s statistics.
#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <set>
#include <tuple>

#include "kiln/error.h"
#include "kiln/ops.h"
#include "kiln/random.h"
#include "layers/config_fields.h"
#include "layers/random_image.h"

namespace kiln::layers {

namespace {

const RegisterLayer<Normalization> registered("Normalization");

// Keras' backend.epsilon(), the floor of the standard deviation.
constexpr double kEpsilon = 1e-7;

std::string axes_text(const std::vector<int64_t>& axis) {
  std::string s = "(";
  for (std::size_t i = 0; i < axis.size(); ++i) s += (i ? ", " : "") + std::to_string(axis[i]);
  return s + (axis.size() == 1 ? ",)" : ")");
}

// Keras' "count" starts at 0 (an int64 here, where Keras' is a backend int).
class CountStart : public Initializer {
 public:
  std::string class_name() const override { return "Zeros"; }
  Tensor operator()(const Shape& shape, Generator&, Device device) const override {
    return Tensor::zeros(shape, DType::Int64, device);
  }
};

}  // namespace

Normalization::Normalization(NormalizationOptions options) : options_(std::move(options)) {
  name_ = "normalization";
  declare(options_.input_shape, options_.dtype);
  if (options_.mean.has_value() != options_.variance.has_value())
    throw Error(name_,
                std::string(options_.mean ? "mean is given without variance" : "variance is given without mean") +
                    "; expected both or neither");
  if (options_.mean) {
    if (options_.mean->size() != options_.variance->size() || options_.mean->empty())
      throw Error(name_, "mean has " + std::to_string(options_.mean->size()) + " values and variance " +
                             std::to_string(options_.variance->size()) + "; expected the same number, at least one");
    for (double v : *options_.variance)
      if (!(v >= 0.0) || !std::isfinite(v))
        throw Error(name_, "variance holds " + number_text(v) + "; expected finite values >= 0");
    for (double v : *options_.mean)
      if (!std::isfinite(v)) throw Error(name_, "mean holds " + number_text(v) + "; expected finite values");
  }
  std::set<int64_t> seen(options_.axis.begin(), options_.axis.end());
  if (seen.size() != options_.axis.size())
    throw Error(name_, "axis " + axes_text(options_.axis) + " repeats an axis; expected each axis once");
}

Shape Normalization::kept_shape(const Shape& input_shape) const {
  const int64_t ndim = input_shape.ndim() + 1;  // Keras' axes count the batch axis
  std::vector<int64_t> kept;
  for (int64_t a : options_.axis) {
    const int64_t d = a < 0 ? a + ndim : a;
    if (d < 0 || d >= ndim)
      throw Error(name_, "axis " + axes_text(options_.axis) + " is out of range for inputs " + input_shape.batch_str() +
                             "; expected axes in [-" + std::to_string(ndim) + ", " + std::to_string(ndim) + ")");
    if (d == 0)
      throw Error(name_, "axis " + axes_text(options_.axis) +
                             " keeps the batch axis; expected feature axes only (1 or more, or negative)");
    kept.push_back(d);
  }
  std::sort(kept.begin(), kept.end());
  // The statistics broadcast against x as a trailing suffix of its shape, so the kept axes must be
  // the last ones.
  for (std::size_t i = 0; i < kept.size(); ++i)
    if (kept[i] != ndim - static_cast<int64_t>(kept.size()) + static_cast<int64_t>(i))
      throw Error(name_, "axis " + axes_text(options_.axis) + " keeps axes that are not the last ones of inputs " +
                             input_shape.batch_str() + "; expected the trailing axes (e.g. -1)");
  std::vector<int64_t> dims;
  dims.reserve(kept.size());
  for (int64_t d : kept) dims.push_back(input_shape[d - 1]);
  Shape shape(dims);
  if (options_.mean && options_.mean->size() != 1 && static_cast<int64_t>(options_.mean->size()) != shape.numel())
    throw Error(name_, "mean and variance have " + std::to_string(options_.mean->size()) + " values for kept shape " +
                           shape.str() + "; expected 1 or " + std::to_string(shape.numel()));
  return shape;
}

Shape Normalization::compute_output_shape(const Shape& input_shape) const {
  kept_shape(input_shape);
  return input_shape;
}

void Normalization::create_weights(const Shape& input_shape) {
  kept_ = kept_shape(input_shape);
  built_shape_ = input_shape;
  constants_.clear();
  if (options_.mean) return;  // constants of the config, as in Keras: no weights
  add_weight("mean", kept_, initializers::Zeros(), {.trainable = false});
  add_weight("variance", kept_, initializers::Ones(), {.trainable = false});
  add_weight("count", {}, CountStart(), {.trainable = false});
}

std::pair<Tensor, Tensor> Normalization::given_constants(DType dtype, Device device) {
  if (constants_.empty() || constants_[0].dtype() != dtype || constants_[0].device() != device) {
    // Keras' float32 arithmetic: the values cast to the compute dtype, then sqrt and maximum.
    const std::size_t n = static_cast<std::size_t>(kept_.numel());
    const auto& m = *options_.mean;
    const auto& v = *options_.variance;
    std::vector<double> mean(n), denom(n);
    for (std::size_t i = 0; i < n; ++i) {
      const std::size_t k = m.size() == 1 ? 0 : i;
      if (dtype == DType::Float32) {
        mean[i] = static_cast<float>(m[k]);
        denom[i] = std::max(std::sqrt(static_cast<float>(v[k])), static_cast<float>(kEpsilon));
      } else {
        mean[i] = m[k];
        denom[i] = std::max(std::sqrt(v[k]), kEpsilon);
      }
    }
    // Made once per device and dtype, on the first call there, which is eager: fit and evaluate
    // warm up eagerly before they record a step.
    constants_ = {Tensor::from_vector(mean, kept_).astype(dtype).to(device),
                  Tensor::from_vector(denom, kept_).astype(dtype).to(device)};
  }
  return {constants_[0], constants_[1]};
}

Tensor Normalization::call(const Tensor& x, bool) {
  if (!built()) throw Error(name_, "is not built; expected build() (a model builds its layers) or adapt() first");
  Tensor mean, denom;
  if (options_.mean) {
    std::tie(mean, denom) = given_constants(x.dtype(), x.device());
  } else {
    mean = weight("mean");
    Tensor variance = weight("variance");
    if (mean.dtype() != x.dtype()) {
      mean = mean.astype(x.dtype());
      variance = variance.astype(x.dtype());
    }
    denom = clip(sqrt(variance), kEpsilon, std::numeric_limits<double>::infinity());
  }
  return options_.invert ? add(mean, mul(x, denom)) : div(sub(x, mean), denom);
}

void Normalization::adapt(const Tensor& data) {
  if (options_.mean)
    throw Error(name_, "adapt() was called on a layer made with mean and variance; expected a layer made without them");
  if (!data.defined() || !is_floating(data.dtype()) || data.ndim() < 1 || data.size(0) < 1)
    throw Error(name_, "adapt() got " + std::string(data.defined() ? data.shape().str() : "an undefined tensor") +
                           "; expected floating data [samples, ...] with at least one sample");
  const Shape sample = data.shape().drop_front();
  if (!built()) {
    Generator gen(0);  // the layer draws nothing
    build(sample, gen, data.device());
  } else if (sample != built_shape_) {
    throw Error(name_, "adapt() got samples of shape " + sample.batch_str() + "; the layer was built for " +
                           built_shape_.batch_str() + "; expected data of that shape");
  }
  // Per kept index f (the trailing kept_.numel() values of each row), the mean and the population
  // variance over all other values, in float64: two passes, as np.mean and np.var compute them.
  const std::vector<double> v = data.astype(DType::Float64).cpu().to_vector<double>();
  const int64_t features = kept_.numel(), count = static_cast<int64_t>(v.size()) / features;
  std::vector<double> mean(static_cast<std::size_t>(features), 0.0), var(mean.size(), 0.0);
  for (std::size_t i = 0; i < v.size(); ++i) mean[i % mean.size()] += v[i];
  for (double& m : mean) m /= static_cast<double>(count);
  for (std::size_t i = 0; i < v.size(); ++i) {
    const double d = v[i] - mean[i % mean.size()];
    var[i % var.size()] += d * d;
  }
  for (double& s : var) s /= static_cast<double>(count);
  const Device device = weight("mean").device();
  set_weight("mean", Tensor::from_vector(mean, kept_).astype(DType::Float32).to(device));
  set_weight("variance", Tensor::from_vector(var, kept_).astype(DType::Float32).to(device));
  set_weight("count", Tensor::from_vector<int64_t>({count}, Shape{}).to(device));
}

Config Normalization::get_config() const {
  const auto values = [](const std::optional<std::vector<double>>& v) -> Config {
    if (!v) return nullptr;
    if (v->size() == 1) return (*v)[0];
    return Config(*v);
  };
  return {{"axis", Config(options_.axis)},
          {"invert", options_.invert},
          {"mean", values(options_.mean)},
          {"variance", values(options_.variance)}};
}

Normalization Normalization::from_config(const Config& config) {
  const auto f = config_fields(config, "Normalization");
  NormalizationOptions options;
  if (f.has("axis")) {
    const Config& a = f.at("axis");
    options.axis.clear();
    if (a.is_number_integer()) {
      options.axis.push_back(a.get<int64_t>());
    } else if (a.is_array()) {
      for (const auto& e : a) {
        if (!e.is_number_integer()) f.fail("\"axis\" is " + a.dump() + "; expected an integer or a list of them");
        options.axis.push_back(e.get<int64_t>());
      }
    } else {
      f.fail("\"axis\" is " + a.dump() + "; expected an integer, a list of them or null");
    }
  } else if (config.contains("axis")) {
    options.axis.clear();  // null: Keras' axis=None
  }
  const auto values = [&](const std::string& key) -> std::optional<std::vector<double>> {
    if (!f.has(key)) return std::nullopt;
    const Config& v = f.at(key);
    if (v.is_number()) return std::vector<double>{v.get<double>()};
    std::vector<double> out;
    // Keras writes nested lists for a kept shape of several axes: flatten them row-major.
    const std::function<void(const Config&)> flatten = [&](const Config& e) {
      if (e.is_number())
        out.push_back(e.get<double>());
      else if (e.is_array())
        for (const auto& i : e) flatten(i);
      else
        f.fail("\"" + key + "\" is " + v.dump().substr(0, 80) + "; expected a number or (nested) lists of numbers");
    };
    flatten(v);
    return out;
  };
  options.mean = values("mean");
  options.variance = values("variance");
  if (f.has("invert")) options.invert = f.boolean("invert");
  return Normalization(options);
}

}  // namespace kiln::layers
