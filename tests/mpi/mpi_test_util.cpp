// Helpers of the tests under mpirun.
#include "mpi_test_util.h"

#include <mpi.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>

namespace kiln::mpi_test {

namespace {
// These tests check the MPI (CPU) path; on a machine with a GPU new models would start on it, where
// multi-worker training needs NCCL. Every model of this binary starts on the CPU.
[[maybe_unused]] const bool models_start_on_the_cpu = [] {
  set_default_device(Device::cpu());
  return true;
}();
}  // namespace

std::shared_ptr<distribute::MultiWorkerMirroredStrategy> strategy() {
  static const auto s = std::make_shared<distribute::MultiWorkerMirroredStrategy>();
  return s;
}

int rank() { return strategy()->rank(); }
int ranks() { return strategy()->num_replicas_in_sync(); }

std::vector<int32_t> all_gather(const std::vector<int32_t>& values) {
  strategy();  // MPI is initialized
  const int n = ranks();
  int mine = static_cast<int>(values.size());
  std::vector<int> counts(static_cast<std::size_t>(n)), offsets(static_cast<std::size_t>(n));
  MPI_Allgather(&mine, 1, MPI_INT, counts.data(), 1, MPI_INT, MPI_COMM_WORLD);
  int total = 0;
  for (int r = 0; r < n; ++r) {
    offsets[static_cast<std::size_t>(r)] = total;
    total += counts[static_cast<std::size_t>(r)];
  }
  std::vector<int32_t> out(static_cast<std::size_t>(total));
  MPI_Allgatherv(values.data(), mine, MPI_INT32_T, out.data(), counts.data(), offsets.data(), MPI_INT32_T,
                 MPI_COMM_WORLD);
  return out;
}

void barrier() {
  strategy();
  MPI_Barrier(MPI_COMM_WORLD);
}

std::string shared_dir(const std::string& name) {
  std::vector<int32_t> pid = {static_cast<int32_t>(getpid())};
  const auto pids = all_gather(pid);
  const auto dir = std::filesystem::temp_directory_path() / ("kiln_mpi_" + name + "_" + std::to_string(pids[0]));
  if (rank() == 0) {
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
  }
  barrier();
  return dir.string();
}

Sequential classifier(uint64_t seed, const std::string& optimizer, bool batch_norm) {
  utils::set_random_seed(seed);
  std::vector<LayerRef> layers = {layers::Dense(8, {.activation = "relu", .input_shape = {4}})};
  if (batch_norm) layers.emplace_back(layers::BatchNormalization());
  layers.emplace_back(layers::Dense(3));
  Sequential model(layers);
  if (optimizer == "sgd")
    model.compile(optimizers::SGD({.learning_rate = 0.1, .momentum = 0.9}),
                  losses::SparseCategoricalCrossentropy({.from_logits = true}), {"accuracy"});
  else
    model.compile(optimizers::Adam({.learning_rate = 0.01}),
                  losses::SparseCategoricalCrossentropy({.from_logits = true}), {"accuracy"});
  return model;
}

std::pair<Tensor, Tensor> data(int64_t n, uint64_t seed) {
  Generator gen(seed);
  std::vector<float> x(static_cast<std::size_t>(n * 4));
  std::vector<int32_t> y(static_cast<std::size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    float s = 0;
    for (int64_t j = 0; j < 4; ++j) {
      const auto v = static_cast<float>(gen.normal());
      x[static_cast<std::size_t>(i * 4 + j)] = v;
      s += v * static_cast<float>(j + 1);
    }
    y[static_cast<std::size_t>(i)] = s < -1.0F ? 0 : (s < 1.0F ? 1 : 2);
  }
  return {Tensor::from_vector(x, {n, 4}), Tensor::from_vector(y, {n})};
}

std::vector<float> flat_weights(const Model& model) {
  std::vector<float> out;
  for (const auto& layer : model.layers())
    for (const Tensor& w : layer->weights()) {
      const auto v = w.to_vector<float>();
      out.insert(out.end(), v.begin(), v.end());
    }
  return out;
}

double max_relative_difference(const std::vector<float>& a, const std::vector<float>& b) {
  double diff = 0, scale = 0;
  for (std::size_t i = 0; i < std::min(a.size(), b.size()); ++i) {
    diff = std::max(diff, std::fabs(static_cast<double>(a[i]) - b[i]));
    scale = std::max(scale, std::fabs(static_cast<double>(b[i])));
  }
  return a.size() == b.size() ? diff / scale : INFINITY;
}

}  // namespace kiln::mpi_test
