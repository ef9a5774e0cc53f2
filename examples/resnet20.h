// ResNet-20 for CIFAR-10 (He et al. 2016, n = 3) written with kiln's functional API; shared by
// examples/cifar10_resnet.cpp and the model-zoo benchmark (bench/zoo), so both train one network.
#pragma once

#include <kiln/kiln.h>

#include <cstdint>

namespace examples {

/// Convolution (no bias: BatchNormalization follows), BatchNormalization, and ReLU when asked.
inline kiln::SymbolicTensor conv_bn(const kiln::SymbolicTensor& x, int64_t filters, int64_t kernel, int64_t stride,
                                    bool relu) {
  namespace layers = kiln::layers;
  kiln::SymbolicTensor h =
      layers::Conv2D(filters, {kernel, kernel}, {.strides = {stride, stride}, .padding = "same", .use_bias = false})(x);
  h = layers::BatchNormalization()(h);
  return relu ? layers::Activation("relu")(h) : h;
}

/// A basic block: two 3x3 conv-BN, the shortcut (a 1x1 projection with BN where the shape changes)
/// added, ReLU.
inline kiln::SymbolicTensor basic_block(const kiln::SymbolicTensor& x, int64_t filters, int64_t stride) {
  namespace layers = kiln::layers;
  const kiln::SymbolicTensor h = conv_bn(conv_bn(x, filters, 3, stride, true), filters, 3, 1, false);
  const bool same_shape = stride == 1 && x.shape()[-1] == filters;
  const kiln::SymbolicTensor shortcut = same_shape ? x : conv_bn(x, filters, 1, stride, false);
  return layers::Activation("relu")(layers::Add()({h, shortcut}));
}

/// ResNet-20 on 32x32x3 input: a 3x3 conv-BN-ReLU, three stages of three basic blocks (16, 32 and 64
/// filters; the first block of the second and third stage halves the size), global average pooling
/// and Dense(10) logits (float32 under a mixed precision policy, Keras' advice; the policy is read
/// as the layers are built, so set it before calling).
inline kiln::Model resnet20() {
  namespace layers = kiln::layers;
  const kiln::SymbolicTensor input = kiln::Input({32, 32, 3});
  kiln::SymbolicTensor h = conv_bn(input, 16, 3, 1, true);
  for (const int64_t filters : {16, 32, 64})
    for (int block = 0; block < 3; ++block) h = basic_block(h, filters, block == 0 && filters != 16 ? 2 : 1);
  h = layers::GlobalAveragePooling2D()(h);
  return kiln::Model(input, layers::Dense(10, {.dtype = "float32"})(h), "resnet20");
}

}  // namespace examples
