// CPU 3x3 stride-1 convolutions by Winograd's minimal filtering F(4x4, 3x3) (Lavin and Gray, "Fast
// Algorithms for Convolutional Neural Networks", 2016): 36 multiplications per 4x4 outputs and
// channel pair instead of 144, in 36 matrix products over tiles. The forward pass and the data
// gradient (a forward pass of dy with the filter turned by 180 degrees and its channels swapped)
// take it, and the filter gradient its adjoint. cpu_conv.cpp decides where it runs.
#pragma once

#include "backend/backend.h"

namespace kiln::backend {

/// Whether the forward pass and the gradients of `g` run by Winograd: a 3x3 window at stride 1,
/// padding of at most 2, channels and filters both at least the size where it beats im2col + GEMM
/// (bench/README.md has the measurement), and not turned off by set_conv_winograd.
bool winograd_fits(const Conv2dGeometry& g);

/// Whether winograd_fits may say yes (by default it may).
bool conv_winograd_enabled();

/// Turns the Winograd path off or back on: for the tests and benchmarks that compare it with
/// im2col + GEMM. Returns the previous setting.
bool set_conv_winograd(bool enabled);

/// y = relu?(conv(x, w) + bias), NHWC, w [3, 3, C, F]; `bias` may be null. Same contract as
/// Backend::conv2d_forward. Needs a geometry winograd_fits accepts but for the enabled switch.
template <typename T>
void winograd_conv2d_forward(const Conv2dGeometry& g, const T* x, const T* w, const T* bias, bool relu, T* y);

/// dx = the gradient of conv(x, w) with respect to x, NHWC; every element of dx is written.
template <typename T>
void winograd_conv2d_backward_data(const Conv2dGeometry& g, const T* dy, const T* w, T* dx);

/// dw (and db unless null) = the gradients of conv(x, w) + bias with respect to w and the bias, for
/// the output gradient dy, or dy * relu'(relu_y) when relu_y (the fused ReLU's output) is given.
/// Same contract as Backend::conv2d_backward_filter.
template <typename T>
void winograd_conv2d_backward_filter(const Conv2dGeometry& g, const T* x, const T* dy, const T* relu_y, T* dw, T* db);

}  // namespace kiln::backend
