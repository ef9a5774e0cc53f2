// Fast CIFAR-10 training with kiln's public API: the method of Keller Jordan's airbench94 (arXiv
// 2404.00498), whose PyTorch script is the peer this program is measured against. The network: a
// 2x2 'valid' convolution whose kernel whitens the training images' patches and stays frozen
// (kiln::utils::patch_whitening_kernel) while its bias trains, GELU, three blocks of
// conv-pool-BN-GELU-conv-BN-GELU (64, 256, 256 filters; BatchNormalization without scale, momentum
// 0.6, offsets at 64x the learning rate), max pooling to 1x1, and a bias-free Dense(10) whose
// logits are scaled by 1/9; kernels drawn as PyTorch draws them, with identity filters. Random
// flips and 2-pixel translations run on the device as the model's first layers; SGD with Nesterov
// momentum, decoupled weight decay and a linear warm-up then decay of the learning rate; Lookahead
// through the scheduled weight average; label smoothing 0.2; batch 1024; mixed_float16; test-time
// augmentation averaging mirrored and 1-pixel-translated views. The time of a run counts, as the
// peer does, from the images on the device to the final test accuracy: normalizing, whitening,
// training and the augmented evaluation; building the model is reported apart.
//
// `--optimizer muon` follows airbench94_muon instead: batch 2000 for 8 epochs, Muon (Keras' rule,
// extended to convolution kernels; 3 Newton-Schulz steps, momentum 0.6, no RMS scaling) on the
// 3x3 kernels, which a UnitNorm constraint keeps at unit-norm filters as the peer renormalizes
// them, AdamW (Muon's own, at a fraction of its rate) on the offsets, the whitening bias and the
// head, whose kernel starts at unit deviation and whose logits are divided by 256; both rates fall
// linearly to 0, and no weight average.
#include <kiln/datasets/cifar10.h>
#include <kiln/kiln.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <functional>
#include <iostream>
#include <memory>
#include <numeric>
#include <optional>
#include <vector>

#include "dtype_policy_option.h"

namespace {

namespace layers = kiln::layers;

// airbench94's optimizer numbers in its own form: learning rate and weight decay per 1024 examples
// of a summed loss, and the momentum. Its "kilostep scale" 1 + 1 / (1 - momentum) is how much a
// Nesterov step at a steady gradient exceeds the learning rate.
constexpr double kPeerLearningRate = 11.5, kPeerWeightDecay = 0.0153, kPeerMomentum = 0.85;
constexpr double kKilostepScale = 1.0 + 1.0 / (1.0 - kPeerMomentum);

// The recipe's numbers in Keras' conventions: a mean loss over the batch of 1024, Keras' momentum
// for BatchNormalization, decoupled weight decay.
struct Recipe {
  int epochs = 10;
  int64_t batch_size = 1024;
  double momentum = kPeerMomentum;
  // The peer's rate over its kilostep scale is per example of a summed loss: times 1024 for a mean.
  double learning_rate = kPeerLearningRate / kKilostepScale;
  // The peer's decay (kPeerWeightDecay / kKilostepScale per step) goes through the momentum
  // (PyTorch's coupled rule), which at a steady state multiplies it by 1 / (1 - momentum); Keras'
  // decoupled rule decays each step by weight_decay * learning_rate.
  double weight_decay = kPeerWeightDecay / kKilostepScale / (1.0 - kPeerMomentum) / learning_rate;
  double label_smoothing = 0.2;
  double warmup_fraction = 0.23;  // of all steps: the rate rises linearly from 0.2x to 1x
  double final_factor = 0.07;     // then falls linearly to 0.07x
  double batchnorm_momentum = 0.6;
  // BatchNormalization's offsets train at 64 times the rate (their weight decay does not).
  double offset_learning_rate_multiplier = 64.0;
  double logit_scale = 1.0 / 9.0;
  // Lookahead every 5 steps: the slow weights move by 1 - d toward the fast ones, which restart from
  // them; d rises as 0.95^5 (t / T)^3 over the run, and the slow weights are the result.
  int64_t lookahead_period = 5;
  bool lookahead = true;
  int64_t whitening_images = 5000;
  // airbench94_muon's choices (--optimizer muon).
  bool muon = false;
  double adam_lr_ratio = 0.8;      // AdamW's rate over Muon's (best of a sweep, bench/README.md)
  bool unit_norm_filters = false;  // a UnitNorm constraint on the 3x3 kernels
  bool unit_head = false;          // the head's kernel drawn at unit deviation
};

// airbench94_muon's recipe in Keras' conventions: its rate of 0.24 for Muon's orthogonal step
// needs no conversion (the step does not scale with the loss).
Recipe muon_recipe() {
  Recipe r;
  r.muon = true;
  r.epochs = 8;
  r.batch_size = 2000;
  r.learning_rate = 0.24;
  r.momentum = 0.6;
  r.lookahead = false;
  r.logit_scale = 1.0 / 256;
  r.offset_learning_rate_multiplier = 1.0;
  r.unit_norm_filters = true;
  r.unit_head = true;
  return r;
}

// Conv2D 3x3 'same' without bias (BatchNormalization follows), then max pooling when asked, then
// BatchNormalization without scale and GELU.
kiln::SymbolicTensor conv_bn_gelu(const kiln::SymbolicTensor& x, int64_t filters, bool pool, const Recipe& recipe) {
  kiln::SymbolicTensor h = layers::Conv2D(
      filters, {3, 3},
      {.padding = "same",
       .use_bias = false,
       .kernel_constraint = recipe.unit_norm_filters ? kiln::constraints::unit_norm({0, 1, 2}) : nullptr})(x);
  if (pool) h = layers::MaxPooling2D({2, 2})(h);
  h = layers::BatchNormalization({.momentum = recipe.batchnorm_momentum, .epsilon = 1e-12, .scale = false})(h);
  return layers::Activation("gelu")(h);
}

// The weights drawn as the peer draws them: PyTorch's default U(-1/sqrt(fan_in), 1/sqrt(fan_in))
// (Keras' VarianceScaling(1/3, "fan_in", "uniform")), and each 3x3 convolution's first min(C, F)
// filters the identity (Identity, PyTorch's dirac_), so a block starts close to passing its input.
void draw_weights_as_the_peer(kiln::Model& model, const kiln::Layer& whitening, const Recipe& recipe) {
  namespace initializers = kiln::initializers;
  const initializers::VarianceScaling uniform(1.0 / 3, "fan_in", "uniform");
  const initializers::RandomUniform unit_uniform(-std::sqrt(3.0), std::sqrt(3.0));  // deviation 1
  for (const auto& layer : model.layers()) {
    const std::string kind = layer->class_name();
    if ((kind != "Conv2D" && kind != "Dense") || layer.get() == &whitening) continue;
    const kiln::Tensor old = layer->named_weights().front().second;
    const kiln::Shape& shape = old.shape();
    kiln::Tensor kernel = kind == "Dense" && recipe.unit_head ? unit_uniform(shape, model.generator(), old.device())
                                                              : uniform(shape, model.generator(), old.device());
    if (kind == "Conv2D") {
      const int64_t kh = shape[0], kw = shape[1], c = shape[2], f = shape[3], same = std::min(c, f);
      const kiln::Tensor identity = initializers::Identity()(shape, model.generator(), old.device());
      kernel = same == f ? identity
                         : kiln::concatenate({kiln::slice(identity, {0, 0, 0, 0}, {kh, kw, c, same}),
                                              kiln::slice(kernel, {0, 0, 0, same}, {kh, kw, c, f - same})},
                                             -1);
    }
    layer->set_weight("kernel", kernel);
  }
}

struct Network {
  kiln::Model model;
  std::shared_ptr<layers::Conv2D> whitening;
};

Network make_network(const Recipe& recipe, const kiln::Tensor& whitening_kernel) {
  const kiln::SymbolicTensor input = kiln::Input({32, 32, 3});
  kiln::SymbolicTensor h = layers::RandomFlip("horizontal")(input);
  h = layers::RandomTranslation(2.0 / 32, 2.0 / 32, {.fill_mode = "reflect", .interpolation = "nearest"})(h);
  auto whitening = std::make_shared<layers::Conv2D>(whitening_kernel.size(3), std::array<int64_t, 2>{2, 2});
  h = layers::Activation("gelu")((*whitening)(h));
  for (const int64_t filters : {64, 256, 256}) {
    h = conv_bn_gelu(h, filters, true, recipe);
    h = conv_bn_gelu(h, filters, false, recipe);
  }
  h = layers::MaxPooling2D({3, 3})(h);
  h = layers::Flatten()(h);
  // The logits in float32 under a mixed policy (Keras' advice for a model's last layers).
  h = layers::Dense(10, {.use_bias = false, .dtype = "float32"})(h);  // named "dense": Muon leaves it to AdamW
  h = layers::Rescaling(recipe.logit_scale, {.dtype = "float32"})(h);
  Network net{kiln::Model(input, h, "speedrun"), whitening};
  draw_weights_as_the_peer(net.model, *net.whitening, recipe);
  // The whitening kernel stays as computed; its bias trains (the peer trains it for the first three
  // epochs only, which would need a new optimizer here, so kiln trains it throughout).
  net.whitening->set_weight("kernel", whitening_kernel.to(net.model.device()));
  net.whitening->set_weight_trainable("kernel", false);
  for (const auto& layer : net.model.layers())
    if (layer->class_name() == "BatchNormalization")
      layer->set_learning_rate_multiplier("beta", recipe.offset_learning_rate_multiplier);
  return net;
}

// (images - mean) / std per channel, in float32 on the images' device.
kiln::Tensor normalize(const kiln::Tensor& images_u8) {
  const kiln::Device device = images_u8.device();
  const auto mean = kiln::Tensor::from_vector(std::vector<float>{0.4914F, 0.4822F, 0.4465F}, device);
  const auto inv_std = kiln::Tensor::from_vector(std::vector<float>{1 / 0.2470F, 1 / 0.2435F, 1 / 0.2616F}, device);
  return kiln::mul(kiln::sub(kiln::mul(kiln::cast(images_u8, kiln::DType::Float32), 1.0 / 255), mean), inv_std);
}

// The images resampled per sample by (ay, by, ax, bx) (kiln::image_transform), reflecting at edges.
kiln::Tensor transformed(const kiln::Tensor& images, float ay, float by, float ax, float bx) {
  const int64_t n = images.size(0);
  std::vector<float> t;
  t.reserve(static_cast<std::size_t>(n) * 4);
  for (int64_t i = 0; i < n; ++i) t.insert(t.end(), {ay, by, ax, bx});
  const auto transforms = kiln::Tensor::from_vector(t, kiln::Shape{n, 4}, images.device());
  return kiln::image_transform(images, transforms, {images.size(1), images.size(2)}, kiln::Interpolation::Nearest,
                               kiln::FillMode::Reflect);
}

// Test-time augmentation (airbench's level 2): half the logits of the image and its mirror, half
// the mean of the same for the image shifted one pixel up-left and one down-right.
struct Accuracies {
  double plain = 0.0;
  double augmented = 0.0;
};

// The fraction of rows of `logits` whose largest entry is at the label.
double accuracy(const kiln::Tensor& logits, const std::vector<int32_t>& labels) {
  const std::vector<int32_t> predicted = kiln::argmax(logits).to_vector<int32_t>();
  int64_t right = 0;
  for (std::size_t i = 0; i < labels.size(); ++i) right += predicted[i] == labels[i];
  return static_cast<double>(right) / static_cast<double>(labels.size());
}

Accuracies evaluate(kiln::Model& model, const kiln::Tensor& images, const kiln::Tensor& labels) {
  const float w = static_cast<float>(images.size(2) - 1);
  auto logits = [&](const kiln::Tensor& x) { return model.predict(x, {.batch_size = 2000}); };
  // The mean of x's logits (given) and its mirror's.
  auto with_mirror = [&](const kiln::Tensor& x, const kiln::Tensor& own) {
    return kiln::mul(kiln::add(own, logits(transformed(x, 1, 0, -1, w))), 0.5);
  };
  const kiln::Tensor plain = logits(images);
  const kiln::Tensor up = transformed(images, 1, 1, 1, 1), down = transformed(images, 1, -1, 1, -1);
  const kiln::Tensor shifted = kiln::mul(kiln::add(with_mirror(up, logits(up)), with_mirror(down, logits(down))), 0.5);
  const kiln::Tensor augmented = kiln::mul(kiln::add(with_mirror(images, plain), shifted), 0.5);
  const std::vector<int32_t> y = labels.to_vector<int32_t>();
  return {accuracy(plain, y), accuracy(augmented, y)};
}

// The optimizer of `recipe` over a run of `total_steps`.
std::unique_ptr<kiln::Optimizer> make_optimizer(const Recipe& recipe, int64_t total_steps) {
  const double lr = recipe.learning_rate;
  if (recipe.muon) {
    // airbench94_muon: every rate falls linearly to 0 over the run. Its SGD's coupled decay of the
    // offsets and the head, 2e-6 per example through momentum 0.85, is 0.0267 of the weight per
    // step at the start; AdamW's decoupled decay takes it at Muon's rate.
    auto linear = [=](int64_t step) {
      return lr * std::max(0.0, 1.0 - static_cast<double>(step) / static_cast<double>(total_steps));
    };
    const double per_step_decay = 2e-6 * static_cast<double>(recipe.batch_size) / (1.0 - 0.85);
    return std::make_unique<kiln::optimizers::Muon>(
        kiln::optimizers::MuonOptions{.learning_rate = std::function<double(int64_t)>(linear),
                                      .adam_weight_decay = per_step_decay / lr,
                                      .weight_decay = std::nullopt,
                                      .exclude_layers = {"dense"},
                                      .adam_lr_ratio = recipe.adam_lr_ratio,
                                      .momentum = recipe.momentum,
                                      .ns_steps = 3,
                                      .nesterov = true,
                                      .rms_rate = std::nullopt,
                                      .orthogonalize_conv_kernels = true});
  }
  const auto warmup_steps = static_cast<int64_t>(recipe.warmup_fraction * static_cast<double>(total_steps));
  const double final_factor = recipe.final_factor;
  auto schedule = [=](int64_t step) {
    if (step < warmup_steps) {
      const double f = static_cast<double>(step) / static_cast<double>(warmup_steps);
      return lr * (0.2 * (1 - f) + f);
    }
    const double f =
        std::min(1.0, static_cast<double>(step - warmup_steps) / static_cast<double>(total_steps - warmup_steps));
    return lr * ((1 - f) + final_factor * f);
  };
  // Lookahead through Keras' weight average: momentum 1 (the average stays) between its overwrites
  // of the weights every `period` steps, d there.
  const int64_t period = recipe.lookahead_period;
  auto lookahead = [=](int64_t step) {
    if ((step + 1) % period != 0) return 1.0;
    return std::pow(0.95, 5) *
           std::pow(std::min(1.0, static_cast<double>(step + 1) / static_cast<double>(total_steps)), 3);
  };
  kiln::optimizers::SGDOptions sgd{.learning_rate = std::function<double(int64_t)>(schedule),
                                   .momentum = recipe.momentum,
                                   .nesterov = true,
                                   .weight_decay = recipe.weight_decay};
  if (recipe.lookahead) {
    sgd.use_ema = true;
    sgd.ema_momentum = std::function<double(int64_t)>(lookahead);
    sgd.ema_overwrite_frequency = period;
  }
  return std::make_unique<kiln::optimizers::SGD>(sgd);
}

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

double mean_of(const std::vector<double>& v) { return std::accumulate(v.begin(), v.end(), 0.0) / v.size(); }

double std_of(const std::vector<double>& v) {
  if (v.size() < 2) return 0.0;
  const double m = mean_of(v);
  double s = 0.0;
  for (const double x : v) s += (x - m) * (x - m);
  return std::sqrt(s / static_cast<double>(v.size() - 1));
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"kiln CIFAR-10 speedrun: airbench94's method with kiln's public API"};
  std::string optimizer = "sgd";
  std::optional<int> epochs;
  std::optional<double> learning_rate, adam_lr_ratio;
  std::string data_dir = "build/cifar10", device_name = "auto", dtype_policy = "mixed_float16";
  int runs = 1;
  int64_t limit = 0;
  uint64_t seed = 0;
  app.add_option("--data", data_dir, "folder with cifar-10-batches-bin/ (official binary format)");
  app.add_option("--runs", runs, "independent training runs (each from new weights)")->check(CLI::PositiveNumber);
  app.add_option("--optimizer", optimizer, "sgd (airbench94's recipe) or muon (airbench94_muon's)")
      ->check(CLI::IsMember({"sgd", "muon"}));
  app.add_option("--epochs", epochs, "training epochs (the recipe's by default)")->check(CLI::PositiveNumber);
  app.add_option("--learning-rate", learning_rate, "the recipe's peak learning rate, changed")
      ->check(CLI::PositiveNumber);
  app.add_option("--adam-lr-ratio", adam_lr_ratio, "muon: AdamW's rate over Muon's")->check(CLI::PositiveNumber);
  app.add_option("--seed", seed, "seed of the first run (run i uses seed + i)");
  bool no_lookahead = false;
  app.add_flag("--no-lookahead", no_lookahead, "train without the lookahead weight average (for comparison)");
  app.add_option("--limit", limit, "use only the first N training and test images (quick runs)");
  app.add_option("--device", device_name, "cpu, gpu, gpu:N or auto (the first usable GPU, else the CPU)");
  examples::add_dtype_policy_option(app, dtype_policy);
  CLI11_PARSE(app, argc, argv);
  Recipe recipe = optimizer == "muon" ? muon_recipe() : Recipe{};
  if (no_lookahead) recipe.lookahead = false;
  if (epochs) recipe.epochs = *epochs;
  if (learning_rate) recipe.learning_rate = *learning_rate;
  if (adam_lr_ratio) recipe.adam_lr_ratio = *adam_lr_ratio;

  try {
    if (device_name != "auto") kiln::set_default_device(kiln::Device::parse(device_name));
    namespace cifar10 = kiln::datasets::cifar10;
    const auto data = cifar10::load_data(data_dir, limit > 0 ? std::optional<int64_t>(limit) : std::nullopt);
    const kiln::Device device = kiln::model_device();
    // The data on the device, as the peer keeps it; the timed part starts from here.
    const kiln::Tensor train_u8 = data.train.images.to(device), test_u8 = data.test.images.to(device);
    const kiln::Tensor train_labels = data.train.labels.to(device);
    kiln::mixed_precision::set_global_policy(dtype_policy);
    std::printf("CIFAR-10 speedrun on %s: %s, %d epochs at batch %lld, learning rate %g, dtype policy %s\n",
                device.str().c_str(), optimizer.c_str(), recipe.epochs, static_cast<long long>(recipe.batch_size),
                recipe.learning_rate, dtype_policy.c_str());
    std::printf("run  build_s  whiten_s  train_s  eval_s  total_s  accuracy  tta_accuracy\n");

    std::vector<double> accuracies, times;
    for (int run = 0; run < runs; ++run) {
      kiln::utils::set_random_seed(seed + static_cast<uint64_t>(run));
      auto start = std::chrono::steady_clock::now();
      const kiln::Tensor x_train = normalize(train_u8), x_test = normalize(test_u8);
      const kiln::Tensor kernel = kiln::utils::patch_whitening_kernel(
          x_train.slice_rows(0, std::min(recipe.whitening_images, x_train.size(0))), {2, 2});
      const double whiten_s = seconds_since(start);

      const auto build_start = std::chrono::steady_clock::now();
      Network net = make_network(recipe, kernel);
      const int64_t steps_per_epoch = (x_train.size(0) + recipe.batch_size - 1) / recipe.batch_size;
      const int64_t total_steps = steps_per_epoch * recipe.epochs;
      net.model.compile(*make_optimizer(recipe, total_steps),
                        kiln::losses::SparseCategoricalCrossentropy(
                            {.from_logits = true, .label_smoothing = recipe.label_smoothing}));
      const double build_s = seconds_since(build_start);

      const auto train_start = std::chrono::steady_clock::now();
      net.model.fit(x_train, train_labels, {.batch_size = recipe.batch_size, .epochs = recipe.epochs, .verbose = 0});
      const double train_s = seconds_since(train_start);
      const auto eval_start = std::chrono::steady_clock::now();
      const Accuracies acc = evaluate(net.model, x_test, data.test.labels);
      const double eval_s = seconds_since(eval_start);
      const double total_s = whiten_s + train_s + eval_s;
      std::printf("%3d  %7.3f  %8.3f  %7.3f  %6.3f  %7.3f  %8.4f  %12.4f\n", run, build_s, whiten_s, train_s, eval_s,
                  total_s, acc.plain, acc.augmented);
      std::fflush(stdout);
      if (run == 0 && !net.model.last_fit_execution().recorded)
        std::printf("(training steps ran eagerly: %s)\n", net.model.last_fit_execution().reason.c_str());
      accuracies.push_back(acc.augmented);
      times.push_back(total_s);
    }
    std::printf("mean tta accuracy %.4f (std %.4f), mean time %.3f s (std %.3f) over %d runs\n", mean_of(accuracies),
                std_of(accuracies), mean_of(times), std_of(times), runs);
  } catch (const kiln::Error& e) {
    std::cerr << e.what() << '\n';
    return 1;
  }
  return 0;
}
