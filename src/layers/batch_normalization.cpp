// BatchNormalization over the last axis, and its ops: moments and batch_normalization (Keras' ops of
// the same names, composed of existing ops so that autograd gives their backward; the inference path)
// and fused_batch_norm (the training path: the backend's batch_norm_forward and batch_norm_backward,
// whose formulas are those of the composition), and synchronized_batch_norm (the training path of a
// synchronized layer in a data-parallel fit: ops and sums over the replicas, on any device).
//
// Shape letters: C channels (the last axis), R rows (every other axis of the batch, flattened).
#include "kiln/layers/batch_normalization.h"

#include <cmath>
#include <limits>
#include <sstream>

#include "backend/batch_norm_math.h"
#include "distribute/replica_context.h"
#include "kiln/activations.h"
#include "kiln/autograd.h"
#include "kiln/error.h"
#include "kiln/ops.h"
#include "layers/activation_op.h"
#include "layers/config_fields.h"
#include "ops/op_util.h"

namespace kiln {

namespace {

void check_channels(const std::string& op, const std::string& what, const Tensor& t, int64_t C) {
  if (!t.defined() || t.ndim() != 1 || t.size(0) != C)
    throw Error(op, what + " is " + (t.defined() ? t.shape().str() : std::string("undefined")) + "; expected [" +
                        std::to_string(C) + "], one value per channel of the input's last axis");
}

// The checks of the training ops' operands; returns the statistics dtype.
DType check_training_input(const std::string& op, const Tensor& x, const Tensor& scale, const Tensor& offset,
                           double epsilon) {
  ops::check_floating(op, x);
  if (x.ndim() < 1 || x.numel() == 0)
    throw Error(op, "input is " + x.shape().str() + "; expected a non-empty tensor [..., C]");
  if (!std::isfinite(epsilon) || epsilon < 0)
    throw Error(op, "epsilon is " + layers::number_text(epsilon) + "; expected a finite number >= 0");
  const DType stats = x.dtype() == DType::Float64 ? DType::Float64 : DType::Float32;
  for (const auto& [t, role] : {std::pair{&scale, "scale"}, std::pair{&offset, "offset"}}) {
    if (!t->defined()) continue;
    check_channels(op, role, *t, x.size(-1));
    if (t->dtype() != stats || t->device() != x.device())
      throw Error(op, std::string(role) + " is " + dtype_name(t->dtype()) + " on " + t->device().str() + "; expected " +
                          dtype_name(stats) + " on " + x.device().str() + " for " + dtype_name(x.dtype()) + " input");
  }
  return stats;
}

}  // namespace

std::pair<Tensor, Tensor> moments(const Tensor& x) {
  if (!x.defined() || x.ndim() < 1 || x.numel() == 0)
    throw Error("moments", "input is " + (x.defined() ? x.shape().str() : std::string("undefined")) +
                               "; expected a non-empty tensor [..., C]");
  const int64_t C = x.size(-1);
  const Tensor rows = reshape(x, {x.numel() / C, C});  // [R, C]
  const Tensor mean = kiln::mean(rows, 0);
  // The deviations are taken from a detached mean, as tf.nn.moments does: the variance's gradient
  // through the mean is zero anyway (the deviations sum to zero), so this only saves its backward.
  const Tensor variance = kiln::mean(square(sub(rows, mean.detach())), 0);
  return {mean, variance};
}

Tensor batch_normalization(const Tensor& x, const Tensor& mean, const Tensor& variance, const Tensor& offset,
                           const Tensor& scale, double epsilon) {
  const std::string op = "batch_normalization";
  if (!x.defined() || x.ndim() < 1)
    throw Error(
        op, "input is " + (x.defined() ? x.shape().str() : std::string("undefined")) + "; expected a tensor [..., C]");
  if (!std::isfinite(epsilon) || epsilon < 0)
    throw Error(op, "epsilon is " + layers::number_text(epsilon) + "; expected a finite number >= 0");
  const int64_t C = x.size(-1);
  check_channels(op, "mean", mean, C);
  check_channels(op, "variance", variance, C);
  if (offset.defined()) check_channels(op, "offset", offset, C);
  if (scale.defined()) check_channels(op, "scale", scale, C);
  // Per channel first ([C] vectors), so the full-size work is one multiply and one add, both
  // broadcasting a [C] row over x.
  const Tensor root = sqrt(add(variance, epsilon));
  const Tensor inv = scale.defined() ? div(scale, root) : div(Tensor::ones({C}, root.dtype(), root.device()), root);
  const Tensor shift = offset.defined() ? sub(offset, mul(mean, inv)) : neg(mul(mean, inv));
  return add(mul(x, inv), shift);
}

bool fused_batch_norm_applies(const std::string& activation) {
  const std::optional<backend::UnaryFn> fn = activations::elementwise_op(activation);
  return fn && backend::batch_norm_fuses(fn->op);
}

FusedBatchNorm fused_batch_norm(const Tensor& x, const Tensor& scale, const Tensor& offset, double epsilon,
                                const std::string& activation) {
  const bool activated = !activation.empty() && activation != "linear";
  const std::string op = activated ? "fused_batch_norm_" + activation : "fused_batch_norm";
  const std::optional<backend::UnaryFn> fn = activated ? activations::elementwise_op(activation) : std::nullopt;
  if (activated && !(fn && backend::batch_norm_fuses(fn->op))) {
    std::string applied;
    for (const std::string& name : activation_registry().names())
      if (fused_batch_norm_applies(name)) applied += name + ", ";
    throw Error("fused_batch_norm", "activation '" + activation + "' is not applied in the normalization's passes; " +
                                        "expected " + applied + "linear or none (apply others after it)");
  }
  const DType stats = check_training_input(op, x, scale, offset, epsilon);
  const int64_t C = x.size(-1), R = x.numel() / C;
  const auto data = [](const Tensor& t) -> const void* { return t.defined() ? t.raw_data() : nullptr; };
  FusedBatchNorm out{make_tensor(x.shape(), x.dtype(), x.device()), make_tensor({C}, stats, x.device()),
                     make_tensor({C}, stats, x.device())};
  ops::backend_of(x).batch_norm_forward(x.dtype(), x.raw_data(), data(scale), data(offset), epsilon, fn,
                                        out.y.raw_data(), out.mean.raw_data(), out.variance.raw_data(), R, C);
  // An activation's backward recomputes its input from x and needs offset; some read y too, kept
  // detached (no cycle) as an activation's own backward keeps it.
  const auto saved = [](const Tensor& t) { return t.defined() ? t.detach() : Tensor(); };
  const Tensor x_saved = x.detach(), mean = out.mean, variance = out.variance, scale_saved = saved(scale),
               offset_saved = fn ? saved(offset) : Tensor(), y_saved = fn ? out.y.detach() : Tensor();
  const bool want_scale = scale.defined(), want_offset = offset.defined();
  out.y = autograd::record(op, out.y, {x, scale, offset}, [=](const Tensor& g) -> std::vector<Tensor> {
    Tensor dx = make_tensor(x_saved.shape(), x_saved.dtype(), x_saved.device());
    Tensor dscale = want_scale ? make_tensor({C}, stats, x_saved.device()) : Tensor();
    Tensor doffset = want_offset ? make_tensor({C}, stats, x_saved.device()) : Tensor();
    const auto out_data = [](Tensor& t) -> void* { return t.defined() ? t.raw_data() : nullptr; };
    ops::backend_of(g).batch_norm_backward(x_saved.dtype(), x_saved.raw_data(), g.raw_data(), fn, data(y_saved),
                                           mean.raw_data(), variance.raw_data(), data(scale_saved), data(offset_saved),
                                           epsilon, dx.raw_data(), out_data(dscale), out_data(doffset), R, C);
    return {dx, dscale, doffset};
  });
  return out;
}

FusedBatchNorm synchronized_batch_norm(const Tensor& x, const Tensor& scale, const Tensor& offset, double epsilon,
                                       const ReplicaSum& replicas) {
  const std::string op = "synchronized_batch_norm";
  const DType stats = check_training_input(op, x, scale, offset, epsilon);
  const int64_t C = x.size(-1), R = x.numel() / C, N = replicas.count;
  if (!replicas.sum) throw Error(op, "no sum over the replicas; expected a function that sums a tensor in place");
  if (!(std::isfinite(replicas.share) && replicas.share > 0))
    throw Error(op, "share is " + layers::number_text(replicas.share) + "; expected a positive number");
  if (N < R)
    throw Error(op, "count " + std::to_string(N) + " is smaller than this shard's " + std::to_string(R) +
                        " values per channel; expected the values per channel over every replica");
  // The statistics dtype throughout, as fused_batch_norm's (a 16-bit x is normalized in float32).
  const auto to = [](const Tensor& t, DType dt) { return t.dtype() == dt ? t : cast(t, dt); };
  const double inv_count = 1.0 / static_cast<double>(N);
  Tensor y, xhat, invstd;
  FusedBatchNorm out;
  {
    NoGradGuard no_grad;  // the op records its own backward below
    const Tensor rows = reshape(to(x.detach(), stats), {R, C});
    Tensor sums = sum(rows, 0);
    replicas.sum(sums);
    out.mean = mul(sums, inv_count);
    const Tensor deviations = sub(rows, out.mean);
    Tensor squares = sum(square(deviations), 0);
    replicas.sum(squares);
    out.variance = mul(squares, inv_count);
    invstd = div(Tensor::ones({C}, stats, x.device()), sqrt(add(out.variance, epsilon)));
    xhat = mul(deviations, invstd);  // [R, C]
    y = scale.defined() ? mul(xhat, scale.detach()) : xhat;
    if (offset.defined()) y = add(y, offset.detach());
    y = reshape(to(y, x.dtype()), x.shape());
  }
  const Tensor scale_saved = scale.defined() ? scale.detach() : Tensor();
  const bool want_scale = scale.defined(), want_offset = offset.defined();
  const Shape& shape = x.shape();  // the lambda below copies it
  const DType dtype = x.dtype();
  const ReplicaSum sum_over = replicas;
  const double share = replicas.share;
  out.y = autograd::record(op, y, {x, scale, offset}, [=](const Tensor& g) -> std::vector<Tensor> {
    NoGradGuard no_grad;
    const Tensor dy = reshape(to(g, stats), {R, C});
    // This shard's reductions are the gradients of its own loss in scale and offset; weighted by
    // the share of that loss in the replicas' total and summed over the replicas, they carry the
    // total's gradient through the global mean and variance into every shard's dx.
    const Tensor dy_sum = sum(dy, 0), dy_xhat_sum = sum(mul(dy, xhat), 0);
    Tensor totals = mul(concatenate({dy_sum, dy_xhat_sum}, 0), share);  // [2C]: one sum over the replicas
    sum_over.sum(totals);
    // dx = scale * invstd * (dy - (mean(dY) + xhat * mean(dY * xhat)) / share): dY the total's gradient,
    // the means over the global batch; divided by the share, dx is again of this replica's loss.
    const double per_value = inv_count / share;
    const Tensor mean_dy = mul(slice(totals, {0}, {C}), per_value);
    const Tensor mean_dy_xhat = mul(slice(totals, {C}, {C}), per_value);
    const Tensor k = scale_saved.defined() ? mul(scale_saved, invstd) : invstd;
    const Tensor dx = mul(sub(sub(dy, mean_dy), mul(xhat, mean_dy_xhat)), k);
    return {reshape(to(dx, dtype), shape), want_scale ? dy_xhat_sum : Tensor(), want_offset ? dy_sum : Tensor()};
  });
  return out;
}

}  // namespace kiln

namespace kiln::layers {

namespace {

const RegisterLayer<BatchNormalization> registered("BatchNormalization");

// Layer `name`'s training statistics over the global batch of the replicas of the fit in progress.
FusedBatchNorm synchronized(const std::string& name, const Tensor& x, const Tensor& gamma, const Tensor& beta,
                            double epsilon, distribute::ReplicaContext& replicas) {
  // Every replica must take part in the sums: one whose shard is empty runs no forward pass, so
  // the others refuse the step before their first sum (and it is left waiting, until fit's deadline).
  const distribute::ShardPosition& shard = replicas.shard();
  const int P = replicas.replicas();
  if (shard.global_rows < P)
    throw Error(name, "synchronized: the batch of this step has " + std::to_string(shard.global_rows) + " rows for " +
                          std::to_string(P) +
                          " replicas, so a replica's shard is empty and it cannot join the batch statistics; "
                          "expected every batch to have at least one row per replica (a batch_size that leaves "
                          "a last batch of 0 or at least " +
                          std::to_string(P) + " rows) or synchronized=false");
  if (x.size(0) != shard.rows)
    throw Error(name, "synchronized: input " + x.shape().str() + " has " + std::to_string(x.size(0)) +
                          " rows but this replica's shard of the batch has " + std::to_string(shard.rows) +
                          "; expected the layer to see the batch's rows on the first axis");
  // fit differentiates this replica's mean loss over its rows, and weights it by its rows' share
  // of the global batch in the sum of the gradients.
  const int64_t per_row = x.numel() / (x.size(0) * x.size(-1));
  const std::string what = "the batch statistics of " + name;
  return synchronized_batch_norm(x, gamma, beta, epsilon,
                                 {.count = shard.global_rows * per_row,
                                  .sum = [&replicas, what](Tensor& t) { replicas.all_reduce_sum(t, what); },
                                  .share = static_cast<double>(shard.rows) / static_cast<double>(shard.global_rows)});
}

}  // namespace

BatchNormalization::BatchNormalization(BatchNormalizationOptions options) : options_(std::move(options)) {
  name_ = "batch_normalization";
  const auto& o = options_;
  if (o.axis != -1 && o.axis < 1)
    throw Error(name_, "axis " + std::to_string(o.axis) +
                           " is not supported; expected -1, the last axis (kiln normalizes channels-last inputs)");
  if (!(o.momentum >= 0.0 && o.momentum <= 1.0))
    throw Error(name_, "momentum is " + number_text(o.momentum) + "; expected a value in [0, 1]");
  if (!(std::isfinite(o.epsilon) && o.epsilon > 0.0))
    throw Error(name_, "epsilon is " + number_text(o.epsilon) + "; expected a positive number");
  for (const std::string* init :
       {&o.beta_initializer, &o.gamma_initializer, &o.moving_mean_initializer, &o.moving_variance_initializer})
    initializers::get(*init);  // unknown names fail here, not at build
  declare(o.input_shape, o.dtype);
}

Shape BatchNormalization::compute_output_shape(const Shape& input_shape) const {
  if (input_shape.ndim() < 1)
    throw Error(name_, "input of per-sample shape " + input_shape.str() +
                           " has no channel axis; expected at least one dimension per sample, channels last");
  // Keras counts the batch axis, so the last axis of a per-sample shape of rank r is axis r.
  if (options_.axis != -1 && options_.axis != input_shape.ndim())
    throw Error(name_, "axis " + std::to_string(options_.axis) + " is not the last axis of inputs [N, " +
                           input_shape.str().substr(1) + "; expected -1 (or " + std::to_string(input_shape.ndim()) +
                           "): kiln normalizes the last axis only");
  return input_shape;
}

void BatchNormalization::create_weights(const Shape& input_shape) {
  const Shape channels{input_shape[-1]};
  const auto& o = options_;
  if (o.scale)
    add_weight("gamma", channels, *initializers::get(o.gamma_initializer),
               {.regularizer = o.gamma_regularizer, .autocast = false});
  if (o.center)
    add_weight("beta", channels, *initializers::get(o.beta_initializer),
               {.regularizer = o.beta_regularizer, .autocast = false});
  add_weight("moving_mean", channels, *initializers::get(o.moving_mean_initializer), {.trainable = false});
  add_weight("moving_variance", channels, *initializers::get(o.moving_variance_initializer), {.trainable = false});
}

Tensor BatchNormalization::call(const Tensor& x_in, bool training) {
  // Keras 3: statistics of 16-bit inputs overflow and lose precision, so the layer normalizes in
  // float32 (with float32 gamma and beta) and hands its output back in the input's dtype;
  // fused_batch_norm does so itself, the inference path by casts.
  // Keras 3: a frozen layer runs in inference mode, even inside fit.
  const bool batch_statistics = training && trainable();
  if (!batch_statistics && is_floating(x_in.dtype()) && !is_compute_floating(x_in.dtype()))
    return cast(call(cast(x_in, DType::Float32), training), x_in.dtype());
  const Tensor& x = x_in;
  Tensor& moving_mean = weight("moving_mean");
  Tensor& moving_variance = weight("moving_variance");
  const int64_t C = moving_mean.size(0);
  if (x.ndim() < 2 || x.size(-1) != C) {
    const std::string declared = input_shape_.empty() ? "" : " (input_shape=" + Shape(input_shape_).str() + ")";
    throw Error(name_, "input " + x.shape().str() + " has " + (x.ndim() >= 2 ? std::to_string(x.size(-1)) : "no") +
                           " channels on its last axis, layer expects " + std::to_string(C) + declared);
  }
  const Tensor gamma = options_.scale ? weight("gamma") : Tensor();
  const Tensor beta = options_.center ? weight("beta") : Tensor();
  if (!batch_statistics) return batch_normalization(x, moving_mean, moving_variance, beta, gamma, options_.epsilon);
  distribute::ReplicaContext* replicas = options_.synchronized ? distribute::ReplicaContext::current() : nullptr;
  const auto [y, mean, variance] = replicas && replicas->replicas() > 1
                                       ? synchronized(name_, x, gamma, beta, options_.epsilon, *replicas)
                                       : fused_batch_norm(x, gamma, beta, options_.epsilon, then_activation());
  {
    // In place and on the device (copy_ into the weights' own storage): a recorded step replays the
    // update, and no value is read back to the host.
    NoGradGuard no_grad;
    const double m = options_.momentum;
    moving_mean.copy_(add(mul(moving_mean, m), mul(mean.detach(), 1.0 - m)));
    moving_variance.copy_(add(mul(moving_variance, m), mul(variance.detach(), 1.0 - m)));
  }
  return y;
}

bool BatchNormalization::can_fuse_activation(const std::string& activation, bool training) const {
  return training && trainable() && !options_.synchronized && fused_batch_norm_applies(activation);
}

Config BatchNormalization::get_config() const {
  const auto& o = options_;
  return {{"axis", o.axis},
          {"momentum", o.momentum},
          {"epsilon", o.epsilon},
          {"center", o.center},
          {"scale", o.scale},
          {"beta_initializer", o.beta_initializer},
          {"gamma_initializer", o.gamma_initializer},
          {"moving_mean_initializer", o.moving_mean_initializer},
          {"moving_variance_initializer", o.moving_variance_initializer},
          {"beta_regularizer", object_config(o.beta_regularizer)},
          {"gamma_regularizer", object_config(o.gamma_regularizer)},
          {"synchronized", o.synchronized}};
}

BatchNormalization BatchNormalization::from_config(const Config& config) {
  const auto f = config_fields(config, "BatchNormalization");
  if (f.has("renorm") && f.boolean("renorm"))
    f.fail("renorm is true; expected false (batch renormalization is not supported)");
  BatchNormalizationOptions o;
  if (f.has("axis"))
    o.axis = f.integer("axis", std::numeric_limits<int32_t>::min(), std::numeric_limits<int32_t>::max());
  if (f.has("momentum")) o.momentum = f.number("momentum");
  if (f.has("epsilon")) o.epsilon = f.number("epsilon");
  if (f.has("center")) o.center = f.boolean("center");
  if (f.has("scale")) o.scale = f.boolean("scale");
  if (f.has("synchronized")) o.synchronized = f.boolean("synchronized");
  o.beta_initializer = string_or(f, "beta_initializer", o.beta_initializer);
  o.gamma_initializer = string_or(f, "gamma_initializer", o.gamma_initializer);
  o.moving_mean_initializer = string_or(f, "moving_mean_initializer", o.moving_mean_initializer);
  o.moving_variance_initializer = string_or(f, "moving_variance_initializer", o.moving_variance_initializer);
  o.beta_regularizer = object_field(f, "beta_regularizer", regularizer_registry());
  o.gamma_regularizer = object_field(f, "gamma_regularizer", regularizer_registry());
  return BatchNormalization(o);
}

}  // namespace kiln::layers
