// The Keras CIFAR-10 CNN: Conv2D(32, 3x3, relu) -> MaxPooling2D(2x2) -> Flatten -> Dense(64, relu)
// -> Dense(10), Adam, sparse categorical cross-entropy from logits, batch 10. Reports the test
// accuracy after every epoch; optionally saves the model, the history (CSV) and a chart (SVG).
// --tf32 lets a GPU run float32 products and convolutions as TF32 (faster, ~1e-3 relative error per
// product); the run's header and summary say which math it used.
#include <kiln/datasets/cifar10.h>
#include <kiln/kiln.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <iostream>

#include "history_files.h"

namespace {

// Writes the history files after every epoch, so an interrupted run keeps what it learned.
class EpochReporter : public kiln::Callback {
 public:
  EpochReporter(int epochs, std::string csv, std::string svg)
      : epochs_(epochs), csv_(std::move(csv)), svg_(std::move(svg)) {}
  bool on_epoch_end(kiln::Model&, int epoch, const std::map<std::string, double>& logs) override {
    std::printf("epoch %d/%d: test accuracy %.4f (train accuracy %.4f, loss %.4f)\n", epoch + 1, epochs_,
                logs.at("val_accuracy"), logs.at("accuracy"), logs.at("loss"));
    std::fflush(stdout);
    history_.epoch.push_back(epoch);
    for (const auto& [k, v] : logs) history_.history[k].push_back(v);
    if (!csv_.empty()) examples::write_history_csv(history_, csv_);
    if (!svg_.empty()) examples::write_history_svg(history_, svg_);
    return true;
  }

 private:
  int epochs_;
  std::string csv_, svg_;
  kiln::History history_;
};

}  // namespace

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
  bool tf32 = false;
  app.add_flag("--tf32", tf32,
               "on a GPU, run float32 matmuls and convolutions as TF32 on tensor cores (faster; about 1e-3 "
               "relative error per product instead of float32's 1e-7)");
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
    kiln::Sequential model({kiln::layers::Conv2D(32, {3, 3}, {.activation = "relu", .input_shape = {32, 32, 3}}),
                            kiln::layers::MaxPooling2D({2, 2}), kiln::layers::Flatten(),
                            kiln::layers::Dense(64, {.activation = "relu"}), kiln::layers::Dense(10)});
    model.compile(kiln::optimizers::Adam(), kiln::losses::SparseCategoricalCrossentropy({.from_logits = true}),
                  {"accuracy"});
    model.summary();
    // TF32 only changes GPU math; on the CPU the flag has no effect, and the line says so.
    const std::string math = !tf32              ? "float32"
                             : device.is_cuda() ? "TF32 (float32 storage)"
                                                : "float32 (TF32 is GPU-only)";
    std::printf("training on %s (%d CPU threads), math: %s\n", device.str().c_str(), kiln::get_num_threads(),
                math.c_str());

    const auto start = std::chrono::steady_clock::now();
    auto reporter = std::make_shared<EpochReporter>(epochs, history_path, plot_path);
    model.fit(x_train, data.train.labels,
              {.batch_size = batch_size,
               .epochs = epochs,
               .verbose = verbose,
               .validation_data = {{x_test, data.test.labels}},
               .validation_batch_size = validation_batch_size,
               .callbacks = {reporter}});
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::printf("trained %d epochs in %.1f s (%.2f s per epoch) on %s, math: %s\n", epochs, seconds, seconds / epochs,
                device.str().c_str(), math.c_str());
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
