// A convolution geometry's cuDNN descriptors and the algorithms chosen for it (once, on first use).
#pragma once

#include <cudnn.h>

#include <cstddef>
#include <cstdint>
#include <memory>

#include "backend/cuda/conv_engine.h"
#include "kiln/dtype.h"

namespace kiln::backend {

struct ConvPlan {
  /// The tensors' element type (kiln's and cuDNN's name for it).
  DType dtype = DType::Float32;
  cudnnDataType_t type = CUDNN_DATA_FLOAT;
  /// The convolution's compute type: float for float16 and bfloat16 tensors (cuDNN's pseudo-half
  /// configurations: float accumulation, each output rounded to 16 bits once), else `type`.
  cudnnDataType_t compute = CUDNN_DATA_FLOAT;
  /// True when float32 may use TF32 tensor cores (CUDNN_TENSOR_OP_MATH); always false for float64.
  bool tf32 = false;
  /// True when only deterministic algorithms may be chosen (enable_op_determinism).
  bool deterministic = false;
  /// True when TensorFlow's padding is asymmetric (or drops input rows): the input is then padded
  /// by a kernel of ours to [N, HP, WP, C] and cuDNN runs without padding.
  bool explicit_pad = false;
  int64_t HP = 0, WP = 0;
  int64_t pad_h = 0, pad_w = 0;  // the padding cuDNN applies (0 with explicit_pad)

  /// True when the plan runs through cuDNN's graph API (float32; conv_engine.h), one engine per
  /// direction, made and chosen at the direction's first call; else the legacy API below.
  bool graph = false;
  std::unique_ptr<ConvEngine> engines[3];  // indexed by ConvDirection

  cudnnTensorDescriptor_t x = nullptr, y = nullptr;
  cudnnFilterDescriptor_t w = nullptr;  // KRSC: [F, KH, KW, C], our HWIO kernel transposed
  cudnnConvolutionDescriptor_t conv = nullptr;

  // The forward pass with bias and ReLU in cuDNN's fused call (created on first use):
  // bias [1, F, 1, 1], and whether cuDNN ran the fused call for this geometry (else our own pass).
  cudnnTensorDescriptor_t bias = nullptr;
  cudnnActivationDescriptor_t relu = nullptr;
  bool fused_tried = false, fused_ok = false;

  bool have_fwd = false, have_bwd_data = false, have_bwd_filter = false;
  cudnnConvolutionFwdAlgo_t fwd{};
  cudnnConvolutionBwdDataAlgo_t bwd_data{};
  cudnnConvolutionBwdFilterAlgo_t bwd_filter{};
  std::size_t fwd_ws = 0, bwd_data_ws = 0, bwd_filter_ws = 0;

  ConvPlan() = default;
  ConvPlan(const ConvPlan&) = delete;
  ConvPlan& operator=(const ConvPlan&) = delete;
  ~ConvPlan() {
    if (relu) cudnnDestroyActivationDescriptor(relu);
    if (bias) cudnnDestroyTensorDescriptor(bias);
    if (conv) cudnnDestroyConvolutionDescriptor(conv);
    if (w) cudnnDestroyFilterDescriptor(w);
    if (y) cudnnDestroyTensorDescriptor(y);
    if (x) cudnnDestroyTensorDescriptor(x);
  }
};

}  // namespace kiln::backend
