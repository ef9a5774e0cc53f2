// RandomTranslation: each image shifted by a random fraction of its height and width in
// training, the identity otherwise.
#include <cmath>
#include <limits>

#include "kiln/error.h"
#include "layers/config_fields.h"
#include "layers/random_image.h"

namespace kiln::layers {

namespace {

const RegisterLayer<RandomTranslation> registered("RandomTranslation");

constexpr uint64_t kTranslationDraw = 2;

std::string factor_text(const Factor& f) {
  return f.pair ? "(" + number_text(f.first) + ", " + number_text(f.second) + ")" : number_text(f.value);
}

// Keras' rule: every number given lies in [-1, 1].
void check_factor(const std::string& layer, const std::string& what, const Factor& f) {
  const auto in_range = [](double v) { return v >= -1.0 && v <= 1.0; };
  const bool ok = f.pair ? in_range(f.first) && in_range(f.second) : in_range(f.value);
  if (!ok)
    throw Error(layer, what + " is " + factor_text(f) +
                           "; expected a number in [-1, 1] or a pair (lower, upper) of them (fractions of the size)");
}

Config factor_config(const Factor& f) { return f.pair ? Config::array({f.first, f.second}) : Config(f.value); }

Factor factor_field(const io::JsonFields& f, const std::string& key) {
  const Config& v = f.at(key);
  if (v.is_number()) return Factor(v.get<double>());
  if (v.is_array() && v.size() == 2 && v[0].is_number() && v[1].is_number())
    return Factor(v[0].get<double>(), v[1].get<double>());
  f.fail("\"" + key + "\" is " + v.dump() + "; expected a number or a list of two numbers");
}

}  // namespace

RandomTranslation::RandomTranslation(Factor height_factor, Factor width_factor, RandomTranslationOptions options)
    : RandomImageLayer(options.seed, kTranslationDraw, options.input_shape, options.dtype),
      height_(height_factor),
      width_(width_factor),
      options_(std::move(options)) {
  name_ = "random_translation";
  check_factor(name_, "height_factor", height_);
  check_factor(name_, "width_factor", width_);
  fill_ = parse_fill_mode(options_.fill_mode, name_);
  interpolation_ = parse_interpolation(options_.interpolation, name_);
  if (!std::isfinite(options_.fill_value))
    throw Error(name_, "fill_value is " + number_text(options_.fill_value) + "; expected a finite number");
}

Shape RandomTranslation::compute_output_shape(const Shape& input_shape) const {
  check_image(input_shape);
  return input_shape;
}

Tensor RandomTranslation::call(const Tensor& x, bool training) {
  if (!training) return x;
  const int64_t H = x.size(1), W = x.size(2);
  using backend::ImageAxisKind;
  std::array<backend::ImageAxisSpec, 2> axes;
  axes[0] = {.kind = ImageAxisKind::Shift, .lo = height_.lower, .hi = height_.upper, .size = H};
  axes[1] = {.kind = ImageAxisKind::Shift, .lo = width_.lower, .hi = width_.upper, .size = W};
  return resample_images(x, seed_state(), stream_key(), draw(), axes, {H, W}, interpolation_, fill_,
                         options_.fill_value, true);
}

Config RandomTranslation::get_config() const {
  return {{"height_factor", factor_config(height_)},
          {"width_factor", factor_config(width_)},
          {"fill_mode", options_.fill_mode},
          {"interpolation", options_.interpolation},
          {"seed", seed() ? Config(*seed()) : Config(nullptr)},
          {"fill_value", options_.fill_value},
          {"data_format", "channels_last"}};
}

RandomTranslation RandomTranslation::from_config(const Config& config) {
  const auto f = config_fields(config, "RandomTranslation");
  if (f.has("data_format") && f.string("data_format") != "channels_last")
    f.fail("data_format \"" + f.string("data_format") + "\" is not supported; expected \"channels_last\"");
  RandomTranslationOptions options;
  options.fill_mode = string_or(f, "fill_mode", "reflect");
  options.interpolation = string_or(f, "interpolation", "bilinear");
  if (f.has("seed"))
    options.seed = f.integer("seed", std::numeric_limits<int64_t>::min(), std::numeric_limits<int64_t>::max());
  if (f.has("fill_value")) options.fill_value = f.number("fill_value");
  return RandomTranslation(factor_field(f, "height_factor"), factor_field(f, "width_factor"), options);
}

}  // namespace kiln::layers
