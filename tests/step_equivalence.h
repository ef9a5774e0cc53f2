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
#include <bit>
#include <cstdint>
#include <functional>
#include <string>
#include <tuple>
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
using ModelFactory = std::function<Model()>;

/// The model's per-sample output shape.
inline Shape output_shape_of(const Model& model) { return model.output_shapes().front(); }

/// Random training data for `model`: x uniform in [0, 1) of its input shape; y class ids below
/// the output width for sparse categorical cross-entropy, else uniform in [0, 1) of the output shape.
inline std::pair<Tensor, Tensor> random_data_for(const Model& model, int64_t samples, uint64_t seed) {
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

/// One weight's elements as bits: floating values widened exactly to double, integers (a
/// layer's counters) as they are.
struct WeightBits {
  std::string name;  ///< "layer/weight"
  bool floating = true;
  std::vector<uint64_t> bits;
};

/// The bits of every weight of `model`'s layers, in two lists: the trainable weights, and the
/// others (moving statistics, a dropout layer's counter, a frozen layer's weights).
inline std::pair<std::vector<WeightBits>, std::vector<WeightBits>> weight_bits(const Model& model) {
  const std::vector<Tensor> trainable = model.trainable_weights();
  std::pair<std::vector<WeightBits>, std::vector<WeightBits>> out;
  for (const auto& layer : model.layers())
    for (const auto& [name, w] : layer->named_weights()) {
      if (!w.defined()) continue;
      WeightBits b{.name = layer->name() + "/" + name, .floating = is_floating(w.dtype()), .bits = {}};
      if (b.floating)
        for (double v : w.to_vector<double>()) b.bits.push_back(std::bit_cast<uint64_t>(v));
      else
        for (int64_t v : w.to_vector<int64_t>()) b.bits.push_back(static_cast<uint64_t>(v));
      const bool is_trainable =
          std::any_of(trainable.begin(), trainable.end(), [&](const Tensor& t) { return t.is_same(w); });
      (is_trainable ? out.first : out.second).push_back(std::move(b));
    }
  return out;
}

/// What one training run ends with.
struct TrainedRun {
  History history;                        ///< per-epoch losses and metrics
  std::vector<WeightBits> trainable;      ///< the trainable weights
  std::vector<WeightBits> non_trainable;  ///< every other weight
  int64_t iterations = 0;                 ///< the optimizer's count
  StepReport report;                      ///< how the steps ran
};

/// Trains a model from `make` on GPU 0, recorded (`graphs`) or eagerly.
inline TrainedRun train_for_equivalence(const ModelFactory& make, bool graphs, const StepEquivalenceOptions& o) {
  utils::set_random_seed(o.seed);
  Model model = make();
  EXPECT_TRUE(model.built()) << "the factory's model must declare its input_shape";
  model.to(Device::gpu(0));
  const auto [x, y] = random_data_for(model, o.samples, o.seed + 1);
  TrainedRun run;
  run.history = model.fit(x, y, {.batch_size = o.batch_size, .epochs = o.epochs, .verbose = 0, .cuda_graphs = graphs});
  std::tie(run.trainable, run.non_trainable) = weight_bits(model);
  run.iterations = model.optimizer()->iterations();
  run.report = model.last_fit_execution();
  return run;
}

/// Expects the same bits in `eager` and `recorded`, naming the first differing element of each weight.
inline void expect_same_bits(const std::vector<WeightBits>& eager, const std::vector<WeightBits>& recorded) {
  ASSERT_EQ(eager.size(), recorded.size());
  for (std::size_t k = 0; k < eager.size(); ++k) {
    const WeightBits &a = eager[k], &b = recorded[k];
    ASSERT_EQ(a.name, b.name);
    ASSERT_EQ(a.bits.size(), b.bits.size()) << a.name;
    for (std::size_t i = 0; i < a.bits.size(); ++i)
      if (a.bits[i] != b.bits[i]) {
        if (a.floating)
          ADD_FAILURE() << a.name << "[" << i << "]: eager " << std::bit_cast<double>(a.bits[i]) << ", recorded "
                        << std::bit_cast<double>(b.bits[i]);
        else
          ADD_FAILURE() << a.name << "[" << i << "]: eager " << static_cast<int64_t>(a.bits[i]) << ", recorded "
                        << static_cast<int64_t>(b.bits[i]);
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
    const std::vector<double>& other = recorded.history.history.at(key);
    ASSERT_EQ(values.size(), other.size()) << key;
    for (std::size_t e = 0; e < values.size(); ++e)
      EXPECT_EQ(std::bit_cast<uint64_t>(values[e]), std::bit_cast<uint64_t>(other[e]))
          << key << " at epoch " << e << ": eager " << values[e] << ", recorded " << other[e];
  }
  expect_same_bits(eager.trainable, recorded.trainable);
  expect_same_bits(eager.non_trainable, recorded.non_trainable);
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
