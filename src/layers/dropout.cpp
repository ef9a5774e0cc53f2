// Dropout: inverted dropout in training from a counter-based stream the layer owns, the identity
// otherwise.
#include "kiln/layers/dropout.h"

#include <cmath>
#include <limits>

#include "backend/backend.h"
#include "kiln/error.h"
#include "kiln/ops.h"
#include "kiln/random.h"
#include "layers/config_fields.h"
#include "layers/random_stream.h"

namespace kiln::layers {

namespace {

const RegisterLayer<Dropout> registered("Dropout");

}  // namespace

Dropout::Dropout(double rate, DropoutOptions options) : rate_(rate), options_(std::move(options)) {
  name_ = "dropout";
  if (!(rate >= 0.0 && rate < 1.0)) throw Error(name_, "rate is " + number_text(rate) + "; expected a value in [0, 1)");
  declare(options_.input_shape, options_.dtype);
}

Shape Dropout::compute_output_shape(const Shape& input_shape) const { return input_shape; }

void Dropout::create_weights(const Shape&) {
  add_weight(kStreamCounter, {1}, CounterStart(options_.seed.has_value()), {.trainable = false, .in_weights = false});
}

Tensor Dropout::call(const Tensor& x, bool training) {
  if (!training || rate_ == 0.0) return x;
  Tensor& counter = weight(kStreamCounter);
  const uint64_t key = stream_key(options_.seed);
  // In a data-parallel fit, this shard's elements draw as those rows of the global batch would.
  const int64_t rows = x.ndim() > 0 ? x.size(0) : 0;
  const int64_t first = rows > 0 ? shard_draw_offset(rows, x.numel() / rows) : 0;
  Tensor y = dropout(x, rate_, key, counter, /*draw=*/0, first);
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
