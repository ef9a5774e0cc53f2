// Image resizing as TensorFlow's tf.image.resize (antialias=False), which Keras'
// image_dataset_from_directory calls: half-pixel centers, bilinear or nearest, float32 output.
#pragma once

#include <cstdint>

namespace kiln::utils {

/// A region of a uint8 HWC image: `height` x `width` pixels of `channels` bytes starting at `data`,
/// rows `row_stride` bytes apart (a crop of a larger image keeps that image's stride).
struct ImageView {
  const uint8_t* data = nullptr;
  int64_t height = 0;
  int64_t width = 0;
  int64_t channels = 0;
  int64_t row_stride = 0;
};

/// The interpolations implemented (Keras' "bilinear" and "nearest").
enum class Interpolation { kBilinear, kNearest };

/// Resizes `src` to out_height x out_width x src.channels float32 values in `dst` (HWC, contiguous),
/// with TensorFlow's arithmetic: the input coordinate of output pixel x is (x + 0.5) * scale - 0.5
/// (scale = in / out, in float32); bilinear takes floor and ceil of it clamped to the image and
/// interpolates rows then columns (top + (bottom - top) * dy of left + (right - left) * dx);
/// nearest takes min(floor((x + 0.5) * scale), in - 1).
void resize_image(const ImageView& src, Interpolation interpolation, int64_t out_height, int64_t out_width, float* dst);

/// Keras' smart_resize crop: the largest centered window of `src` with the aspect ratio
/// out_height : out_width (crop_to_aspect_ratio=True), as a view of the same pixels.
ImageView center_crop_to_aspect(const ImageView& src, int64_t out_height, int64_t out_width);

}  // namespace kiln::utils
