/// Differentiable ops as free functions. Each checks its shapes, runs on its inputs' device and
/// records its backward rule when gradients are tracked.
#pragma once

#include <array>
#include <string>
#include <vector>

#include "kiln/tensor.h"

namespace kiln {

// ---- elementwise with broadcasting: shapes equal, one a trailing suffix of the other
//      (e.g. [N, C] and [C]: a row broadcast), or one with a single element ----
/// a + b
Tensor add(const Tensor& a, const Tensor& b);
/// a - b
Tensor sub(const Tensor& a, const Tensor& b);
/// a * b (elementwise)
Tensor mul(const Tensor& a, const Tensor& b);
/// a / b (elementwise)
Tensor div(const Tensor& a, const Tensor& b);
/// The larger of a and b (elementwise); a NaN in either gives NaN. The gradient goes to a where
/// a >= b (ties included) and to b elsewhere, as TensorFlow's maximum.
Tensor maximum(const Tensor& a, const Tensor& b);
/// a * s
Tensor mul(const Tensor& a, double s);
/// a + s
Tensor add(const Tensor& a, double s);
/// -a
Tensor neg(const Tensor& a);

// ---- dtype ----
/// x as `dtype` (Keras' ops.cast): values converted as Tensor::astype does (16-bit floats rounded
/// once to nearest even). Differentiable between floating dtypes: the gradient is cast back to
/// x's dtype, which is how a layer computing in bfloat16 sends float32 gradients to its float32
/// weights. x itself when it already has `dtype`.
Tensor cast(const Tensor& x, DType dtype);

// ---- activations and other unary functions ----
/// max(x, 0); relu(NaN) is NaN (as in PyTorch), and its gradient passes where x is NaN.
Tensor relu(const Tensor& x);
/// 1 / (1 + exp(-x)).
Tensor sigmoid(const Tensor& x);
/// Hyperbolic tangent.
Tensor tanh(const Tensor& x);
/// e to the power x.
Tensor exp(const Tensor& x);
/// Natural logarithm.
Tensor log(const Tensor& x);
/// x * x.
Tensor square(const Tensor& x);
/// Square root.
Tensor sqrt(const Tensor& x);
/// |x|; the gradient is sign(x), 0 at 0 (TensorFlow's); a NaN stays NaN.
Tensor abs(const Tensor& x);
/// min(max(x, lo), hi); the gradient passes where lo <= x <= hi.
Tensor clip(const Tensor& x, double lo, double hi);
/// Gaussian error linear unit, Keras' gelu: x * Phi(x) = 0.5 x (1 + erf(x / sqrt 2)) (computed as
/// 0.5 x erfc(-x / sqrt 2), which keeps its precision for negative x), or with `approximate`
/// 0.5 x (1 + tanh(sqrt(2 / pi) (x + 0.044715 x^3))).
Tensor gelu(const Tensor& x, bool approximate = false);
/// x * sigmoid(x) (Keras' silu, also called swish).
Tensor silu(const Tensor& x);
/// x where x > 0, else alpha (exp(x) - 1); the gradient at 0 is alpha (TensorFlow's). `alpha` must
/// be finite.
Tensor elu(const Tensor& x, double alpha = 1.0);
/// x where x > 0, else negative_slope * x (Keras 3's default slope 0.2); the gradient at 0 is the
/// slope. A NaN input gives NaN, and its gradient is scaled by the slope (TensorFlow's and
/// PyTorch's rule). `negative_slope` must be finite.
Tensor leaky_relu(const Tensor& x, double negative_slope = 0.2);

// ---- reductions ----
/// Sum of all elements (a one-element tensor of shape []).
Tensor sum(const Tensor& x);
/// Sum over dimension `axis` (0 or the last), removing it.
Tensor sum(const Tensor& x, int64_t axis);
/// Mean of all elements.
Tensor mean(const Tensor& x);
/// Mean over dimension `axis` (0 or the last), removing it.
Tensor mean(const Tensor& x, int64_t axis);

// ---- linear algebra ----
/// Matrix product of 2-D tensors: [M, K] x [K, N] -> [M, N].
Tensor matmul(const Tensor& a, const Tensor& b);
/// A dense layer's math: activation(x kernel + bias) for x [M, K], kernel [K, N] and bias [N] (an
/// undefined Tensor for none); `activation` is "linear" (or "") or "relu". Equal to matmul, add
/// and relu, in fewer kernels: on a GPU the bias and ReLU ride on the GEMM (cuBLASLt epilogues),
/// and the backward computes the kernel's and the bias' gradients in one GEMM.
Tensor dense(const Tensor& x, const Tensor& kernel, const Tensor& bias = Tensor(),
             const std::string& activation = "linear");

// ---- softmax family, over the last dimension ----
/// exp(x) / sum(exp(x)) over the last dimension.
Tensor softmax(const Tensor& x);
/// log(softmax(x)), computed without forming softmax(x).
Tensor log_softmax(const Tensor& x);

// ---- losses (mean over all elements / rows) ----
/// Mean squared error: mean((pred - target)^2); shapes must agree.
Tensor mse(const Tensor& pred, const Tensor& target);
/// Mean over rows of -log_softmax(logits)[label]; logits [N, C] float, labels [N] int32 in [0, C).
Tensor sparse_softmax_cross_entropy(const Tensor& logits, const Tensor& labels);
/// Elementwise binary cross-entropy of logits against targets of the same shape (TensorFlow's
/// sigmoid_cross_entropy_with_logits): max(x, 0) - x z + log1p(exp(-|x|)), finite for every finite
/// x. Gradients: sigmoid(x) - z for the logits, -x for the targets.
Tensor sigmoid_cross_entropy(const Tensor& logits, const Tensor& targets);

// ---- shape ----
/// View with a new shape (differentiable).
Tensor reshape(const Tensor& x, const Shape& shape);
/// [N, ...] -> [N, prod(...)] (differentiable).
Tensor flatten(const Tensor& x);
/// Rows of `x` picked by int32 `indices` (same device): [len(indices), ...]. Not differentiable.
Tensor take_rows(const Tensor& x, const Tensor& indices);
/// Index of the largest element of each row of a 2-D tensor, as int32 [N]: the first of equal maxima, the first
/// NaN where a row holds one (NumPy's argmax). Not differentiable.
Tensor argmax(const Tensor& x);

// ---- layout: boxes of a tensor copied into another (up to 8 dimensions, any dtype) ----
/// The box of `x` that starts at `begin` and has extent `size` (TensorFlow's slice; a size of -1
/// runs to the end of its dimension). The gradient is zero outside the box.
Tensor slice(const Tensor& x, const std::vector<int64_t>& begin, const std::vector<int64_t>& size);
/// `x` with paddings[d] = {before, after} zeros added on each side of dimension d (TensorFlow's pad
/// with constant zeros); one pair per dimension, none negative.
Tensor pad(const Tensor& x, const std::vector<std::array<int64_t, 2>>& paddings);
/// The tensors joined along `axis` (negative counts from the end); all other dimensions, the
/// dtype and the device must agree. The gradient of each input is its slice of the output's.
Tensor concatenate(const std::vector<Tensor>& tensors, int64_t axis = -1);
/// `x` with its dimensions reordered: output dimension i is input dimension dims[i] (TensorFlow's
/// transpose with perm = dims; 0-based). The gradient is permuted back.
Tensor permute(const Tensor& x, const std::vector<int64_t>& dims);

// ---- convolution and pooling, channels_last (NHWC) ----
/// How a window meets the border, as in Keras.
enum class Padding { Valid, Same };
/// Parses "valid" or "same".
Padding parse_padding(const std::string& name, const std::string& op);

/// 2-D convolution: x [N, H, W, C], kernel [KH, KW, C, F] -> [N, OH, OW, F].
Tensor conv2d(const Tensor& x, const Tensor& kernel, std::array<int64_t, 2> strides = {1, 1},
              Padding padding = Padding::Valid);
/// A Conv2D layer's math: activation(conv2d(x, kernel) + bias), `bias` [F] (an undefined Tensor for
/// none), `activation` "linear" (or "") or "relu". Equal to conv2d, add and relu, in fewer passes:
/// the bias and the ReLU ride on the convolution's own passes over the output, forward and
/// backward (on a GPU, cuDNN's fused call and kiln's filter-gradient kernel).
Tensor conv2d(const Tensor& x, const Tensor& kernel, const Tensor& bias, const std::string& activation,
              std::array<int64_t, 2> strides = {1, 1}, Padding padding = Padding::Valid);
/// Max pooling: x [N, H, W, C] -> [N, OH, OW, C]. A window holding a NaN pools to NaN (as in PyTorch); the
/// gradient goes to the window's first maximum, or its first NaN.
Tensor max_pool2d(const Tensor& x, std::array<int64_t, 2> pool_size, std::array<int64_t, 2> strides,
                  Padding padding = Padding::Valid);
/// Average pooling: x [N, H, W, C] -> [N, OH, OW, C]. With "same" padding each window averages only
/// its cells inside the input (Keras' rule: padded cells are not counted): a corner window of a 3x3
/// pool with stride 1 holds 4 cells and divides by 4. A window holding a NaN pools to NaN. The
/// gradient of each output is spread equally over its window's cells inside the input.
Tensor avg_pool2d(const Tensor& x, std::array<int64_t, 2> pool_size, std::array<int64_t, 2> strides,
                  Padding padding = Padding::Valid);

// ---- image resampling ----
/// How image_transform reads a point outside its input (Keras' fill_mode): Constant gives
/// fill_value (k k | a b c d | k k); Reflect mirrors about the edge (d c b a | a b c d | d c b a);
/// Wrap repeats the image (a b c d | a b c d | a b c d); Nearest repeats the edge (a a | a b c d | d d).
enum class FillMode { Constant, Reflect, Wrap, Nearest };
/// How image_transform samples between pixels (Keras' interpolation).
enum class Interpolation { Bilinear, Nearest };
/// Parses Keras' fill_mode names "constant", "reflect", "wrap" and "nearest"; errors name `op`.
FillMode parse_fill_mode(const std::string& name, const std::string& op);
/// Keras' name of `mode`.
std::string fill_mode_name(FillMode mode);
/// Parses Keras' interpolation names "bilinear" and "nearest"; errors name `op`.
Interpolation parse_interpolation(const std::string& name, const std::string& op);
/// Keras' name of `interpolation`.
std::string interpolation_name(Interpolation interpolation);
/// Per-sample axis-aligned resampling of images x [N, H, W, C] to [N, size[0], size[1], C]:
/// transforms [N, 4] (x's dtype and device) holds each sample's (ay, by, ax, bx), and output pixel
/// (i, j) of sample n samples x at row ay i + by, column ax j + bx (Keras' affine_transform with
/// no rotation or shear). A flip is (-1, H - 1), a translation by d rows (1, -d), a crop starting at
/// row r (1, r). Bilinear interpolation weighs the four neighbours as TensorFlow does; Nearest
/// takes the nearest pixel (halves away from zero). Points outside x are read by `fill_mode`, on
/// the integer grid of pixels (Keras' NumPy backend; TensorFlow's for all modes but Wrap, whose
/// TensorFlow kernel differs at fractional points across the seam and for shifts of H - 1 or more).
/// The gradient goes to x (each input pixel gets the weights with which output pixels read it);
/// transforms get none.
Tensor image_transform(const Tensor& x, const Tensor& transforms, std::array<int64_t, 2> size,
                       Interpolation interpolation = Interpolation::Bilinear, FillMode fill_mode = FillMode::Constant,
                       double fill_value = 0.0);

// ---- counter-based randomness ----
// Numbers come from Philox-4x32-10 (Random123's generator, also cuRAND's and PyTorch's), the same
// bits on every device. The stream (seed, step, draw) of n elements is defined as follows:
//   - step is the int64 stored in `step_counter`, read where the tensor lives (on a GPU, inside the
//     kernel: a recorded step replayed after the counter advances draws new numbers);
//   - element i is word (i mod 4) of the output of block j = floor(i / 4);
//   - block j is Philox-4x32-10 of the counter words (c0, c1, c2, c3) = (j, draw, low 32 bits of
//     step, high 32 bits of step) under the key words (k0, k1) = (low 32 bits of seed, high 32 bits
//     of seed), with Random123's word order (its philox4x32(ctr, key) gives the same four words);
//   - the element's number is u = w / 2^32 for its output word w, in [0, 1).
// draw (< 2^32) tells apart the draws of one step (one per dropout layer, say); a stream holds at
// most 2^34 elements.
/// Uniform [0, 1) numbers of stream (seed, *step_counter, draw) in `shape`, on step_counter's
/// device: u of each element rounded down to `dtype` (float64 holds it exactly; float32 keeps its
/// top 24 bits, so it stays below 1). `step_counter` is a one-element int64 tensor. Not
/// differentiable.
Tensor random_uniform_philox(const Shape& shape, uint64_t seed, const Tensor& step_counter, uint64_t draw,
                             DType dtype = DType::Float32);
/// Inverted dropout (Keras' Dropout in training): y = x * keep / (1 - rate), keep = (u >= rate) for
/// u element i's number of stream (seed, *step_counter, draw), compared exactly (as 32-bit
/// integers). Kept elements are x times 1 / (1 - rate) in x's precision; dropped ones are x * 0, so
/// a NaN stays NaN. The gradient is dy * keep / (1 - rate), with the mask of the forward.
/// `step_counter` is a one-element int64 tensor on x's device; 0 <= rate < 1, and rate 0 returns x.
/// With `first`, x[i] takes element first + i's number instead: x is a slice, from element first,
/// of a larger tensor (a replica's shard of a global batch), and gets that tensor's mask there.
Tensor dropout(const Tensor& x, double rate, uint64_t seed, const Tensor& step_counter, uint64_t draw,
               int64_t first = 0);

// ---- operators ----
/// add(a, b).
inline Tensor operator+(const Tensor& a, const Tensor& b) { return add(a, b); }
/// sub(a, b).
inline Tensor operator-(const Tensor& a, const Tensor& b) { return sub(a, b); }
/// mul(a, b).
inline Tensor operator*(const Tensor& a, const Tensor& b) { return mul(a, b); }
/// div(a, b).
inline Tensor operator/(const Tensor& a, const Tensor& b) { return div(a, b); }
/// mul(a, s).
inline Tensor operator*(const Tensor& a, double s) { return mul(a, s); }
/// mul(a, s).
inline Tensor operator*(double s, const Tensor& a) { return mul(a, s); }
/// add(a, s).
inline Tensor operator+(const Tensor& a, double s) { return add(a, s); }
/// neg(a).
inline Tensor operator-(const Tensor& a) { return neg(a); }

}  // namespace kiln
