// A check that any model trains the same recorded as eagerly: from the same seed, fit with the
// recorded step (CUDA graphs) and fit with cuda_graphs = false must end with bit-equal weights
// (trainable and not) and bit-equal per-epoch losses and metrics. A new layer applies it to a small
// model that uses the layer:
//
//   TEST(MyLayer, RecordedStepEqualsEager) {
//     EXPECT_RECORDED_STEP_EQUALS_EAGER([] {
//       kiln::Sequential model({kiln::layers::MyLayer(...), kiln::layers::Dense(3)});
//       model.compile("adam", "sparse_categorical_crossentropy");
//       return model;
//     });
//   }
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "kiln/kiln.h"
#include "test_support.h"

namespace kiln::testing {

/// How much training the comparison runs. The defaults give each epoch full batches (two eager
/// warm-up steps, the recording, replays) and a partial batch that runs eagerly between replays.
struct StepEquivalenceOptions {
  int64_t batch_size = 8;  ///< rows per step
  int64_t samples = 51;    ///< training samples: 6 full batches and a partial one of 3 by default
  int epochs = 3;          ///< epochs, each shuffled
  uint64_t seed = 7;       ///< set before each call of the factory; also draws the data
};

/// Makes a compiled model; called once per run, after set_random_seed. The model must know its
/// input shape (input_shape on its first layer); the check moves it to GPU 0.
using ModelFactory = std::function<Sequential()>;

/// The model's per-sample output shape.
inline Shape output_shape_of(const Sequential& model) {
  Shape shape = model.input_shape();
  for (const auto& layer : model.layers()) shape = layer->compute_output_shape(shape);
  return shape;
}

/// Random training data for `model`: x uniform in [0, 1) of its input shape; y class ids below
/// the output width for sparse categorical cross-entropy, else uniform in [0, 1) of the output shape.
inline std::pair<Tensor, Tensor> random_data_for(const Sequential& model, int64_t samples, uint64_t seed) {
  Generator gen(seed);
  const Tensor x = Tensor::uniform(model.input_shape().prepend(samples), 0, 1, gen);
  const Shape out = output_shape_of(model);
  if (model.loss()->name() != "sparse_categorical_crossentropy")
    return {x, Tensor::uniform(out.prepend(samples), 0, 1, gen)};
  const int64_t classes = out[out.ndim() - 1];
  const auto u = Tensor::uniform({samples}, 0, static_cast<double>(classes), gen).to_vector<float>();
  std::vector<int32_t> labels(u.size());
  for (std::size_t i = 0; i < u.size(); ++i)
    labels[i] = std::min(static_cast<int32_t>(classes - 1), static_cast<int32_t>(u[i]));
  return {x, Tensor::from_vector(labels, Shape{samples})};
}

/// What one training run ends with.
struct TrainedRun {
  History history;                                 ///< per-epoch losses and metrics
  std::vector<std::vector<double>> weights;        ///< trainable weights, widened exactly to double
  std::vector<std::vector<double>> non_trainable;  ///< the other weights
  int64_t iterations = 0;                          ///< the optimizer's count
  StepReport report;                               ///< how the steps ran
};

/// Trains a model from `make` on GPU 0, recorded (`graphs`) or eagerly.
inline TrainedRun train_for_equivalence(const ModelFactory& make, bool graphs, const StepEquivalenceOptions& o) {
  utils::set_random_seed(o.seed);
  Sequential model = make();
  EXPECT_TRUE(model.built()) << "the factory's model must declare its input_shape";
  model.to(Device::gpu(0));
  const auto [x, y] = random_data_for(model, o.samples, o.seed + 1);
  TrainedRun run;
  run.history = model.fit(x, y, {.batch_size = o.batch_size, .epochs = o.epochs, .verbose = 0, .cuda_graphs = graphs});
  const auto widen = [](const std::vector<Tensor>& ws) {
    std::vector<std::vector<double>> out;
    for (const Tensor& w : ws) out.push_back(w.to_vector<double>());
    return out;
  };
  run.weights = widen(model.trainable_weights());
  run.non_trainable = widen(model.non_trainable_weights());
  run.iterations = model.optimizer()->iterations();
  run.report = model.last_fit_execution();
  return run;
}

/// True when a and b hold the same bits (so NaN equals the same NaN and -0 differs from 0).
inline bool same_bits(double a, double b) { return std::memcmp(&a, &b, sizeof(double)) == 0; }

/// Expects equal bits in `eager` and `recorded`, naming `what` and the first differing element.
inline void expect_same_bits(const std::vector<std::vector<double>>& eager,
                             const std::vector<std::vector<double>>& recorded, const std::string& what) {
  ASSERT_EQ(eager.size(), recorded.size()) << what;
  for (std::size_t k = 0; k < eager.size(); ++k) {
    ASSERT_EQ(eager[k].size(), recorded[k].size()) << what << " " << k;
    for (std::size_t i = 0; i < eager[k].size(); ++i)
      if (!same_bits(eager[k][i], recorded[k][i])) {
        ADD_FAILURE() << what << " " << k << "[" << i << "]: eager " << eager[k][i] << ", recorded " << recorded[k][i];
        break;
      }
  }
}

/// Trains a model from `make` recorded and eagerly, and expects the same bits everywhere. Needs a
/// GPU: call it through EXPECT_RECORDED_STEP_EQUALS_EAGER, which skips the test without one.
inline void expect_recorded_step_equals_eager(const ModelFactory& make, const StepEquivalenceOptions& o = {}) {
  const TrainedRun eager = train_for_equivalence(make, false, o);
  const TrainedRun recorded = train_for_equivalence(make, true, o);
  // Without a recording the comparison would prove nothing.
  EXPECT_TRUE(recorded.report.recorded) << "the recorded run ran eagerly: " << recorded.report.reason;
  EXPECT_FALSE(eager.report.recorded);
  ASSERT_EQ(eager.history.history.size(), recorded.history.history.size());
  for (const auto& [key, values] : eager.history.history) {
    ASSERT_TRUE(recorded.history.history.count(key)) << key;
    expect_same_bits({values}, {recorded.history.history.at(key)}, "history " + key + ", epoch list");
  }
  expect_same_bits(eager.weights, recorded.weights, "trainable weight");
  expect_same_bits(eager.non_trainable, recorded.non_trainable, "non-trainable weight");
  EXPECT_EQ(eager.iterations, recorded.iterations);
}

}  // namespace kiln::testing

/// Expects training `factory`'s model recorded to equal training it eagerly, bit for bit (see
/// kiln::testing::expect_recorded_step_equals_eager; an options struct may follow the factory);
/// skips the test where no GPU is usable.
#define EXPECT_RECORDED_STEP_EQUALS_EAGER(...)                       \
  do {                                                               \
    REQUIRE_GPU();                                                   \
    ::kiln::testing::expect_recorded_step_equals_eager(__VA_ARGS__); \
  } while (0)
