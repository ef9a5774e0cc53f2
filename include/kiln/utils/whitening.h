/// A convolution kernel that whitens image patches, computed from the data: the first layer of the
/// fastest CIFAR-10 training recipes (Page's and Jordan's) is a 2x2 'valid' Conv2D whose filters are
/// the eigenvectors of the training patches' covariance, each divided by the square root of its
/// eigenvalue, so the layer's outputs are decorrelated and of unit variance from the first step.
///
///     auto kernel = kiln::utils::patch_whitening_kernel(train_images.slice_rows(0, 5000), {2, 2});
///     // a Conv2D(kernel.size(3), {2, 2}) ('valid', stride 1) as the model's first layer; once built:
///     model.layers()[0]->set_weight("kernel", kernel);
#pragma once

#include <array>
#include <cstdint>

#include "kiln/tensor.h"

namespace kiln::utils {

/// What patch_whitening_kernel computes besides the patches' covariance.
struct PatchWhiteningOptions {
  /// Added to every eigenvalue before its inverse square root: filters of near-zero variance get a
  /// bounded gain instead of an exploding one. 5e-4 is the fast CIFAR-10 recipes' value for images
  /// normalized to unit variance per channel.
  double epsilon = 5e-4;
  /// Also return every filter negated (twice the filters: [w_0 ... w_{D-1}, -w_0 ... -w_{D-1}]), as
  /// those recipes do, so that a ReLU-like activation after the layer keeps both signs.
  bool negated = true;
};

/// The kernel [KH, KW, C, F] of a stride-1 'valid' Conv2D (cross-correlation, kiln's and Keras'
/// layout) that whitens the KH x KW patches of `images` ([N, H, W, C], float32 or float64, any
/// device; typically a few thousand normalized training images).
///
/// With D = KH*KW*C and the patches' second-moment matrix S = mean over every patch p of p p^T (not
/// centred: the recipes' choice; normalize the images first), filter k < D is the k-th eigenvector
/// of S by decreasing eigenvalue lambda_k, scaled by 1 / sqrt(lambda_k + epsilon), so the layer's
/// outputs on these images have second moments lambda_k / (lambda_k + epsilon) and none across
/// filters. Each eigenvector's sign is fixed so that its component of largest magnitude is positive
/// (an eigensolver's sign is arbitrary; this makes the result reproducible). F = D, or 2 * D with
/// `negated`. Returned as float32 on the CPU. Computed in float64; for images on a GPU the patches'
/// products are summed there and only the D x D matrix is read back.
///
/// Throws kiln::Error naming what was wrong: `images` not 4-D, not floating, smaller than the
/// kernel, or holding a NaN or infinity (with its index); a kernel size below 1; a negative or
/// non-finite epsilon; an eigenvalue plus epsilon that is not positive (the patches span fewer
/// than D directions, e.g. constant images, and epsilon is 0).
Tensor patch_whitening_kernel(const Tensor& images, std::array<int64_t, 2> kernel_size,
                              const PatchWhiteningOptions& options = {});

}  // namespace kiln::utils
