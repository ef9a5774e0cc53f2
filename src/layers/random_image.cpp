// RandomImageLayer: the counter state of the random image layers and their shared resampling step.
#include "layers/random_image.h"

#include "kiln/error.h"
#include "kiln/random.h"
#include "layers/random_stream.h"
#include "ops/image_random.h"

namespace kiln::layers {

RandomImageLayer::RandomImageLayer(std::optional<int64_t> seed, uint64_t draw, std::vector<int64_t> input_shape,
                                   const std::string& dtype)
    : seed_(seed), draw_(draw) {
  declare(std::move(input_shape), dtype);
}

void RandomImageLayer::create_weights(const Shape&) {
  add_weight(kStreamCounter, {1}, CounterStart(seed_.has_value()), {.trainable = false, .in_weights = false});
}

Tensor& RandomImageLayer::seed_state() { return weight(kStreamCounter); }

uint64_t RandomImageLayer::stream_key() const { return layers::stream_key(seed_); }

void RandomImageLayer::check_image(const Shape& input_shape) const {
  if (input_shape.ndim() != 3 || input_shape.numel() == 0)
    throw Error(name_, "input shape " + input_shape.batch_str() +
                           "; expected images (batch, height, width, channels), channels_last, none empty");
}

Tensor resample_images(const Tensor& x, Tensor& counter, uint64_t key, uint64_t draw,
                       const std::array<backend::ImageAxisSpec, 2>& axes, std::array<int64_t, 2> size,
                       Interpolation interpolation, FillMode fill_mode, double fill_value, bool advance) {
  if (counter.device() != x.device())
    throw Error("resample_images", "the layer's state is on " + counter.device().str() + " and its input on " +
                                       x.device().str() + "; expected both on one device (move the model with .to())");
  // In a data-parallel fit, this shard's samples draw as those samples of the global batch would.
  const int64_t n = x.size(0);
  const Tensor t = random_image_transforms(axes, n, key, counter, draw, x.dtype(), shard_draw_offset(n, 1));
  Tensor y = image_transform(x, t, size, interpolation, fill_mode, fill_value);
  // After the draw in stream order; the transforms are a tensor of their own, so the backward
  // sees this step's map whatever the counter does next.
  if (advance) backend::get(counter.device()).advance_counter(static_cast<int64_t*>(counter.raw_data()));
  return y;
}

Tensor crop_images(const Tensor& x, Tensor& counter, std::array<int64_t, 2> top_left, std::array<int64_t, 2> size) {
  std::array<backend::ImageAxisSpec, 2> axes;
  axes[0] = {.kind = backend::ImageAxisKind::Fixed, .scale = 1.0, .offset = static_cast<double>(top_left[0])};
  axes[1] = {.kind = backend::ImageAxisKind::Fixed, .scale = 1.0, .offset = static_cast<double>(top_left[1])};
  return resample_images(x, counter, 0, 0, axes, size, Interpolation::Nearest, FillMode::Constant, 0.0, false);
}

}  // namespace kiln::layers
