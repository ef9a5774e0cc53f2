// CPU convolutions of few filters by direct summation: each output pixel's filters are summed in
// vector registers straight from the input, without unrolling patches into a matrix. With 16
// filters, im2col writes nine copies of the input and a GEMM of 16 columns reads them back, which
// costs more than the products; here a block of output pixels keeps all its filters' sums in
// registers while the input and the weights stream from cache. cpu_conv.cpp decides where it runs
// (bench/README.md has the measurements: layers of up to 16 channels, then of up to 128).
#pragma once

#include "backend/backend.h"

namespace kiln::backend {

/// Whether this build has the direct path: x86-64 code of AVX2 and FMA (the default level, not
/// x86-64-v2 builds such as MinGW's).
bool direct_conv_available();

/// Whether the forward pass and the filter gradient of `g` run by direct summation in this build: a
/// stride of 1, paddings on every side from 0 to the window's size less one, 4 to 16 filters, at
/// most 128 channels, float32, and not turned off by set_conv_direct. The data gradient runs by it
/// where direct_conv_data_fits(g).
bool direct_conv_fits(const Conv2dGeometry& g);

/// Whether the data gradient of `g` runs by direct summation: the forward pass of dy with the
/// filter turned and its channels swapped fits, with 8 or 16 channels (its filters).
bool direct_conv_data_fits(const Conv2dGeometry& g);

/// Turns the direct path off or back on: for the tests and benchmarks that compare it with
/// im2col + GEMM. Returns the previous setting.
bool set_conv_direct(bool enabled);

/// y = relu?(conv(x, w) + bias), NHWC, w [KH, KW, C, F]; `bias` may be null. Needs direct_conv_fits.
void direct_conv2d_forward(const Conv2dGeometry& g, const float* x, const float* w, const float* bias, bool relu,
                           float* y);

/// dx = the gradient of conv(x, w) with respect to x, every element written. Needs
/// direct_conv_data_fits.
void direct_conv2d_backward_data(const Conv2dGeometry& g, const float* dy, const float* w, float* dx);

/// dw (and db unless null) = the gradients of conv(x, w) + bias with respect to w and the bias, for
/// the output gradient dy, or dy * relu'(relu_y) when relu_y (the fused ReLU's output) is given.
/// The sums run over a fixed split of the batch, so the result does not depend on the thread count.
/// Needs direct_conv_fits.
void direct_conv2d_backward_filter(const Conv2dGeometry& g, const float* x, const float* dy, const float* relu_y,
                                   float* dw, float* db);

}  // namespace kiln::backend
