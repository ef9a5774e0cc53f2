// TensorFlow's resize arithmetic (resize_bilinear_op.cc, resize_nearest_neighbor_op.cc with
// half_pixel_centers=True), in float32 and in the same order, so results agree with tf.image.resize
// to float32 rounding. H, W: input rows and columns; OH, OW: output; C: channels.
#include "utils/image_resize.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace kiln::utils {

namespace {

// One output coordinate's two input neighbours and the weight of the second.
struct Lerp {
  int64_t lower = 0;
  int64_t upper = 0;
  float weight = 0.0f;
};

std::vector<Lerp> bilinear_weights(int64_t in_size, int64_t out_size) {
  const float scale = static_cast<float>(in_size) / static_cast<float>(out_size);
  std::vector<Lerp> w(static_cast<std::size_t>(out_size));
  for (int64_t i = 0; i < out_size; ++i) {
    const float in = (static_cast<float>(i) + 0.5f) * scale - 0.5f;
    const float in_floor = std::floor(in);
    // The weight keeps the unclamped floor: left of the first pixel center both neighbours are
    // pixel 0, whatever the weight.
    w[i] = {std::max(static_cast<int64_t>(in_floor), int64_t{0}),
            std::min(static_cast<int64_t>(std::ceil(in)), in_size - 1), in - in_floor};
  }
  return w;
}

std::vector<int64_t> nearest_indices(int64_t in_size, int64_t out_size) {
  const float scale = static_cast<float>(in_size) / static_cast<float>(out_size);
  std::vector<int64_t> idx(static_cast<std::size_t>(out_size));
  for (int64_t i = 0; i < out_size; ++i) {
    const auto in = static_cast<int64_t>(std::floor((static_cast<float>(i) + 0.5f) * scale));
    idx[i] = std::max(int64_t{0}, std::min(in, in_size - 1));
  }
  return idx;
}

}  // namespace

void resize_image(const ImageView& src, Interpolation interpolation, int64_t out_height, int64_t out_width,
                  float* dst) {
  const int64_t C = src.channels;
  if (interpolation == Interpolation::kNearest) {
    const std::vector<int64_t> ys = nearest_indices(src.height, out_height);
    const std::vector<int64_t> xs = nearest_indices(src.width, out_width);
    for (int64_t y = 0; y < out_height; ++y) {
      const uint8_t* row = src.data + ys[y] * src.row_stride;
      for (int64_t x = 0; x < out_width; ++x)
        for (int64_t c = 0; c < C; ++c) *dst++ = static_cast<float>(row[xs[x] * C + c]);
    }
    return;
  }
  const std::vector<Lerp> ys = bilinear_weights(src.height, out_height);
  const std::vector<Lerp> xs = bilinear_weights(src.width, out_width);
  for (int64_t y = 0; y < out_height; ++y) {
    const uint8_t* top = src.data + ys[y].lower * src.row_stride;
    const uint8_t* bottom = src.data + ys[y].upper * src.row_stride;
    const float dy = ys[y].weight;
    for (int64_t x = 0; x < out_width; ++x) {
      const int64_t l = xs[x].lower * C;
      const int64_t r = xs[x].upper * C;
      const float dx = xs[x].weight;
      for (int64_t c = 0; c < C; ++c) {
        const auto top_left = static_cast<float>(top[l + c]);
        const auto top_right = static_cast<float>(top[r + c]);
        const auto bottom_left = static_cast<float>(bottom[l + c]);
        const auto bottom_right = static_cast<float>(bottom[r + c]);
        const float t = top_left + (top_right - top_left) * dx;
        const float b = bottom_left + (bottom_right - bottom_left) * dx;
        *dst++ = t + (b - t) * dy;
      }
    }
  }
}

ImageView center_crop_to_aspect(const ImageView& src, int64_t out_height, int64_t out_width) {
  // Keras' smart_resize: float32 quotients truncated to int32, kept within [1, side], then the
  // window's start, truncated the same way.
  const int64_t crop_height = std::clamp<int64_t>(
      static_cast<int64_t>(static_cast<float>(src.width * out_height) / static_cast<float>(out_width)), 1, src.height);
  const int64_t crop_width = std::clamp<int64_t>(
      static_cast<int64_t>(static_cast<float>(src.height * out_width) / static_cast<float>(out_height)), 1, src.width);
  const auto top = static_cast<int64_t>(static_cast<float>(src.height - crop_height) / 2.0f);
  const auto left = static_cast<int64_t>(static_cast<float>(src.width - crop_width) / 2.0f);
  ImageView crop = src;
  crop.data = src.data + top * src.row_stride + left * src.channels;
  crop.height = crop_height;
  crop.width = crop_width;
  return crop;
}

}  // namespace kiln::utils
