// Dropout: inverted dropout in training from a counter-based stream the layer owns, the identity
// otherwise.
#include "kiln/layers/dropout.h"

#include <cmath>
#include <limits>
#include <sstream>

#include "backend/backend.h"
#include "kiln/error.h"
#include "kiln/ops.h"
#include "kiln/random.h"
#include "layers/config_fields.h"

namespace kiln::layers {

namespace {

const RegisterLayer<Dropout> registered("Dropout");

constexpr const char* kCounter = "seed_generator_state";

// The Philox key of a layer without a seed. Such a layer's randomness lies in where its counter
// starts (drawn at build, saved with the model); a key no seed of 0 collides with keeps that stream
// apart from a seeded layer's, whose counter starts at 0.
constexpr uint64_t kUnseededKey = 0x9e3779b97f4a7c15ULL;

// The counter's first value: 0 with a seed, else a point drawn from the model's generator, below
// 2^62 so that advancing it never overflows.
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

std::string number_str(double v) {
  std::ostringstream os;
  os << v;
  return os.str();
}

}  // namespace

Dropout::Dropout(double rate, DropoutOptions options) : rate_(rate), options_(std::move(options)) {
  name_ = "dropout";
  if (!(rate >= 0.0 && rate < 1.0)) throw Error(name_, "rate is " + number_str(rate) + "; expected a value in [0, 1)");
  input_shape_ = options_.input_shape;
}

Shape Dropout::compute_output_shape(const Shape& input_shape) const { return input_shape; }

void Dropout::create_weights(const Shape&) {
  add_weight(kCounter, {1}, CounterStart(options_.seed.has_value()), {.trainable = false, .in_weights = false});
}

Tensor Dropout::call(const Tensor& x, bool training) {
  if (!training || rate_ == 0.0) return x;
  Tensor& counter = weight(kCounter);
  const uint64_t key = options_.seed ? static_cast<uint64_t>(*options_.seed) : kUnseededKey;
  Tensor y = dropout(x, rate_, key, counter, /*draw=*/0);
  // On the device and in place: a recorded step replays this increment too, so each replay draws
  // the mask the next eager step would have drawn. The op copied the counter for its backward.
  backend::get(counter.device()).advance_counter(static_cast<int64_t*>(counter.raw_data()));
  return y;
}

Config Dropout::get_config() const {
  return {
      {"rate", rate_}, {"seed", options_.seed ? Config(*options_.seed) : Config(nullptr)}, {"noise_shape", nullptr}};
}

Dropout Dropout::from_config(const Config& config) {
  const auto f = config_fields(config, "Dropout");
  if (f.has("noise_shape")) f.fail("noise_shape is not supported; expected null (the mask covers every element)");
  DropoutOptions options;
  if (f.has("seed"))
    options.seed = f.integer("seed", std::numeric_limits<int64_t>::min(), std::numeric_limits<int64_t>::max());
  return Dropout(f.number("rate"), options);
}

}  // namespace kiln::layers
