// Trains one model of the zoo (models.h) with model.fit on random data of CIFAR-10's shapes and
// prints one JSON line: images/s of a training epoch, the median over the epochs after a warm-up
// epoch. Its peer is zoo_torch.py (the same models, data shapes and sample count in PyTorch);
// bench/zoo.py runs both and prints the table. --precision sets Keras' global dtype policy
// (kiln::mixed_precision) before the model is built: mixed_bfloat16 or mixed_float16 compute in the
// 16-bit type with float32 weights and a float32 logits layer; fit adds loss scaling for float16.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <exception>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "bench_report.h"
#include "kiln/kiln.h"
#include "models.h"

namespace {

constexpr int64_t kHeight = 32, kWidth = 32, kChannels = 3, kClasses = 10;

// Wall time of every epoch of fit. fit reads the epoch's loss and metric sums back at its end, so a
// GPU's work is finished when on_epoch_end runs.
class EpochClock : public kiln::Callback {
 public:
  void on_epoch_begin(kiln::Model&, int) override { start_ = std::chrono::steady_clock::now(); }
  bool on_epoch_end(kiln::Model&, int, const std::map<std::string, double>& logs) override {
    seconds_.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count());
    last_loss_ = logs.count("loss") ? logs.at("loss") : 0.0;
    return true;
  }
  const std::vector<double>& seconds() const { return seconds_; }
  double last_loss() const { return last_loss_; }

 private:
  std::chrono::steady_clock::time_point start_;
  std::vector<double> seconds_;
  double last_loss_ = 0;
};

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n == 0 ? 0.0 : n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

// Images as CIFAR-10's bytes would give them, [n, 32, 32, 3] of k / 255 for random k in 0..255, and
// labels uniform over the classes. A fixed-algorithm engine keeps the data the same for a seed.
std::pair<kiln::Tensor, kiln::Tensor> synthetic_data(int64_t n, uint64_t seed) {
  std::mt19937_64 engine(seed);
  std::vector<float> pixels(static_cast<std::size_t>(n * kHeight * kWidth * kChannels));
  for (std::size_t i = 0; i < pixels.size(); i += 8) {
    uint64_t bits = engine();
    for (std::size_t k = i; k < std::min(i + 8, pixels.size()); ++k, bits >>= 8)
      pixels[k] = static_cast<float>(bits & 0xff) / 255.0f;
  }
  std::vector<int32_t> labels(static_cast<std::size_t>(n));
  for (auto& l : labels) l = static_cast<int32_t>(engine() % kClasses);
  return {kiln::Tensor::from_vector(pixels, kiln::Shape{n, kHeight, kWidth, kChannels}),
          kiln::Tensor::from_vector(labels, kiln::Shape{n})};
}

// Parses the options, trains and prints; returns the exit code (2: no usable GPU).
int run(int argc, char** argv) {
  std::string model_name, device_name = "cpu", precision = "float32", json_path;
  int threads = static_cast<int>(std::thread::hardware_concurrency());
  int64_t batch_size = 128, samples = 10240, steps = 0, bucket_bytes = int64_t{4} << 20;
  int epochs = 5;
  uint64_t seed = 0;
  bool tf32 = false, determinism = false, no_cuda_graphs = false, strategy = false, mirrored = false;

  CLI::App app{"Trains one model of the zoo with model.fit on random CIFAR-10-shaped data; prints images/s as JSON"};
  app.add_option("--model", model_name, "the zoo model")->required()->check(CLI::IsMember(zoo::model_names()));
  app.add_option("--device", device_name, "cpu or gpu")->check(CLI::IsMember({"cpu", "gpu"}));
  app.add_option("--threads", threads, "CPU threads (kiln::set_num_threads)")->check(CLI::PositiveNumber);
  app.add_option("--batch-size", batch_size, "images per step")->check(CLI::PositiveNumber);
  app.add_option("--samples", samples, "training images per epoch")->check(CLI::PositiveNumber);
  app.add_option("--steps", steps, "steps per epoch (sets --samples to steps x batch size)")
      ->check(CLI::PositiveNumber);
  app.add_option("--epochs", epochs, "timed epochs after the warm-up epoch; the median is reported")
      ->check(CLI::PositiveNumber);
  app.add_option("--precision", precision,
                 "dtype policy of the model's layers (kiln::mixed_precision::set_global_policy); the last Dense "
                 "stays float32 under the mixed ones")
      ->check(CLI::IsMember({"float32", "mixed_bfloat16", "mixed_float16"}));
  app.add_option("--seed", seed, "seed of the weights, the shuffles and the data");
  app.add_flag("--tf32", tf32, "on a GPU, run float32 matmuls and convolutions as TF32 (tensor cores)");
  app.add_flag("--op-determinism", determinism,
               "kiln::config::enable_op_determinism: on a GPU, deterministic convolution algorithms only");
  app.add_flag("--no-cuda-graphs", no_cuda_graphs, "on a GPU, run every step eagerly instead of replaying a recording");
  app.add_flag("--strategy", strategy,
               "train data-parallel under kiln::distribute::MultiWorkerMirroredStrategy (run under mpirun -np P; "
               "--batch-size is the global batch; --device gpu takes each process's worker_device(); rank 0 prints)");
  app.add_flag("--mirrored", mirrored,
               "train data-parallel under kiln::distribute::MirroredStrategy over every GPU of the machine (with "
               "--device gpu; --batch-size is the global batch)");
  app.add_option("--bucket-bytes", bucket_bytes,
                 "with --strategy: bytes of gradient per all-reduce bucket (one bucket larger than the model: the "
                 "sum starts only when backward has finished)")
      ->check(CLI::PositiveNumber);
  app.add_option("--json", json_path, "also write the result as JSON to this file");
  CLI11_PARSE(app, argc, argv);
  if (steps > 0) samples = steps * batch_size;

  kiln::set_num_threads(threads);
  kiln::config::enable_tensor_float_32_execution(tf32);
  kiln::config::enable_op_determinism(determinism);
  if (strategy && mirrored) throw kiln::Error("bench_zoo", "--strategy and --mirrored exclude each other");
  if (mirrored && device_name != "gpu") throw kiln::Error("bench_zoo", "--mirrored needs --device gpu");
  std::shared_ptr<kiln::distribute::MultiWorkerMirroredStrategy> workers;
  if (strategy)
    workers = std::make_shared<kiln::distribute::MultiWorkerMirroredStrategy>(
        kiln::distribute::MultiWorkerMirroredStrategyOptions{.bucket_bytes = bucket_bytes});
  std::shared_ptr<kiln::distribute::Strategy> replicas = workers;
  kiln::Device device = kiln::Device::cpu();
  if (device_name == "gpu") {
    if (kiln::test::gpu_device_name().empty()) {
      std::cerr << "bench_zoo: no usable GPU: " << kiln::gpu_verdict().summary << "\n";
      return 2;  // zoo.py reads this as "skipped"
    }
    device = workers ? workers->worker_device() : kiln::Device::gpu();
    if (mirrored) replicas = std::make_shared<kiln::distribute::MirroredStrategy>();
  }
  kiln::set_default_device(device);
  kiln::utils::set_random_seed(seed);
  // Layers take the global policy when they are constructed, so it is set before zoo::build.
  kiln::mixed_precision::set_global_policy(precision);
  std::unique_ptr<kiln::Model> model = zoo::build(model_name);
  auto [x_host, y_host] = synthetic_data(samples, seed + 1);
  const kiln::Tensor x = x_host.to(device), y = y_host.to(device);

  // One fit call of 1 + epochs epochs: the first holds the warm-up (on a GPU: the step's
  // recording and the choice of convolution algorithms); the later ones are timed.
  auto clock = std::make_shared<EpochClock>();
  model->fit(x, y,
             {.batch_size = batch_size,
              .epochs = 1 + epochs,
              .verbose = 0,
              .callbacks = {clock},
              .cuda_graphs = !no_cuda_graphs,
              .strategy = replicas});
  const std::vector<double>& epoch_s = clock->seconds();
  if (epoch_s.size() != static_cast<std::size_t>(epochs) + 1)
    throw kiln::Error("bench_zoo", "fit ran " + std::to_string(epoch_s.size()) + " epochs; expected " +
                                       std::to_string(1 + epochs) + " (1 warm-up + --epochs)");
  const double timed = median(std::vector<double>(epoch_s.begin() + 1, epoch_s.end()));
  const kiln::StepReport execution = model->last_fit_execution();

  nlohmann::json out = {{"framework", "kiln"},
                        {"model", model_name},
                        {"mode", determinism ? "determinism" : "fast"},
                        {"device", device_name},
                        {"precision", precision},
                        {"threads", kiln::get_num_threads()},
                        {"batch_size", batch_size},
                        {"samples", samples},
                        {"epochs", epochs},
                        {"optimizer", zoo::optimizer_name(model_name)},
                        {"params", model->count_params()},
                        {"epoch_s", epoch_s},
                        {"warmup_s", epoch_s.front()},
                        {"compile_s", nullptr},
                        {"images_per_s", timed > 0 ? static_cast<double>(samples) / timed : 0.0},
                        {"final_loss", clock->last_loss()},
                        {"tf32", tf32 && device.is_cuda()},
                        {"op_determinism", determinism},
                        {"recorded", execution.recorded},
                        {"strategy", replicas ? replicas->name() : ""},
                        {"replicas", replicas ? replicas->num_replicas_in_sync() : 0},
                        {"bucket_bytes", replicas ? bucket_bytes : 0},
                        {"execution", execution.reason}};
  if (replicas && !replicas->is_chief()) return 0;  // the chief reports for all
  return bench::report(std::move(out), device, json_path, "bench_zoo");
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {  // kiln::Error, or an allocation that failed: one line for zoo.py
    std::cerr << "bench_zoo: " << e.what() << "\n";
    return 1;
  }
}
