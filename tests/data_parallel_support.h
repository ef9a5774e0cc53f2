// The models, data and comparisons of the data-parallel tests (MirroredStrategy's replicas in
// tests/, MPI's ranks in tests/mpi/): a small classifier trained on a few samples, and equality
// with one process within a relative tolerance.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "kiln/kiln.h"

namespace kiln::data_parallel_test {

/// A new layer for the classifier's middle (each model gets its own).
using MakeLayer = std::function<LayerRef()>;

/// Dense(8, relu) -> [middle] -> Dense(3), compiled with `optimizer` ("sgd": SGD(0.1, momentum
/// 0.9); else Adam(0.01)), SparseCategoricalCrossentropy(from_logits) and accuracy; built from seed.
inline Sequential classifier(uint64_t seed, const std::string& optimizer = "sgd", const MakeLayer& middle = nullptr) {
  utils::set_random_seed(seed);
  std::vector<LayerRef> layers = {layers::Dense(8, {.activation = "relu", .input_shape = {4}})};
  if (middle) layers.push_back(middle());
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

/// A BatchNormalization for the classifier's middle.
inline LayerRef batch_norm() { return layers::BatchNormalization(); }

/// n samples of 4 features and labels in 0..2 (deterministic in `seed`).
inline std::pair<Tensor, Tensor> data(int64_t n, uint64_t seed = 7) {
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

/// Every trainable and non-trainable weight, flattened, in layer order.
inline std::vector<float> flat_weights(const Model& model) {
  std::vector<float> out;
  for (const auto& layer : model.layers())
    for (const Tensor& w : layer->weights()) {
      const auto v = w.to_vector<float>();
      out.insert(out.end(), v.begin(), v.end());
    }
  return out;
}

/// max |a - b| / max |b| (infinity when the sizes differ).
inline double max_relative_difference(const std::vector<float>& a, const std::vector<float>& b) {
  double diff = 0, scale = 0;
  for (std::size_t i = 0; i < std::min(a.size(), b.size()); ++i) {
    diff = std::max(diff, std::fabs(static_cast<double>(a[i]) - b[i]));
    scale = std::max(scale, std::fabs(static_cast<double>(b[i])));
  }
  return a.size() == b.size() ? diff / scale : INFINITY;
}

/// The same epochs and logs, each value within `tolerance` relative (absolute below 1).
inline void expect_history_near(const History& got, const History& want, double tolerance) {
  EXPECT_EQ(got.epoch, want.epoch);
  ASSERT_EQ(got.history.size(), want.history.size());
  for (const auto& [name, values] : want.history) {
    ASSERT_TRUE(got.history.contains(name)) << name;
    const auto& mine = got.history.at(name);
    ASSERT_EQ(mine.size(), values.size()) << name;
    for (std::size_t e = 0; e < values.size(); ++e)
      EXPECT_NEAR(mine[e], values[e], tolerance * std::max(1.0, std::fabs(values[e]))) << name << " epoch " << e;
  }
}

}  // namespace kiln::data_parallel_test
