// Times training steps of the seed CIFAR-10 CNN on random data of fixed shape that already lives
// on the device; prints and optionally writes the median steps/s and images/s over several repeats.
// Its peer is torch_seed.py, which runs the same model, data shapes and step counts in PyTorch.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "bench_report.h"
#include "kiln/kiln.h"

namespace {

constexpr int64_t kHeight = 32, kWidth = 32, kChannels = 3, kClasses = 10;
// Batches are drawn round-robin from a small pool, so a step never sees the same input twice in a
// row but no host-to-device copy happens while timing.
constexpr int kPoolBatches = 4;

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

}  // namespace

int main(int argc, char** argv) {
  std::string device_name = "cpu", json_path;
  int threads = static_cast<int>(std::thread::hardware_concurrency());
  int64_t batch_size = 10;
  int steps = 50, warmup = 10, repeats = 5;
  uint64_t seed = 0;

  CLI::App app{"Times training steps of the seed CIFAR-10 CNN (Adam, sparse cross-entropy from logits)"};
  app.add_option("--device", device_name, "cpu or gpu")->check(CLI::IsMember({"cpu", "gpu"}));
  app.add_option("--threads", threads, "CPU threads (kiln::set_num_threads)")->check(CLI::PositiveNumber);
  app.add_option("--batch-size", batch_size, "images per step")->check(CLI::PositiveNumber);
  app.add_option("--steps", steps, "timed steps per repeat")->check(CLI::PositiveNumber);
  app.add_option("--warmup", warmup, "untimed steps before the first repeat")->check(CLI::NonNegativeNumber);
  app.add_option("--repeats", repeats, "timed repeats; the median is reported")->check(CLI::PositiveNumber);
  app.add_option("--seed", seed, "seed of weights and data");
  app.add_option("--json", json_path, "also write the result as JSON to this file");
  bool use_fit = false;
  app.add_flag("--fit", use_fit,
               "time model.fit (shuffled epochs of `steps` batches; on a GPU a CUDA graph per step) instead "
               "of a hand-written loop; the first epoch is the warm-up");
  bool tf32 = false;
  app.add_flag("--tf32", tf32, "on a GPU, run float32 matmuls and convolutions as TF32 (tensor cores)");
  CLI11_PARSE(app, argc, argv);

  kiln::set_num_threads(threads);
  kiln::config::enable_tensor_float_32_execution(tf32);
  kiln::utils::set_random_seed(seed);
  kiln::Device device = kiln::Device::cpu();
  if (device_name == "gpu") {
    if (kiln::test::gpu_device_name().empty()) {
      std::cerr << "bench_train: no usable GPU: " << kiln::gpu_verdict().summary << "\n";
      return 2;  // compare.py reads this as "skipped"
    }
    device = kiln::Device::gpu();
  }

  kiln::Sequential model({kiln::layers::Conv2D(32, {3, 3}, {.activation = "relu", .input_shape = {32, 32, 3}}),
                          kiln::layers::MaxPooling2D({2, 2}), kiln::layers::Flatten(),
                          kiln::layers::Dense(64, {.activation = "relu"}), kiln::layers::Dense(10)});
  model.compile(kiln::optimizers::Adam(), kiln::losses::SparseCategoricalCrossentropy({.from_logits = true}),
                {"accuracy"});
  model.to(device);
  const std::vector<kiln::Tensor> params = model.trainable_weights();

  // Pixels in [0, 1) as after the seed's /255; labels uniform over the classes.
  kiln::Generator gen(seed + 1);
  std::vector<kiln::Tensor> xs, ys;
  for (int i = 0; i < kPoolBatches; ++i) {
    xs.push_back(kiln::Tensor::uniform({batch_size, kHeight, kWidth, kChannels}, 0.0, 1.0, gen).to(device));
    std::vector<int32_t> labels(static_cast<std::size_t>(batch_size));
    for (auto& l : labels) l = static_cast<int32_t>(gen.below(kClasses));
    ys.push_back(kiln::Tensor::from_vector(labels, kiln::Shape{batch_size}).to(device));
  }

  std::vector<double> steps_per_s;
  double final_loss = 0;
  if (use_fit) {
    // One fit call of 1 + repeats epochs over steps * batch_size images: epoch 1 holds the warm-up
    // (and on a GPU the graph capture); each later epoch is one timed repeat, clocked at its end,
    // where fit reads the loss sums and so waits for the device.
    const int64_t n = steps * batch_size;
    const kiln::Tensor x = kiln::Tensor::uniform({n, kHeight, kWidth, kChannels}, 0.0, 1.0, gen).to(device);
    std::vector<int32_t> labels(static_cast<std::size_t>(n));
    for (auto& l : labels) l = static_cast<int32_t>(gen.below(kClasses));
    const kiln::Tensor y = kiln::Tensor::from_vector(labels).to(device);
    struct Clock : kiln::Callback {
      std::vector<std::chrono::steady_clock::time_point> ends;
      double last_loss = 0;
      bool on_epoch_end(kiln::Model&, int, const std::map<std::string, double>& logs) override {
        ends.push_back(std::chrono::steady_clock::now());
        last_loss = logs.at("loss");
        return true;
      }
    };
    auto clock = std::make_shared<Clock>();
    model.fit(x, y, {.batch_size = batch_size, .epochs = 1 + repeats, .verbose = 0, .callbacks = {clock}});
    for (std::size_t e = 1; e < clock->ends.size(); ++e)
      steps_per_s.push_back(steps / std::chrono::duration<double>(clock->ends[e] - clock->ends[e - 1]).count());
    final_loss = clock->last_loss;
  } else {
    int64_t step = 0;
    kiln::Tensor loss;
    auto train_step = [&] {
      const kiln::Tensor& xb = xs[step % kPoolBatches];
      const kiln::Tensor& yb = ys[step % kPoolBatches];
      loss = (*model.loss())(yb, model(xb));
      for (auto p : params) p.zero_grad();
      loss.backward();
      model.optimizer()->step(params);
      ++step;
    };
    // Reading the last loss waits for everything queued before it on the device's stream, the
    // optimizer update included, so each repeat's clock stops after its work is done.
    auto sync = [&] { return loss.defined() ? loss.item() : 0.0; };

    for (int i = 0; i < warmup; ++i) train_step();
    sync();
    for (int r = 0; r < repeats; ++r) {
      const auto t0 = std::chrono::steady_clock::now();
      for (int i = 0; i < steps; ++i) train_step();
      sync();
      const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      steps_per_s.push_back(steps / s);
    }
    final_loss = sync();
  }
  const double med = median(steps_per_s);

  nlohmann::json out = {{"framework", "kiln"},
                        {"mode", use_fit ? "fit" : "loop"},
                        {"device", device_name},
                        {"threads", kiln::get_num_threads()},
                        {"batch_size", batch_size},
                        {"steps", steps},
                        {"warmup", warmup},
                        {"repeats", repeats},
                        {"steps_per_s", steps_per_s},
                        {"median_steps_per_s", med},
                        {"median_images_per_s", med * static_cast<double>(batch_size)},
                        {"final_loss", final_loss},
                        {"settings", {{"tf32", tf32 && device.is_cuda()}}}};
  return bench::report(std::move(out), device, json_path, "bench_train");
}
