// The list of the backend's functions, written once: Backend's pure virtual functions, each
// device's override declarations and the CUDA module's ABI hash are all expanded from it. Why a
// list: an op's signature written by hand in every backend header drifts, and a stale CUDA module
// would otherwise be accepted whenever someone forgot to bump a version number.
//
// Included several times on purpose (no include guard). Before including it, define
//   KILN_BACKEND_OP(ret, name, params)    a pure virtual function every device implements;
//   KILN_BACKEND_HOOK(ret, name, params)  optional: a virtual function with a default in backend.h,
//                                         overridden by hand where a device has its own.
// `params` is the parenthesised parameter list, followed by qualifiers where there are any. Both
// macros are undefined at the end of this file. Kernels take raw pointers, element counts and
// shapes; arrays are contiguous and row-major; all work is queued on the device's stream, and only
// the copy_to_host family and synchronize() wait for it.
#ifndef KILN_BACKEND_HOOK
#define KILN_BACKEND_HOOK(ret, name, params)
#endif

// ---- memory ----
/// The device's allocator.
KILN_BACKEND_OP(Allocator&, allocator, ())
/// Device-to-device copy.
KILN_BACKEND_OP(void, copy, (void* dst, const void* src, std::size_t bytes))
/// Device-to-host copy; returns when the bytes are on the host.
KILN_BACKEND_OP(void, copy_to_host, (void* host_dst, const void* src, std::size_t bytes))
/// Host-to-device copy; the host buffer may be reused on return.
KILN_BACKEND_OP(void, copy_from_host, (void* dst, const void* host_src, std::size_t bytes))
/// dst[i] = value for i < n, as `dtype`.
KILN_BACKEND_OP(void, fill, (DType dtype, void* dst, int64_t n, double value))
/// Every part of `copies` (float types), in as few launches as the device allows: a data-parallel
/// fit packs its gradients into one buffer, and its averaged statistics back, with one call each.
KILN_BACKEND_OP(void, scaled_copy_multi, (DType dtype, const ScaledCopy* copies, int count))
/// dst[i] = (to) src[i].
KILN_BACKEND_OP(void, cast, (DType from, const void* src, DType to, void* dst, int64_t n))
/// Waits for all queued work.
KILN_BACKEND_OP(void, synchronize, ())

// ---- elementwise (floating dtypes) ----
/// y = fn(x); y may alias x.
KILN_BACKEND_OP(void, unary, (UnaryFn fn, DType dtype, const void* x, void* y, int64_t n))
/// dx = dy * fn'(x), given y = fn(x) (some rules use y). dx may alias dy.
KILN_BACKEND_OP(void, unary_backward,
                (UnaryFn fn, DType dtype, const void* x, const void* y, const void* dy, void* dx, int64_t n))
/// out[i] = a[i % na] op b[i % nb]; na and nb divide n. out may alias a or b.
KILN_BACKEND_OP(void, binary,
                (BinaryOp op, DType dtype, const void* a, int64_t na, const void* b, int64_t nb, void* out, int64_t n))
/// y = alpha * x + beta; y may alias x.
KILN_BACKEND_OP(void, affine, (DType dtype, const void* x, double alpha, double beta, void* y, int64_t n))
/// y = min(max(x, lo), hi).
KILN_BACKEND_OP(void, clip, (DType dtype, const void* x, void* y, int64_t n, double lo, double hi))
/// dx = dy where lo <= x <= hi, else 0 (TensorFlow's clip_by_value gradient).
KILN_BACKEND_OP(void, clip_backward,
                (DType dtype, const void* x, const void* dy, void* dx, int64_t n, double lo, double hi))

// ---- reductions over x [rows, cols] ----
/// y[c] = sum_r x[r, c] (+ y[c] when accumulate).
KILN_BACKEND_OP(void, sum_rows, (DType dtype, const void* x, void* y, int64_t rows, int64_t cols, bool accumulate))
/// y[r] = sum_c x[r, c].
KILN_BACKEND_OP(void, sum_cols, (DType dtype, const void* x, void* y, int64_t rows, int64_t cols))
/// y[r] = argmax_c x[r, c] as int32 (first of equal maxima).
KILN_BACKEND_OP(void, argmax_rows, (DType dtype, const void* x, int32_t* y, int64_t rows, int64_t cols))
/// *correct += number of rows r with argmax_c x[r, c] == labels[r]; `correct` is one element of
/// `dtype` on the device, so accuracy accumulates without a host read.
KILN_BACKEND_OP(void, accuracy_sum,
                (DType dtype, const void* x, const int32_t* labels, void* correct, int64_t rows, int64_t cols))

// ---- matrix product ----
/// C[m, n] = alpha * op(A) op(B) + beta * C, row-major; op(A) is [m, k], op(B) is [k, n].
KILN_BACKEND_OP(void, gemm,
                (DType dtype, bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, double alpha, const void* a,
                 const void* b, double beta, void* c))
/// C[m, n] = act(A B + bias), row-major, A [m, k], B [k, n]; bias [n] is added to every row and
/// may be null; act is max(., 0) when `relu`, else the identity. A dense layer's forward in one
/// pass where the device can fuse it: gemm, then binary Add, then unary Relu, up to the order in
/// which the product is summed (on the CPU, bit for bit, for float32 and float64; a 16-bit result
/// is rounded once at the end instead of after each of the three).
KILN_BACKEND_OP(void, gemm_bias_act,
                (DType dtype, int64_t m, int64_t n, int64_t k, const void* a, const void* b, const void* bias,
                 bool relu, void* c))
/// dw[k, n] = X^T dZ for X [m, k] and dZ [m, n] and, when db is not null, db[n] = sum_r dZ[r, :]:
/// a dense layer's weight and bias gradients in one pass where the device can fuse them: gemm
/// with X transposed, then sum_rows, up to summation order (on the CPU, bit for bit).
KILN_BACKEND_OP(void, gemm_wgrad_bias,
                (DType dtype, int64_t m, int64_t n, int64_t k, const void* x, const void* dz, void* dw, void* db))

// ---- batch normalization in training over x [rows, C] (a channels-last batch, flattened) ----
// The per-channel arrays (gamma, beta, mean, variance and the gradients dgamma, dbeta) are of the
// statistics dtype: float64 for float64 x, float32 for every other floating x.
/// mean[c] and the biased variance[c] of column c, then y = x * scale + shift per channel
/// (normalize_coefficients in batch_norm_math.h), y of x's dtype. With `activation` (an op that
/// batch_norm_fuses() lists), y = activation(z) in the same pass, z the normalized value rounded to
/// x's dtype first: equal bit for bit to the activation applied after. A null gamma stands for ones
/// and a null beta for zeros.
KILN_BACKEND_OP(void, batch_norm_forward,
                (DType dtype, const void* x, const void* gamma, const void* beta, double epsilon,
                 const std::optional<UnaryFn>& activation, void* y, void* mean, void* variance, int64_t rows,
                 int64_t C))
/// The gradients of batch_norm_forward's y (through the batch statistics too) given dy: dx of x's
/// dtype, dgamma = sum_r dy' * (x - mean) / sqrt(variance + epsilon), dbeta = sum_r dy'; a null gamma
/// stands for ones, a null dgamma or dbeta is not written. dy' is dy, or, with `activation` (as the
/// forward pass had it), dy taken back through the activation as its own backward would take it:
/// the activation's input recomputed from x, mean, variance, gamma and beta (a null beta: zeros),
/// `y` the forward's output (the derivative of some activations reads it), the product rounded to
/// x's dtype. dx may serve as scratch for dy' in between.
KILN_BACKEND_OP(void, batch_norm_backward,
                (DType dtype, const void* x, const void* dy, const std::optional<UnaryFn>& activation, const void* y,
                 const void* mean, const void* variance, const void* gamma, const void* beta, double epsilon, void* dx,
                 void* dgamma, void* dbeta, int64_t rows, int64_t C))

// ---- softmax family over the last axis of [rows, cols] ----
/// y = softmax(x), or log_softmax(x) when `log`.
KILN_BACKEND_OP(void, softmax, (DType dtype, const void* x, void* y, int64_t rows, int64_t cols, bool log))
/// dx from the output y and dy (of softmax, or of log_softmax when `log`).
KILN_BACKEND_OP(void, softmax_backward,
                (DType dtype, const void* y, const void* dy, void* dx, int64_t rows, int64_t cols, bool log))
/// loss[r] = -log_softmax(logits)[r, labels[r]]; when dlogits is not null it receives
/// (softmax(logits) - onehot(labels)) * grad_scale. A label outside [0, cols) gives a NaN loss
/// (callers validate labels before they reach the device).
KILN_BACKEND_OP(void, sparse_softmax_xent,
                (DType dtype, const void* logits, const int32_t* labels, void* loss, void* dlogits, double grad_scale,
                 int64_t rows, int64_t cols))

/// loss[i] = max(x, 0) - x z + log1p(exp(-|x|)) for logits x[i] and targets z[i] (TensorFlow's
/// sigmoid_cross_entropy_with_logits, math::sigmoid_xent_of).
KILN_BACKEND_OP(void, sigmoid_xent, (DType dtype, const void* logits, const void* targets, void* loss, int64_t n))

// ---- metric counts (added into one element of `dtype` on the device: no host read) ----
/// *correct += number of rows r where labels[r] is among the k largest of x[r, :] (TensorFlow's
/// in_top_k: fewer than k entries of the row are strictly greater than x[r, labels[r]]; a row
/// holding a NaN or an infinity never counts).
KILN_BACKEND_OP(void, in_top_k_sum,
                (DType dtype, const void* x, const int32_t* labels, void* correct, int64_t rows, int64_t cols,
                 int64_t k))
/// *matches += scale * number of i with (x[i] > threshold ? 1 : 0) == targets[i] (Keras'
/// binary_accuracy, counted exactly, then scaled once).
KILN_BACKEND_OP(void, binary_accuracy_sum,
                (DType dtype, const void* x, const void* targets, void* matches, int64_t n, double threshold,
                 double scale))

// ---- convolution and pooling (NHWC) ----
/// y = conv2d(x, w) + bias, then max(y, 0) when `relu`; `bias` ([F]) may be null. Why fused: the
/// bias and the ReLU ride on the convolution's own pass over y instead of two more passes.
KILN_BACKEND_OP(void, conv2d_forward,
                (DType dtype, const Conv2dGeometry& g, const void* x, const void* w, const void* bias, bool relu,
                 void* y))
/// dx = dL/dx (overwritten).
KILN_BACKEND_OP(void, conv2d_backward_data,
                (DType dtype, const Conv2dGeometry& g, const void* dy, const void* w, void* dx))
/// dw = dL/dw and, when `db` is not null, db = dL/dbias (both overwritten), from the gradient of
/// the convolution's output. When `relu_y` is not null the layer's output was y = relu(z) and dy
/// is dL/dy: the gradient of z is dy where relu_y > 0, else 0, applied on the fly (the ReLU
/// backward, fused) without writing it out.
KILN_BACKEND_OP(void, conv2d_backward_filter,
                (DType dtype, const Conv2dGeometry& g, const void* x, const void* dy, const void* relu_y, void* dw,
                 void* db))
/// y = the maximum of each window's cells inside the input (0 for a window wholly in the padding).
KILN_BACKEND_OP(void, max_pool2d_forward, (DType dtype, const Pool2dGeometry& g, const void* x, void* y))
/// dx (overwritten): each dy goes to the first maximal input of its window.
KILN_BACKEND_OP(void, max_pool2d_backward,
                (DType dtype, const Pool2dGeometry& g, const void* x, const void* y, const void* dy, void* dx))
/// y = the mean of each window's cells inside the input (0 for a window wholly in the padding).
KILN_BACKEND_OP(void, avg_pool2d_forward, (DType dtype, const Pool2dGeometry& g, const void* x, void* y))
/// dx (overwritten): each dy divided equally among its window's cells inside the input; a cell's
/// shares added in increasing (oh, ow) order.
KILN_BACKEND_OP(void, avg_pool2d_backward, (DType dtype, const Pool2dGeometry& g, const void* dy, void* dx))

// ---- counter-based randomness (Philox-4x32-10, the stream of backend/philox.h) ----
// `counter` is the one int64 on the device that names the step; kernels read it there, so a
// recorded step draws new numbers each replay once the counter has advanced.
/// y[i] = the uniform [0, 1) number of element i of stream (seed, *counter, draw), as `dtype`.
KILN_BACKEND_OP(void, philox_uniform,
                (DType dtype, void* y, int64_t n, uint64_t seed, const int64_t* counter, uint64_t draw))
/// y = x * keep / (1 - rate), keep = (u >= rate) for u element first + i's number of stream (seed,
/// *counter, draw): y is elements first.. of the draw over a larger x whose element first is x[0]
/// (a replica's shard of a global batch). Run on dy it gives the backward, dx. y may alias x;
/// 0 <= rate < 1; first >= 0.
KILN_BACKEND_OP(void, dropout,
                (DType dtype, const void* x, void* y, int64_t n, double rate, uint64_t seed, const int64_t* counter,
                 uint64_t draw, int64_t first))

// ---- optimizer updates (Keras' rules) ----
/// momentum == 0: w -= lr g. Else v = m v - lr g; w += v (nesterov: w += m v - lr g).
KILN_BACKEND_OP(void, sgd_step,
                (DType dtype, void* w, const void* g, void* v, int64_t n, double lr, double momentum, bool nesterov))
/// m += (g - m)(1 - b1); v += (g^2 - v)(1 - b2); w -= alpha m / (sqrt(v) + eps), where
/// alpha = lr sqrt(1 - b2^step) / (1 - b1^step) and step counts from 1.
KILN_BACKEND_OP(void, adam_step,
                (DType dtype, void* w, const void* g, void* m, void* v, int64_t n, double lr, double beta1,
                 double beta2, double eps, int64_t step))
/// adam_step over every entry of `params` (one launch on a GPU), the step size read from the
/// device: alpha = alpha_table[*index] (`dtype` elements; the caller fills the table with the
/// bias-corrected step sizes). A recorded training step thus needs no host argument per replay.
KILN_BACKEND_OP(void, adam_step_multi,
                (DType dtype, const ParamSlots* params, int count, double beta1, double beta2, double eps,
                 const void* alpha_table, const int64_t* index))
/// out[k] = the sum of tensors[k].g's squares (0 where g is null) for k < count; with `total`,
/// also out[count] = out[0] + ... + out[count - 1] in that order. `dtype` elements; deterministic.
KILN_BACKEND_OP(void, grad_sum_squares, (DType dtype, const UpdateTensor* tensors, int count, void* out, bool total))
/// Keras' per-variable sequence over every entry of `tensors` (one launch per few tensors on a
/// GPU): g clipped (Norm: g clipnorm / max(||g||, clipnorm), ||g||^2 = sum_squares[k]; GlobalNorm:
/// g clipnorm min(1/N, 1/clipnorm), N^2 = sum_squares[count]; Value: g clipped to +-clipvalue), then
/// w = w - w wd lr, then `rule`'s update (backend/optimizer_update.h), then, where `average` is set,
/// average = e average + (1 - e) w and, when the step says so, w = average. The step's values
/// (StepValue order, `dtype`) are step_table[*index * kStepValues + ...] when step_table is set
/// (a recorded step's device table), else host_step[...] (as doubles). When `skip` is set and
/// *skip is not 0 (read on the device), nothing is written: loss scaling's skipped step.
KILN_BACKEND_OP(void, optimizer_update,
                (DType dtype, const UpdateRule& rule, const UpdateTensor* tensors, int count, const void* sum_squares,
                 const void* step_table, const int64_t* index, const double* host_step, const int32_t* skip))
/// Loss scaling's unscale and check (Keras' LossScaleOptimizer): *nonfinite = 1 when any element
/// of any tensors[k].g (null ones skipped) is a NaN or an infinity, else 0; then every g is divided
/// in place by *scale (float32, read on the device, converted to `dtype`). Deterministic: the flag
/// does not depend on which element is seen first.
KILN_BACKEND_OP(void, unscale_gradients,
                (DType dtype, const UpdateTensor* tensors, int count, const float* scale, int32_t* nonfinite))
/// Loss scaling's state after a step, on the device: when *nonfinite is 0, ++*applied and, if
/// *counter == growth_steps - 1, *counter = 0 and *scale *= 2, else ++*counter; when it is not 0,
/// *counter = 0 and *scale *= 0.5 (Keras' dynamic loss scale).
KILN_BACKEND_OP(void, update_loss_scale,
                (const int32_t* nonfinite, float* scale, int64_t* counter, int64_t* applied, int64_t growth_steps))

// ---- data movement ----
/// dst[i, :] = src[idx[i], :] for i < n_idx, rows of `row_bytes` bytes.
KILN_BACKEND_OP(void, gather_rows,
                (const void* src, const int32_t* idx, void* dst, int64_t n_idx, std::size_t row_bytes))
/// The box `g` of src copied into dst (StridedCopy in backend.h), elements of `dtype` (any dtype).
/// src and dst must not overlap. What pad, slice, concatenate and permute run, forward and backward.
KILN_BACKEND_OP(void, copy_strided, (DType dtype, const StridedCopy& g, const void* src, void* dst))
/// idx[i] = perm[*index * n + i] for i < n: the batch of the step the device counter names.
KILN_BACKEND_OP(void, select_batch, (const int32_t* perm, const int64_t* index, int32_t* idx, int64_t n))
// (Unformatted: clang-format would read the lone `int64_t* counter` as a product.)
// clang-format off
/// ++*counter on the device (the step counter a recorded step advances).
KILN_BACKEND_OP(void, advance_counter, (int64_t* counter))
// clang-format on

// ---- image resampling (NHWC, the maps of backend/image_map.h) ----
/// y = x resampled per sample by transforms t [N, 4] (ImageTransformGeometry says how).
KILN_BACKEND_OP(void, image_transform,
                (DType dtype, const ImageTransformGeometry& g, const void* x, const void* t, void* y))
/// dx (overwritten) = the transpose of image_transform applied to dy: each input pixel gathers
/// weight * dy from the output pixels that read it, in increasing (i, j) order (no atomics).
KILN_BACKEND_OP(void, image_transform_backward,
                (DType dtype, const ImageTransformGeometry& g, const void* dy, const void* t, void* dx))
/// t [n, 4] = each sample's (ay, by, ax, bx) made by axes[0] (height) and axes[1] (width), two
/// specs in host memory; sample k's numbers are elements 2s and 2s + 1, s = first + k, of stream
/// (seed, *counter, draw): t is rows first.. of the transforms of a larger batch. first >= 0.
KILN_BACKEND_OP(void, random_image_transforms,
                (DType dtype, const ImageAxisSpec* axes, int64_t n, uint64_t seed, const int64_t* counter,
                 uint64_t draw, int64_t first, void* t))

// ---- recording (CUDA graphs) ----
// Why here: per-op host overhead and launches bound a small-batch step on a GPU; recording the
// whole step once and replaying it removes both. Only the backend knows its stream and allocator.
/// Whether begin_capture() works on this device (the CPU backend: no; fit then stays eager).
KILN_BACKEND_HOOK(bool, can_capture, () const)
/// Starts recording this device's work instead of running it. Until end_capture() or
/// abort_capture(), allocations come from a pool owned by the recording and freed blocks go back
/// to it, so nothing else ever gets them and replays see the same addresses. Nothing may read the
/// device back while recording.
KILN_BACKEND_HOOK(void, begin_capture, ())
/// Stops recording and returns the replayable work; throws kiln::Error if the recorded work broke
/// the recording's rules (the pool is then given back).
KILN_BACKEND_HOOK(std::unique_ptr<CapturedWork>, end_capture, ())
/// Stops a recording after an error and gives its pool back; never throws.
KILN_BACKEND_HOOK(void, abort_capture, () noexcept)

// ---- float32 math mode (kiln::config::enable_tensor_float_32_execution) ----
// Why a switch: tensor cores multiply float32 much faster as TF32 (10 mantissa bits, ~1e-3
// relative error) than the plain FMA units do in float32; kiln's default is exact float32, so the
// faster math runs only where a caller asks for it. Backends without TF32 (the CPU) ignore it.
/// Lets float32 products and convolutions use TF32 tensor-core math (`enabled`), or not; float64
/// is never affected. Applies to work issued afterwards (plans made for the other mode are not
/// reused); throws kiln::Error while a recording is under way.
KILN_BACKEND_HOOK(void, set_tensor_float_32, (bool enabled))
// ---- op determinism (kiln::config::enable_op_determinism) ----
// Why a switch: some of cuDNN's fastest convolution algorithms sum with atomics, so two runs of the
// same step can differ in the last bits; kiln's default takes them, and a caller who needs
// bit-equal reruns (recorded == eager, exact resume across processes) asks for deterministic ones.
/// Restricts library algorithms to deterministic ones (`enabled`), or not. Applies to work issued
/// afterwards (plans made for the other mode are not reused); throws kiln::Error while a recording
/// is under way.
KILN_BACKEND_HOOK(void, set_op_determinism, (bool enabled))

// ---- collectives across processes (a data-parallel fit on GPUs: NCCL) ----
// Why here: only the backend knows its stream, and the collectives must queue on it between the
// step's kernels (and be recorded with them).
/// A new group's key (NCCL's unique id), made by one process and sent to the others (MPI); throws
/// kiln::Error naming what is missing where this device has no collectives.
KILN_BACKEND_HOOK(std::string, make_collectives_key, ())
/// Joins the group of `key` as `rank` of `size` processes, waiting up to `timeout_seconds` for
/// the others; throws kiln::Error when they do not come or the library fails.
KILN_BACKEND_HOOK(std::unique_ptr<DeviceCollectives>, join_collectives,
                  (const std::string& key, int rank, int size, double timeout_seconds))

#undef KILN_BACKEND_OP
#undef KILN_BACKEND_HOOK
