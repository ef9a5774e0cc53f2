// The random image layers' shared step: draw each sample's transform on the device from the
// layer's stream, resample, advance the stream's counter on the device.
#pragma once

#include <array>

#include "backend/backend.h"
#include "kiln/layers/preprocessing.h"
#include "layers/config_fields.h"

namespace kiln::layers {

/// image_transform of x to `size` with transforms drawn on x's device by `axes` (rows, columns)
/// from `layer`'s stream (in a data-parallel fit, the transforms of this shard's samples of the
/// global batch: shard_draw_offset); when `advance`, the counter is then incremented on the
/// device, so a recorded step replays the increment and the next replay draws the next step's
/// transforms.
Tensor resample_images(const Tensor& x, Tensor& counter, uint64_t key, uint64_t draw,
                       const std::array<backend::ImageAxisSpec, 2>& axes, std::array<int64_t, 2> size,
                       Interpolation interpolation, FillMode fill_mode, double fill_value, bool advance);

/// `x` cropped to the window of `size` at (top, left), the same for every image (no randomness).
Tensor crop_images(const Tensor& x, Tensor& counter, std::array<int64_t, 2> top_left, std::array<int64_t, 2> size);

}  // namespace kiln::layers
