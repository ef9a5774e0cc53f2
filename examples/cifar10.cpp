// The Keras CIFAR-10 CNN: Conv2D(32, 3x3, relu) -> MaxPooling2D(2x2) -> Flatten -> Dense(64, relu)
// -> Dense(10), Adam, sparse categorical cross-entropy from logits, batch 10. Reports the test
// accuracy after every epoch; optionally saves the model, the history (CSV) and a chart (SVG).
// Recipe flags: --augment puts RandomFlip("horizontal") and RandomTranslation of up to 4 pixels
// (zero fill, whole pixels) in front of the network, drawn on the device inside the recorded step
// and idle at test time; --schedule cosine decays Adam's rate to 0 over the run (Keras'
// CosineDecay); --weight-decay adds Keras 3's decoupled weight decay.
// --tf32 lets a GPU run float32 products and convolutions as TF32 (faster, ~1e-3 relative error per
// product); the run's header and summary say which math it used. --dtype-policy mixed_bfloat16 or
// mixed_float16 sets Keras' global mixed precision policy before the model is built.
#include <kiln/datasets/cifar10.h>
#include <kiln/kiln.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <iostream>

#include "dtype_policy_option.h"
#include "epoch_reporter.h"

int main(int argc, char** argv) {
  CLI::App app{"kiln CIFAR-10 example: the Keras getting-started CNN"};
  std::string data_dir = "build/cifar10", device_name = "auto", save_path, history_path, plot_path;
  int epochs = 100, verbose = 1, threads = 0;
  int64_t batch_size = 10, validation_batch_size = 1000, limit = 0;
  uint64_t seed = 0;
  app.add_option("--data", data_dir, "folder with cifar-10-batches-bin/ (official binary format)");
  app.add_option("--epochs", epochs, "training epochs")->check(CLI::PositiveNumber);
  app.add_option("--batch-size", batch_size, "samples per training step")->check(CLI::PositiveNumber);
  app.add_option("--validation-batch-size", validation_batch_size,
                 "samples per step of the test-set evaluation after each epoch (speed only)")
      ->check(CLI::PositiveNumber);
  app.add_option("--seed", seed, "seed of the initial weights and the shuffles");
  app.add_option("--threads", threads, "CPU threads (default: all cores)")->check(CLI::NonNegativeNumber);
  app.add_option("--device", device_name, "cpu, gpu, gpu:N or auto (the first usable GPU, else the CPU)");
  app.add_option("--save", save_path, "write the trained model (config, weights, optimizer state) here");
  app.add_option("--history", history_path, "write per-epoch loss and accuracy as CSV here");
  app.add_option("--plot", plot_path, "write loss and accuracy curves as SVG here");
  app.add_option("--limit", limit, "use only the first N training and test images (quick runs)");
  app.add_option("--verbose", verbose, "0 silent, 1 progress bar, 2 one line per epoch")->check(CLI::Range(0, 2));
  bool augment = false;
  std::string schedule = "constant";
  double weight_decay = 0.0;
  app.add_flag("--augment", augment, "random horizontal flips and shifts of up to 4 pixels while training");
  app.add_option("--schedule", schedule, "constant, or cosine (Keras' CosineDecay of Adam's rate over all steps)")
      ->check(CLI::IsMember({"constant", "cosine"}));
  app.add_option("--weight-decay", weight_decay, "decoupled weight decay (Keras 3's rule), 0 for none")
      ->check(CLI::NonNegativeNumber);
  bool test_at_end = false;
  app.add_flag("--test-at-end", test_at_end,
               "evaluate the test set once after training instead of after every epoch (epoch times then hold "
               "training only)");
  bool tf32 = false;
  app.add_flag("--tf32", tf32,
               "on a GPU, run float32 matmuls and convolutions as TF32 on tensor cores (faster; about 1e-3 "
               "relative error per product instead of float32's 1e-7)");
  std::string dtype_policy = "float32";
  examples::add_dtype_policy_option(app, dtype_policy);
  CLI11_PARSE(app, argc, argv);

  try {
    if (threads > 0) kiln::set_num_threads(threads);
    kiln::config::enable_tensor_float_32_execution(tf32);
    // "auto" lets kiln pick (and say why); an explicit device is used as asked, or fails saying why.
    if (device_name != "auto") kiln::set_default_device(kiln::Device::parse(device_name));
    const kiln::Device device = kiln::model_device();
    namespace cifar10 = kiln::datasets::cifar10;
    auto data = cifar10::load_data(data_dir, limit > 0 ? std::optional<int64_t>(limit) : std::nullopt);
    const kiln::Tensor x_train = cifar10::to_float(data.train.images), x_test = cifar10::to_float(data.test.images);
    std::printf("CIFAR-10: %lld training and %lld test images\n", static_cast<long long>(data.train.size()),
                static_cast<long long>(data.test.size()));

    kiln::utils::set_random_seed(seed);
    // Layers take the global policy when they are built, so it is set first.
    kiln::mixed_precision::set_global_policy(dtype_policy);
    kiln::Sequential model;
    if (augment) {
      model.add(kiln::layers::RandomFlip("horizontal", {.input_shape = {32, 32, 3}}));
      model.add(kiln::layers::RandomTranslation(0.125, 0.125, {.fill_mode = "constant", .interpolation = "nearest"}));
    }
    model.add(kiln::layers::Conv2D(
        32, {3, 3},
        {.activation = "relu", .input_shape = augment ? std::vector<int64_t>{} : std::vector<int64_t>{32, 32, 3}}));
    model.add(kiln::layers::MaxPooling2D({2, 2}));
    model.add(kiln::layers::Flatten());
    model.add(kiln::layers::Dense(64, {.activation = "relu"}));
    // The logits in float32 under a mixed policy, as Keras' mixed precision guide advises.
    model.add(kiln::layers::Dense(10, {.dtype = "float32"}));
    kiln::optimizers::AdamOptions adam;
    const int64_t steps = epochs * ((data.train.size() + batch_size - 1) / batch_size);
    if (schedule == "cosine")
      adam.learning_rate = kiln::schedules::CosineDecay({.initial_learning_rate = 0.001, .decay_steps = steps});
    if (weight_decay > 0) adam.weight_decay = weight_decay;
    model.compile(kiln::optimizers::Adam(adam), kiln::losses::SparseCategoricalCrossentropy({.from_logits = true}),
                  {"accuracy"});
    model.summary();
    // TF32 only changes GPU math; on the CPU the flag has no effect, and the line says so.
    // A mixed policy computes the layers in 16 bits (the logits layer and the loss in float32).
    const std::string float_math = !tf32              ? "float32"
                                   : device.is_cuda() ? "TF32 (float32 storage)"
                                                      : "float32 (TF32 is GPU-only)";
    const std::string math = dtype_policy == "float32" ? float_math : dtype_policy + ", float32 logits and loss";
    std::printf("training on %s (%d CPU threads), math: %s\n", device.str().c_str(), kiln::get_num_threads(),
                math.c_str());

    const auto start = std::chrono::steady_clock::now();
    auto timer = std::make_shared<examples::EpochTimer>();
    kiln::FitOptions fit{
        .batch_size = batch_size,
        .epochs = epochs,
        .verbose = verbose,
        .validation_batch_size = validation_batch_size,
        .callbacks = {timer, std::make_shared<examples::EpochReporter>(epochs, history_path, plot_path)}};
    if (!test_at_end) fit.validation_data = {{x_test, data.test.labels}};
    model.fit(x_train, data.train.labels, fit);
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::printf("trained %d epochs in %.1f s (%.2f s per epoch) on %s, math: %s\n", epochs, seconds, seconds / epochs,
                device.str().c_str(), math.c_str());
    const double epoch_s = timer->median_after_first();
    std::printf("epoch (median after the first): %.3f s, %.1f steps/s\n", epoch_s,
                epoch_s > 0 ? static_cast<double>((data.train.size() + batch_size - 1) / batch_size) / epoch_s : 0.0);
    if (test_at_end) {
      const auto test = model.evaluate(x_test, data.test.labels, {.batch_size = validation_batch_size, .verbose = 0});
      std::printf("test accuracy %.4f, test loss %.4f\n", test.at("accuracy"), test.at("loss"));
    }
    if (!save_path.empty()) {
      model.save(save_path);
      std::printf("saved the model to %s\n", save_path.c_str());
    }
  } catch (const kiln::Error& e) {
    std::cerr << e.what() << '\n';
    return 1;
  }
  return 0;
}
