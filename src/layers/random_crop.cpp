// RandomCrop: a random window per image in training; Keras' centred window of the target's aspect
// ratio, resized to the target, in inference and (Keras 3's variant) for images smaller than the
// target.
#include <algorithm>
#include <limits>

#include "kiln/error.h"
#include "layers/config_fields.h"
#include "layers/random_image.h"

namespace kiln::layers {

namespace {

const RegisterLayer<RandomCrop> registered("RandomCrop");

constexpr uint64_t kCropDraw = 3;

}  // namespace

RandomCrop::RandomCrop(int64_t height, int64_t width, RandomCropOptions options)
    : RandomImageLayer(options.seed, kCropDraw, options.input_shape, options.dtype),
      height_(height),
      width_(width),
      options_(std::move(options)) {
  name_ = "random_crop";
  if (height < 1 || width < 1)
    throw Error(name_, "target size " + std::to_string(height) + "x" + std::to_string(width) +
                           "; expected a height and a width of at least 1");
}

Shape RandomCrop::compute_output_shape(const Shape& input_shape) const {
  check_image(input_shape);
  return {height_, width_, input_shape[2]};
}

Tensor RandomCrop::call(const Tensor& x, bool training) {
  const int64_t H = x.size(1), W = x.size(2);
  if (!training || H < height_ || W < width_) return center_resize(x, training);
  using backend::ImageAxisKind;
  std::array<backend::ImageAxisSpec, 2> axes;
  axes[0] = {.kind = ImageAxisKind::Crop, .range = H - height_, .size = H};
  axes[1] = {.kind = ImageAxisKind::Crop, .range = W - width_, .size = W};
  return resample_images(x, seed_state(), stream_key(), draw(), axes, {height_, width_}, Interpolation::Nearest,
                         FillMode::Constant, 0.0, true);
}

// Keras' get_random_transformation when it does not draw: a window whose sides are the input's
// other side times the target's aspect ratio, clamped to the input and truncated as Python's int()
// does, centred (start truncated). In inference (`training` false) that window is resized to the
// target (Keras' documented rule); in training, as Keras 3's transform_images does, a box of the
// target's size from the window's start, clipped to the input, is resized to the target. Two
// passes, crop then resize, so that the resize clamps at the box's edges as TensorFlow's resize of
// the sliced tensor does.
Tensor RandomCrop::center_resize(const Tensor& x, bool training) {
  const int64_t H = x.size(1), W = x.size(2);
  if (H == height_ && W == width_) return x;
  const auto window_side = [](int64_t other, int64_t num, int64_t den, int64_t limit) {
    const auto side = static_cast<int64_t>(static_cast<double>(other * num) / static_cast<double>(den));
    return std::max<int64_t>(std::min(limit, side), 1);
  };
  int64_t box_h = window_side(W, height_, width_, H), box_w = window_side(H, width_, height_, W);
  const auto top = static_cast<int64_t>(static_cast<double>(H - box_h) / 2.0);
  const auto left = static_cast<int64_t>(static_cast<double>(W - box_w) / 2.0);
  if (training) {
    box_h = std::min(H - top, height_);
    box_w = std::min(W - left, width_);
  }
  Tensor& counter = seed_state();
  Tensor box = (box_h == H && box_w == W) ? x : crop_images(x, counter, {top, left}, {box_h, box_w});
  if (box_h == height_ && box_w == width_) return box;
  // TensorFlow's half-pixel resize: output o samples (o + 0.5) scale - 0.5, scale = in / out in
  // float32, clamped to the box (fill "nearest").
  const auto resize_axis = [](int64_t in, int64_t out) {
    const double scale = static_cast<double>(static_cast<float>(in) / static_cast<float>(out));
    return backend::ImageAxisSpec{
        .kind = backend::ImageAxisKind::Fixed, .scale = scale, .offset = 0.5 * scale - 0.5, .size = in};
  };
  return resample_images(box, counter, 0, 0, {resize_axis(box_h, height_), resize_axis(box_w, width_)},
                         {height_, width_}, Interpolation::Bilinear, FillMode::Nearest, 0.0, false);
}

Config RandomCrop::get_config() const {
  return {{"height", height_},
          {"width", width_},
          {"seed", seed() ? Config(*seed()) : Config(nullptr)},
          {"data_format", "channels_last"}};
}

RandomCrop RandomCrop::from_config(const Config& config) {
  const auto f = config_fields(config, "RandomCrop");
  if (f.has("data_format") && f.string("data_format") != "channels_last")
    f.fail("data_format \"" + f.string("data_format") + "\" is not supported; expected \"channels_last\"");
  RandomCropOptions options;
  if (f.has("seed"))
    options.seed = f.integer("seed", std::numeric_limits<int64_t>::min(), std::numeric_limits<int64_t>::max());
  constexpr int64_t kMax = int64_t{1} << 31;
  return RandomCrop(f.integer("height", 1, kMax), f.integer("width", 1, kMax), options);
}

}  // namespace kiln::layers
