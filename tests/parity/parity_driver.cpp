// Keras parity driver: builds one case's model the way a kiln user writes it, loads the initial
// weights Keras drew, trains on the same batches in the same order, and writes what Keras reports.
//
// Usage: kiln_parity_driver CASE IN_DIR OUT_DIR
//   IN_DIR:  initial.safetensors, x.npy, y.npy (float32 targets or int32 labels), x_pred.npy,
//            policy.txt (optional: the dtype policy the model is built under, e.g. "mixed_bfloat16")
//   OUT_DIR: losses.npy (float64, one per step, the loss before that step's update),
//            final.safetensors, pred.npy (model.predict(x_pred), as float32)
// Weights go through Sequential::load_weights/save_weights, so Python's safetensors package checks
// kiln's file format too. The case list is mirrored in parity.py under the same names.
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>

#include "kiln/io/numpy.h"
#include "kiln/kiln.h"

namespace {

using namespace kiln;
using layers::Activation;
using layers::AveragePooling2D;
using layers::BatchNormalization;
using layers::Conv2D;
using layers::Dense;
using layers::Flatten;
using layers::GlobalAveragePooling2D;
using layers::GlobalMaxPooling2D;
using layers::MaxPooling2D;
using losses::SparseCategoricalCrossentropy;
using regularizers::l2;

struct Case {
  std::function<Model()> make;  // built and compiled
  int64_t batch_size;
  int epochs = 0;  // > 0: train with fit(shuffle=false) and report its per-epoch losses
  std::function<std::vector<std::shared_ptr<Callback>>()> callbacks = nullptr;  // fit's, when set
};

Sequential compiled(const std::vector<LayerRef>& layers, const Optimizer& opt, const Loss& loss) {
  Sequential m(layers);
  m.compile(opt, loss);
  return m;
}

const std::map<std::string, Case>& cases() {
  static const std::map<std::string, Case> all = {
      // The house-price seed exactly as written: string names, default SGD, full batch, 1000 epochs.
      {"house_price",
       {[] {
          Sequential m({Dense(1, {.input_shape = {1}})});
          m.compile("sgd", "mean_squared_error");
          return m;
        },
        6, 1000}},
      // The CIFAR-10 seed on real images.
      {"cifar10_cnn",
       {[] {
          return compiled({Conv2D(32, {3, 3}, {.activation = "relu", .input_shape = {32, 32, 3}}), MaxPooling2D({2, 2}),
                           Flatten(), Dense(64, {.activation = "relu"}), Dense(10)},
                          optimizers::Adam(), SparseCategoricalCrossentropy({.from_logits = true}));
        },
        10}},
      // 10x11 input: "same" padding is uneven in height (0 top, 1 bottom) and even in width.
      {"conv_same_strides2",
       {[] {
          return compiled(
              {Conv2D(8, {3, 3},
                      {.strides = {2, 2}, .padding = "same", .activation = "relu", .input_shape = {10, 11, 3}}),
               Flatten(), Dense(5)},
              optimizers::Adam(), SparseCategoricalCrossentropy({.from_logits = true}));
        },
        8}},
      // Overlapping pooling windows (3x3, stride 2).
      {"maxpool_strides",
       {[] {
          return compiled({Conv2D(6, {3, 3}, {.activation = "relu", .input_shape = {13, 13, 2}}),
                           MaxPooling2D({3, 3}, {.strides = {2, 2}}), Flatten(), Dense(4)},
                          optimizers::SGD({.learning_rate = 0.05}),
                          SparseCategoricalCrossentropy({.from_logits = true}));
        },
        8}},
      // "same" pooling over tanh outputs (negative values): padded cells must never win.
      {"maxpool_same",
       {[] {
          return compiled({Conv2D(4, {3, 3}, {.activation = "tanh", .input_shape = {12, 11, 2}}),
                           MaxPooling2D({3, 3}, {.strides = {2, 2}, .padding = "same"}), Flatten(), Dense(3)},
                          optimizers::Adam(), SparseCategoricalCrossentropy({.from_logits = true}));
        },
        8}},
      {"dense_sigmoid_momentum",
       {[] {
          return compiled({Dense(8, {.activation = "sigmoid", .input_shape = {5}}), Dense(3)},
                          optimizers::SGD({.learning_rate = 0.1, .momentum = 0.9}), losses::MeanSquaredError());
        },
        4}},
      {"dense_tanh_nesterov",
       {[] {
          return compiled({Dense(8, {.activation = "tanh", .input_shape = {6}}), Dense(2)},
                          optimizers::SGD({.learning_rate = 0.05, .momentum = 0.9, .nesterov = true}),
                          losses::MeanSquaredError());
        },
        5}},
      {"mse_multi_output",
       {[] { return compiled({Dense(3, {.input_shape = {4}})}, optimizers::SGD(), losses::MeanSquaredError()); }, 5}},
      // Probabilities from a softmax Dense, the loss told from_logits=false.
      {"softmax_crossentropy",
       {[] {
          return compiled({Dense(16, {.activation = "relu", .input_shape = {8}}), Dense(4, {.activation = "softmax"})},
                          optimizers::Adam(), SparseCategoricalCrossentropy());
        },
        8}},
      // The same with confident predictions: some true-class probabilities fall below 1e-7.
      {"softmax_crossentropy_confident",
       {[] {
          return compiled({Dense(4, {.activation = "softmax", .input_shape = {8}})}, optimizers::SGD(),
                          SparseCategoricalCrossentropy());
        },
        8}},
      // The output activation and the loss disagree: Keras takes the activation's input as the logits
      // (and warns when from_logits=true), so kiln must too.
      {"sigmoid_crossentropy",
       {[] {
          return compiled({Dense(16, {.activation = "relu", .input_shape = {8}}), Dense(4, {.activation = "sigmoid"})},
                          optimizers::Adam(), SparseCategoricalCrossentropy());
        },
        8}},
      {"softmax_crossentropy_from_logits",
       {[] {
          return compiled({Dense(16, {.activation = "relu", .input_shape = {8}}), Dense(4, {.activation = "softmax"})},
                          optimizers::SGD({.learning_rate = 0.1}),
                          SparseCategoricalCrossentropy({.from_logits = true}));
        },
        8}},
      {"sigmoid_crossentropy_from_logits",
       {[] {
          return compiled({Dense(4, {.activation = "sigmoid", .input_shape = {8}})},
                          optimizers::SGD({.learning_rate = 0.1}),
                          SparseCategoricalCrossentropy({.from_logits = true}));
        },
        8}},
      // Batch statistics in training, moving statistics updated in place and used by predict.
      {"dense_batchnorm",
       {[] {
          return compiled(
              {Dense(8, {.activation = "relu", .use_bias = false, .input_shape = {6}}), BatchNormalization(), Dense(3)},
              optimizers::Adam(), SparseCategoricalCrossentropy({.from_logits = true}));
        },
        8}},
      // The same over the channels of NHWC feature maps, after a convolution without bias.
      {"conv_batchnorm",
       {[] {
          return compiled(
              {Conv2D(4, {3, 3}, {.use_bias = false, .input_shape = {9, 9, 2}}),
               BatchNormalization({.momentum = 0.9, .epsilon = 1e-2}), MaxPooling2D({2, 2}), Flatten(), Dense(3)},
              optimizers::SGD({.learning_rate = 0.05, .momentum = 0.9}),
              SparseCategoricalCrossentropy({.from_logits = true}));
        },
        8}},
      // "same" average pooling on an odd size, global average pooling, the exact gelu.
      {"avgpool_gap_gelu",
       {[] {
          return compiled({Conv2D(6, {3, 3}, {.activation = "relu", .input_shape = {12, 11, 3}}),
                           AveragePooling2D({3, 3}, {.strides = {2, 2}, .padding = "same"}),
                           Conv2D(8, {3, 3}, {.padding = "same", .activation = "gelu"}), GlobalAveragePooling2D(),
                           Dense(8, {.activation = "gelu"}), Dense(4)},
                          optimizers::Adam(), SparseCategoricalCrossentropy({.from_logits = true}));
        },
        8}},
      // Activation layers, elu and leaky_relu options, global max pooling with keepdims.
      {"activation_layers",
       {[] {
          return compiled(
              {Conv2D(6, {3, 3}, {.input_shape = {10, 10, 2}}), Activation("silu"), AveragePooling2D({2, 2}),
               Conv2D(6, {3, 3}, {.activation = "elu"}), GlobalMaxPooling2D({.keepdims = true}), Flatten(),
               Dense(8, {.activation = "leaky_relu"}), Activation("swish"), Dense(3)},
              optimizers::SGD({.learning_rate = 0.05, .momentum = 0.9}),
              SparseCategoricalCrossentropy({.from_logits = true}));
        },
        8}},
      // Reshaping layers between a convolution and a Dense.
      {"reshaping_layers",
       {[] {
          return compiled({Conv2D(4, {3, 3}, {.activation = "relu", .input_shape = {7, 6, 2}}),
                           layers::ZeroPadding2D({{1, 2}, {0, 1}}), layers::Cropping2D({{2, 0}, {1, 1}}),
                           layers::Reshape({-1, 8}), layers::Permute({2, 1}), Flatten(), Dense(3)},
                          optimizers::Adam(), SparseCategoricalCrossentropy({.from_logits = true}));
        },
        8}},
      // L2 penalties on kernels and a bias, in the loss and its gradients.
      {"l2_regularizer",
       {[] {
          return compiled(
              {Conv2D(4, {3, 3}, {.activation = "relu", .kernel_regularizer = l2(0.02), .input_shape = {7, 7, 2}}),
               Flatten(),
               Dense(8, {.activation = "tanh", .kernel_regularizer = l2(0.01), .bias_regularizer = l2(0.05)}),
               Dense(3, {.kernel_regularizer = l2(0.1)})},
              optimizers::SGD({.learning_rate = 0.1}), SparseCategoricalCrossentropy({.from_logits = true}));
        },
        8}},
      // Rescaling and Normalization with given statistics inside the model, before a convolution.
      {"rescaling_normalization",
       {[] {
          return compiled({layers::Rescaling(1.0 / 255, {.offset = -0.25, .input_shape = {8, 8, 3}}),
                           layers::Normalization({.mean = std::vector<double>{0.2, 0.25, 0.3},
                                                  .variance = std::vector<double>{0.08, 0.05, 0.0}}),
                           Conv2D(4, {3, 3}, {.activation = "relu"}), Flatten(), Dense(3)},
                          optimizers::Adam(), SparseCategoricalCrossentropy({.from_logits = true}));
        },
        8}},
      // The one-hot cross-entropy with label smoothing, from a softmax output and from logits.
      {"cce_label_smoothing",
       {[] {
          return compiled({Dense(16, {.activation = "relu", .input_shape = {8}}), Dense(4, {.activation = "softmax"})},
                          optimizers::Adam(), losses::CategoricalCrossentropy({.label_smoothing = 0.1}));
        },
        8}},
      {"cce_label_smoothing_from_logits",
       {[] {
          return compiled({Dense(16, {.activation = "relu", .input_shape = {8}}), Dense(4)},
                          optimizers::SGD({.learning_rate = 0.1}),
                          losses::CategoricalCrossentropy({.from_logits = true, .label_smoothing = 0.2}));
        },
        8}},
      // Binary cross-entropy from sigmoid outputs, and from one logit against [N] targets.
      {"bce_sigmoid",
       {[] {
          return compiled({Dense(8, {.activation = "relu", .input_shape = {8}}), Dense(3, {.activation = "sigmoid"})},
                          optimizers::Adam(), losses::BinaryCrossentropy());
        },
        8}},
      {"bce_from_logits",
       {[] {
          return compiled({Dense(1, {.input_shape = {8}})}, optimizers::SGD({.learning_rate = 0.1}),
                          losses::BinaryCrossentropy({.from_logits = true, .label_smoothing = 0.1}));
        },
        8}},
      // Regression losses: "mae" by name, Huber with delta 0.5.
      {"mae",
       {[] {
          Sequential m({Dense(8, {.activation = "relu", .input_shape = {8}}), Dense(1)});
          m.compile(optimizers::SGD({.learning_rate = 0.05}), *losses::get("mae"));
          return m;
        },
        8}},
      {"huber",
       {[] {
          return compiled({Dense(8, {.activation = "relu", .input_shape = {8}}), Dense(2)},
                          optimizers::Adam({.learning_rate = 0.01}), losses::Huber({.delta = 0.5}));
        },
        8}},
      // Functional models: a residual block, two inputs joined by Concatenate, a shared layer.
      {"functional_residual_block",
       {[] {
          auto x = Input({8, 8, 4});
          auto h = Conv2D(4, {3, 3}, {.padding = "same", .use_bias = false})(x);
          h = Activation("relu")(BatchNormalization()(h));
          h = BatchNormalization()(Conv2D(4, {3, 3}, {.padding = "same", .use_bias = false})(h));
          h = GlobalAveragePooling2D()(Activation("relu")(layers::Add()({x, h})));
          Model m(x, Dense(3)(h));
          m.compile(optimizers::SGD({.learning_rate = 0.05, .momentum = 0.9}),
                    SparseCategoricalCrossentropy({.from_logits = true}));
          return m;
        },
        8}},
      {"functional_two_inputs",
       {[] {
          auto a = Input({6}), b = Input({4});
          auto h = layers::Concatenate()({Dense(5, {.activation = "relu"})(a), Dense(5, {.activation = "tanh"})(b)});
          Model m({a, b}, {Dense(3)(h)});
          m.compile(optimizers::Adam(), SparseCategoricalCrossentropy({.from_logits = true}));
          return m;
        },
        8}},
      {"functional_shared_layer",
       {[] {
          auto x = Input({6});
          Dense shared(6, {.activation = "tanh"});
          Model m(x, Dense(3)(shared(shared(x))));
          m.compile(optimizers::Adam(), SparseCategoricalCrossentropy({.from_logits = true}));
          return m;
        },
        8}},
      // Optimizers, weight decay, clipping, schedules and EMA: 20 steps of a small model each.
      {"opt_adamw",
       {[] {
          return compiled({Dense(16, {.activation = "relu", .input_shape = {8}}), Dense(4)},
                          optimizers::AdamW({.learning_rate = 0.01, .weight_decay = 0.05}),
                          SparseCategoricalCrossentropy({.from_logits = true}));
        },
        8}},
      {"opt_sgd_nesterov_weight_decay",
       {[] {
          return compiled(
              {Dense(8, {.activation = "tanh", .input_shape = {6}}), Dense(2)},
              optimizers::SGD({.learning_rate = 0.05, .momentum = 0.9, .nesterov = true, .weight_decay = 0.01}),
              losses::MeanSquaredError());
        },
        8}},
      {"opt_rmsprop_centered",
       {[] {
          return compiled({Dense(16, {.activation = "relu", .input_shape = {8}}), Dense(4)},
                          optimizers::RMSprop({.learning_rate = 0.01, .centered = true}),
                          SparseCategoricalCrossentropy({.from_logits = true}));
        },
        8}},
      {"opt_rmsprop_momentum",
       {[] {
          return compiled({Dense(16, {.activation = "relu", .input_shape = {8}}), Dense(4)},
                          optimizers::RMSprop({.learning_rate = 0.005, .momentum = 0.9, .centered = true}),
                          SparseCategoricalCrossentropy({.from_logits = true}));
        },
        8}},
      {"opt_adagrad",
       {[] {
          return compiled({Dense(16, {.activation = "relu", .input_shape = {8}}), Dense(4)},
                          optimizers::Adagrad({.learning_rate = 0.1}),
                          SparseCategoricalCrossentropy({.from_logits = true}));
        },
        8}},
      {"opt_muon",
       {[] {
          return compiled({Dense(16, {.activation = "relu", .input_shape = {8}}), Dense(4)},
                          optimizers::Muon({.learning_rate = 0.01}),
                          SparseCategoricalCrossentropy({.from_logits = true}));
        },
        8}},
      {"opt_muon_options",
       {[] {
          return compiled({Dense(16, {.activation = "relu", .input_shape = {8}}), Dense(4)},
                          optimizers::Muon({.learning_rate = 0.02,
                                            .adam_weight_decay = std::nullopt,
                                            .weight_decay = 0.01,
                                            .exclude_layers = {"dense_1"},
                                            .adam_lr_ratio = 0.1,
                                            .momentum = 0.9,
                                            .ns_steps = 3,
                                            .nesterov = false,
                                            .rms_rate = std::nullopt}),
                          SparseCategoricalCrossentropy({.from_logits = true}));
        },
        8}},
      {"constraints",
       {[] {
          return compiled(
              {Dense(16, {.activation = "relu", .kernel_constraint = constraints::unit_norm(), .input_shape = {8}}),
               Dense(4, {.kernel_constraint = constraints::max_norm(0.5), .bias_constraint = constraints::non_neg()})},
              optimizers::SGD({.learning_rate = 0.1, .momentum = 0.9}),
              SparseCategoricalCrossentropy({.from_logits = true}));
        },
        8}},
      {"opt_cosine_warmup",
       {[] {
          return compiled({Dense(16, {.activation = "relu", .input_shape = {8}}), Dense(4)},
                          optimizers::Adam({.learning_rate = schedules::CosineDecay({.initial_learning_rate = 0.0,
                                                                                     .decay_steps = 15,
                                                                                     .alpha = 0.1,
                                                                                     .warmup_target = 0.01,
                                                                                     .warmup_steps = 5})}),
                          SparseCategoricalCrossentropy({.from_logits = true}));
        },
        8}},
      {"opt_sgd_clipnorm",
       {[] {
          return compiled({Dense(8, {.activation = "relu", .input_shape = {6}}), Dense(2)},
                          optimizers::SGD({.learning_rate = 0.05, .clipnorm = 0.5}), losses::MeanSquaredError());
        },
        8}},
      {"opt_adam_global_clipnorm",
       {[] {
          return compiled({Dense(16, {.activation = "relu", .input_shape = {8}}), Dense(4)},
                          optimizers::Adam({.learning_rate = 0.01, .global_clipnorm = 0.3}),
                          SparseCategoricalCrossentropy({.from_logits = true}));
        },
        8}},
      {"opt_sgd_clipvalue",
       {[] {
          return compiled({Dense(8, {.activation = "relu", .input_shape = {6}}), Dense(2)},
                          optimizers::SGD({.learning_rate = 0.05, .clipvalue = 0.1}), losses::MeanSquaredError());
        },
        8}},
      {"opt_ema_overwrite",
       {[] {
          return compiled({Dense(16, {.activation = "relu", .input_shape = {8}}), Dense(4)},
                          optimizers::SGD({.learning_rate = 0.1,
                                           .momentum = 0.9,
                                           .use_ema = true,
                                           .ema_momentum = 0.9,
                                           .ema_overwrite_frequency = 5}),
                          SparseCategoricalCrossentropy({.from_logits = true}));
        },
        8}},
      // Built under the dtype policy parity.py writes to policy.txt ("mixed_bfloat16"): the CIFAR-10
      // seed, and a convolution, BatchNormalization (normalizing in float32) and a softmax head.
      {"mixed_bf16_cifar10_cnn",
       {[] {
          return compiled({Conv2D(32, {3, 3}, {.activation = "relu", .input_shape = {32, 32, 3}}), MaxPooling2D({2, 2}),
                           Flatten(), Dense(64, {.activation = "relu"}), Dense(10)},
                          optimizers::Adam(), SparseCategoricalCrossentropy({.from_logits = true}));
        },
        10}},
      {"mixed_bf16_conv_batchnorm",
       {[] {
          return compiled({Conv2D(8, {3, 3}, {.use_bias = false, .input_shape = {10, 10, 3}}), BatchNormalization(),
                           Activation("relu"), GlobalAveragePooling2D(), Dense(4, {.activation = "softmax"})},
                          optimizers::SGD({.learning_rate = 0.05, .momentum = 0.9}), SparseCategoricalCrossentropy());
        },
        8}},
      // Callbacks in fit: the rates they set, the epochs they run, the weights they restore.
      {"cb_reduce_lr_on_plateau",
       {[] {
          return compiled({Dense(8, {.activation = "tanh", .input_shape = {6}}), Dense(2)},
                          optimizers::SGD({.learning_rate = 0.1}), losses::MeanSquaredError());
        },
        8, 8,
        [] {
          return std::vector<std::shared_ptr<Callback>>{
              std::make_shared<callbacks::ReduceLROnPlateau>(callbacks::ReduceLROnPlateauOptions{
                  .monitor = "loss", .factor = 0.3, .patience = 1, .min_delta = 1e9, .cooldown = 2, .min_lr = 0.004})};
        }}},
      {"cb_learning_rate_scheduler",
       {[] {
          return compiled({Dense(8, {.activation = "tanh", .input_shape = {6}}), Dense(2)},
                          optimizers::Adam({.learning_rate = 0.01}), losses::MeanSquaredError());
        },
        8, 6,
        [] {
          return std::vector<std::shared_ptr<Callback>>{std::make_shared<callbacks::LearningRateScheduler>(
              [](int epoch, double lr) { return epoch < 2 ? lr : lr * 0.7; })};
        }}},
      {"cb_early_stopping_restore",
       {[] {
          return compiled({Dense(8, {.activation = "tanh", .input_shape = {6}}), Dense(2)},
                          optimizers::SGD({.learning_rate = 0.1}), losses::MeanSquaredError());
        },
        8, 10,
        [] {
          return std::vector<std::shared_ptr<Callback>>{
              std::make_shared<callbacks::EarlyStopping>(callbacks::EarlyStoppingOptions{
                  .monitor = "loss", .patience = 2, .mode = "max", .restore_best_weights = true})};
        }}},
  };
  return all;
}

// The loss of each batch before its update, as Keras' train_on_batch returns it.
std::vector<double> train_steps(Model& model, const std::vector<Tensor>& x, const Tensor& y, int64_t batch) {
  std::vector<Tensor> params = model.trainable_weights();
  std::vector<double> losses;
  for (int64_t b0 = 0; b0 < y.size(0); b0 += batch) {
    const int64_t b1 = std::min(y.size(0), b0 + batch);
    std::vector<Tensor> xb;
    xb.reserve(x.size());
    for (const Tensor& t : x) xb.push_back(t.slice_rows(b0, b1));
    const Tensor yb = y.slice_rows(b0, b1);
    // train_on_batch's mode; the loss includes the layers' penalties, as Keras' does.
    const Tensor loss = model.compute_loss(yb, model(xb, /*training=*/true).front());
    for (Tensor& p : params) p.zero_grad();
    loss.backward();
    model.optimizer()->step(params);
    model.apply_constraints();  // as fit does after each update
    losses.push_back(loss.item());
  }
  return losses;
}

// A model's inputs: STEM.npy, or STEM_0.npy, STEM_1.npy, ... for a model of several inputs.
std::vector<Tensor> read_inputs(const std::string& stem) {
  if (std::filesystem::exists(stem + ".npy")) return {io::load_npy(stem + ".npy")};
  std::vector<Tensor> out;
  for (int i = 0; std::filesystem::exists(stem + "_" + std::to_string(i) + ".npy"); ++i)
    out.push_back(io::load_npy(stem + "_" + std::to_string(i) + ".npy"));
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  kiln::set_default_device(kiln::Device::cpu());  // parity is defined on the CPU
  if (argc != 4) {
    std::cerr << "usage: kiln_parity_driver CASE IN_DIR OUT_DIR\ncases:";
    for (const auto& [name, c] : cases()) std::cerr << ' ' << name;
    std::cerr << '\n';
    return 2;
  }
  const std::string name = argv[1], in = argv[2], out = argv[3];
  const auto it = cases().find(name);
  if (it == cases().end()) {
    std::cerr << "kiln_parity_driver: unknown case '" << name << "'\n";
    return 2;
  }
  try {
    const Case& c = it->second;
    // The policy holds while the layers are constructed (each keeps the one it was built under),
    // as keras.mixed_precision.set_global_policy does around the Keras model.
    if (std::ifstream policy_file{in + "/policy.txt"}) {
      std::string policy;
      policy_file >> policy;
      mixed_precision::set_global_policy(policy);
    }
    Model model = c.make();
    mixed_precision::set_global_policy("float32");
    model.load_weights(in + "/initial.safetensors");
    const std::vector<Tensor> x = read_inputs(in + "/x"), x_pred = read_inputs(in + "/x_pred");
    const Tensor y = io::load_npy(in + "/y.npy");
    std::vector<double> losses;
    if (c.epochs > 0) {
      losses = model
                   .fit(x, std::vector<Tensor>{y},
                        {.batch_size = c.batch_size,
                         .epochs = c.epochs,
                         .verbose = 0,
                         .shuffle = false,
                         .callbacks = c.callbacks ? c.callbacks() : std::vector<std::shared_ptr<Callback>>{}})
                   .history.at("loss");
    } else {
      losses = train_steps(model, x, y, c.batch_size);
    }
    io::save_npy(out + "/losses.npy", Tensor::from_vector(losses));
    model.save_weights(out + "/final.safetensors");
    // NumPy has no bfloat16: a mixed policy's 16-bit predictions are written widened (exactly).
    io::save_npy(out + "/pred.npy", model.predict(x_pred).front().astype(DType::Float32));
  } catch (const std::exception& e) {
    std::cerr << "kiln_parity_driver " << name << ": " << e.what() << '\n';
    return 1;
  }
  return 0;
}
