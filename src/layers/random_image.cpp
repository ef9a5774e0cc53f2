// RandomImageLayer: the counter state of the random image layers and their shared resampling step.
#include "layers/random_image.h"

#include <sstream>

#include "kiln/error.h"
#include "kiln/random.h"
#include "ops/image_random.h"

namespace kiln::layers {

namespace {

constexpr const char* kCounter = "seed_generator_state";

// The Philox key of a layer without a seed (Dropout's): such a layer's randomness lies in where its
// counter starts, drawn at build and saved with the model.
constexpr uint64_t kUnseededKey = 0x9e3779b97f4a7c15ULL;

// The counter's first value: 0 with a seed, else a point drawn from the model's generator, below
// 2^62 so that advancing it never overflows (Dropout's rule).
class CounterStart : public Initializer {
 public:
  explicit CounterStart(bool seeded) : seeded_(seeded) {}
  std::string class_name() const override { return "CounterStart"; }
  Tensor operator()(const Shape& shape, Generator& gen, Device device) const override {
    const int64_t start = seeded_ ? 0 : static_cast<int64_t>(gen.below(uint64_t{1} << 62));
    return Tensor::from_vector<int64_t>({start}, shape, device);
  }

 private:
  bool seeded_;
};

}  // namespace

std::string number_text(double v) {
  std::ostringstream os;
  os << v;
  return os.str();
}

RandomImageLayer::RandomImageLayer(std::optional<int64_t> seed, uint64_t draw, std::vector<int64_t> input_shape)
    : seed_(seed), draw_(draw) {
  input_shape_ = std::move(input_shape);
}

void RandomImageLayer::create_weights(const Shape&) {
  add_weight(kCounter, {1}, CounterStart(seed_.has_value()), {.trainable = false, .in_weights = false});
}

Tensor& RandomImageLayer::seed_state() { return weight(kCounter); }

uint64_t RandomImageLayer::stream_key() const { return seed_ ? static_cast<uint64_t>(*seed_) : kUnseededKey; }

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
  const Tensor t = random_image_transforms(axes, x.size(0), key, counter, draw, x.dtype());
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
