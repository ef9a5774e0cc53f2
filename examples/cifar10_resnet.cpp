// ResNet-20 for CIFAR-10 as He et al. (2016) define it, written with kiln's functional API: a 3x3
// convolution, three stages of three basic blocks (16, 32 and 64 filters; the first block of the
// second and third stage halves the size), each block conv-BN-ReLU-conv-BN plus a shortcut (a 1x1
// projection with BatchNormalization where the shape changes), ReLU, then global average pooling and
// Dense(10) logits. SGD with momentum 0.9 at batch 128, optionally with decoupled weight decay and a
// cosine schedule. bench/resnet20_torch.py is the same network and recipe in PyTorch. The network
// itself is examples/resnet20.h, which the model-zoo benchmark (bench/zoo) trains too. --dtype-policy
// sets Keras' global mixed precision policy before the model is built.
#include <kiln/datasets/cifar10.h>
#include <kiln/kiln.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <iostream>

#include "dtype_policy_option.h"
#include "epoch_reporter.h"
#include "resnet20.h"

int main(int argc, char** argv) {
  CLI::App app{"kiln CIFAR-10 example: ResNet-20 with the functional API"};
  std::string data_dir = "build/cifar10", device_name = "auto", save_path, history_path, plot_path,
              schedule = "constant";
  int epochs = 30, verbose = 1;
  int64_t batch_size = 128, limit = 0;
  uint64_t seed = 0;
  double learning_rate = 0.1, weight_decay = 0.0;
  app.add_option("--data", data_dir, "folder with cifar-10-batches-bin/ (official binary format)");
  app.add_option("--epochs", epochs, "training epochs")->check(CLI::PositiveNumber);
  app.add_option("--batch-size", batch_size, "samples per training step")->check(CLI::PositiveNumber);
  app.add_option("--learning-rate", learning_rate, "SGD's learning rate (the cosine schedule's start)")
      ->check(CLI::PositiveNumber);
  app.add_option("--schedule", schedule, "constant, or cosine (Keras' CosineDecay over all steps)")
      ->check(CLI::IsMember({"constant", "cosine"}));
  app.add_option("--weight-decay", weight_decay, "decoupled weight decay (Keras 3's rule), 0 for none")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--seed", seed, "seed of the initial weights and the shuffles");
  app.add_option("--device", device_name, "cpu, gpu, gpu:N or auto (the first usable GPU, else the CPU)");
  app.add_option("--save", save_path, "write the trained model (config, weights, optimizer state) here");
  app.add_option("--history", history_path, "write per-epoch loss and accuracy as CSV here");
  app.add_option("--plot", plot_path, "write loss and accuracy curves as SVG here");
  app.add_option("--limit", limit, "use only the first N training and test images (quick runs)");
  app.add_option("--verbose", verbose, "0 silent, 1 progress bar, 2 one line per epoch")->check(CLI::Range(0, 2));
  bool deterministic = false;
  app.add_flag("--op-determinism", deterministic,
               "on a GPU, only deterministic algorithms (bit-identical reruns; slower filter gradients)");
  bool test_at_end = false;
  app.add_flag("--test-at-end", test_at_end,
               "evaluate the test set once after training instead of after every epoch (epoch times then hold "
               "training only)");
  std::string dtype_policy = "float32";
  examples::add_dtype_policy_option(app, dtype_policy);
  CLI11_PARSE(app, argc, argv);

  try {
    if (device_name != "auto") kiln::set_default_device(kiln::Device::parse(device_name));
    kiln::config::enable_op_determinism(deterministic);
    namespace cifar10 = kiln::datasets::cifar10;
    auto data = cifar10::load_data(data_dir, limit > 0 ? std::optional<int64_t>(limit) : std::nullopt);
    const kiln::Tensor x_train = cifar10::to_float(data.train.images), x_test = cifar10::to_float(data.test.images);
    std::printf("CIFAR-10: %lld training and %lld test images\n", static_cast<long long>(data.train.size()),
                static_cast<long long>(data.test.size()));

    kiln::utils::set_random_seed(seed);
    // Layers take the global policy when they are built, so it is set first.
    kiln::mixed_precision::set_global_policy(dtype_policy);
    kiln::Model model = examples::resnet20();
    const int64_t steps = epochs * ((data.train.size() + batch_size - 1) / batch_size);
    kiln::LearningRate lr = learning_rate;
    if (schedule == "cosine")
      lr = kiln::schedules::CosineDecay({.initial_learning_rate = learning_rate, .decay_steps = steps});
    kiln::optimizers::SGDOptions sgd{.learning_rate = lr, .momentum = 0.9};
    if (weight_decay > 0) sgd.weight_decay = weight_decay;
    model.compile(kiln::optimizers::SGD(sgd), kiln::losses::SparseCategoricalCrossentropy({.from_logits = true}),
                  {"accuracy"});
    model.summary();
    std::printf(
        "training on %s: batch %lld, SGD momentum 0.9, learning rate %g (%s), weight decay %g, %s, dtype policy %s\n",
        model.device().str().c_str(), static_cast<long long>(batch_size), learning_rate, schedule.c_str(), weight_decay,
        deterministic ? "deterministic algorithms only" : "fastest algorithms", dtype_policy.c_str());

    const auto start = std::chrono::steady_clock::now();
    auto timer = std::make_shared<examples::EpochTimer>();
    kiln::FitOptions fit{
        .batch_size = batch_size,
        .epochs = epochs,
        .verbose = verbose,
        .validation_batch_size = 1000,
        .callbacks = {timer, std::make_shared<examples::EpochReporter>(epochs, history_path, plot_path)}};
    if (!test_at_end) fit.validation_data = {{x_test, data.test.labels}};
    model.fit(x_train, data.train.labels, fit);
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::printf("trained %d epochs in %.1f s (%.2f s per epoch) on %s\n", epochs, seconds, seconds / epochs,
                model.device().str().c_str());
    const double epoch_s = timer->median_after_first();
    std::printf("training epoch (median after the first): %.3f s, %.0f images/s\n", epoch_s,
                epoch_s > 0 ? static_cast<double>(data.train.size()) / epoch_s : 0.0);
    const auto test = model.evaluate(x_test, data.test.labels, {.batch_size = 1000, .verbose = 0});
    std::printf("test accuracy %.4f, test loss %.4f\n", test.at("accuracy"), test.at("loss"));
    std::printf("how the steps ran: %s\n", model.last_fit_execution().recorded
                                               ? "recorded (CUDA graph)"
                                               : ("eagerly: " + model.last_fit_execution().reason).c_str());
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
