// RandomFlip: each image flipped with probability 1/2 in training, the identity otherwise.
#include <limits>

#include "kiln/error.h"
#include "layers/config_fields.h"
#include "layers/random_image.h"

namespace kiln::layers {

namespace {

const RegisterLayer<RandomFlip> registered("RandomFlip");

// The draw numbers of the random layers' streams (Dropout uses 0).
constexpr uint64_t kFlipDraw = 1;

}  // namespace

RandomFlip::RandomFlip(std::string mode, RandomFlipOptions options)
    : RandomImageLayer(options.seed, kFlipDraw, options.input_shape, options.dtype),
      mode_(std::move(mode)),
      options_(std::move(options)) {
  name_ = "random_flip";
  if (mode_ != "horizontal" && mode_ != "vertical" && mode_ != "horizontal_and_vertical")
    throw Error(name_, "mode \"" + mode_ +
                           "\" is unknown; expected \"horizontal\", \"vertical\" or \"horizontal_and_vertical\"");
}

Shape RandomFlip::compute_output_shape(const Shape& input_shape) const {
  check_image(input_shape);
  return input_shape;
}

Tensor RandomFlip::call(const Tensor& x, bool training) {
  if (!training) return x;
  const int64_t H = x.size(1), W = x.size(2);
  const bool rows = mode_ != "horizontal", columns = mode_ != "vertical";
  using backend::ImageAxisKind;
  std::array<backend::ImageAxisSpec, 2> axes;
  axes[0] = {.kind = rows ? ImageAxisKind::Flip : ImageAxisKind::Fixed, .size = H};
  axes[1] = {.kind = columns ? ImageAxisKind::Flip : ImageAxisKind::Fixed, .size = W};
  // Whole pixels: nearest reads each one exactly, and its gradient is the flip of dy.
  return resample_images(x, seed_state(), stream_key(), draw(), axes, {H, W}, Interpolation::Nearest,
                         FillMode::Constant, 0.0, true);
}

Config RandomFlip::get_config() const {
  return {{"mode", mode_}, {"seed", seed() ? Config(*seed()) : Config(nullptr)}, {"data_format", "channels_last"}};
}

RandomFlip RandomFlip::from_config(const Config& config) {
  const auto f = config_fields(config, "RandomFlip");
  if (f.has("data_format") && f.string("data_format") != "channels_last")
    f.fail("data_format \"" + f.string("data_format") + "\" is not supported; expected \"channels_last\"");
  RandomFlipOptions options;
  if (f.has("seed"))
    options.seed = f.integer("seed", std::numeric_limits<int64_t>::min(), std::numeric_limits<int64_t>::max());
  return RandomFlip(string_or(f, "mode", "horizontal_and_vertical"), options);
}

}  // namespace kiln::layers
