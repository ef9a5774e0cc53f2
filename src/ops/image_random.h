// The augmentation layers' random per-sample transforms (the maps image_transform applies), drawn
// on the device from the Philox stream at the step a device counter names.
#pragma once

#include <array>
#include <cstdint>

#include "backend/backend.h"
#include "kiln/tensor.h"

namespace kiln {

/// Transforms [n, 4] of `dtype` on step_counter's device for image_transform: each sample's
/// (ay, by, ax, bx) made by axes[0] (rows) and axes[1] (columns) from its two numbers, elements
/// 2k and 2k + 1 of stream (seed, *step_counter, draw) (see backend::ImageAxisKind); with `first`,
/// sample k takes sample first + k's numbers (rows first.. of a larger batch's transforms, a
/// replica's shard). Not differentiable.
Tensor random_image_transforms(const std::array<backend::ImageAxisSpec, 2>& axes, int64_t n, uint64_t seed,
                               const Tensor& step_counter, uint64_t draw, DType dtype, int64_t first = 0);

}  // namespace kiln
