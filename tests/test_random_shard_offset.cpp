// Random draws of a replica's shard (data-parallel fit): dropout from an element offset and the
// random image transforms from a sample offset give exactly rows k.. of the whole batch's draw,
// forward and backward; Dropout and the random image layers take the offset from the replica
// context (the shard's first row) and draw as before without one.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "distribute/communicator.h"
#include "distribute/replica_context.h"
#include "kiln/kiln.h"
#include "ops/image_random.h"

using namespace kiln;

namespace {

// Two ranks that never communicate: the layers only read the shard from the context.
class NoCommunicator : public distribute::Communicator {
 public:
  int rank() const override { return 0; }
  int size() const override { return 2; }
  int local_rank() const override { return 0; }
  double timeout_seconds() const override { return 1.0; }
  void start_all_reduce(void*, int64_t, distribute::Elem, distribute::ReduceOp) override {}
  void start_broadcast(void*, int64_t, int) override {}
  void start_all_gather(const int64_t*, int64_t*) override {}
  void wait(const std::string&) override {}
};

std::vector<float> floats(const Tensor& t) { return t.to_vector<float>(); }

// Rows [begin, end) of a [rows, ...] tensor's elements.
std::vector<float> rows_of(const Tensor& t, int64_t begin, int64_t end) { return floats(t.slice_rows(begin, end)); }

Tensor counter_at(int64_t step) { return Tensor::from_vector<int64_t>({step}, Shape{1}); }

// A random layer's counter (its stream's state).
Tensor counter_of(const Layer& layer) {
  for (const auto& [name, w] : layer.named_weights())
    if (name == "seed_generator_state") return w;
  return Tensor();
}

}  // namespace

TEST(DropoutOp, FromAnElementOffsetGivesThoseElementsOfTheWholeDraw) {
  Generator gen(3);
  const int64_t B = 11, F = 7;  // 7 features: most rows start inside a Philox block of four
  const Tensor x = Tensor::uniform({B, F}, -1, 1, gen);
  const Tensor counter = counter_at(5);
  const Tensor whole = dropout(x, 0.4, 9, counter, 2);
  for (int64_t k : {0, 1, 2, 3, 6, 10}) {
    const Tensor shard = x.slice_rows(k, B);
    EXPECT_EQ(floats(dropout(shard, 0.4, 9, counter, 2, k * F)), rows_of(whole, k, B)) << "from row " << k;
  }
  // Elements rather than rows: any offset works.
  for (int64_t first : {1, 5, 13}) {
    const Tensor tail = x.reshape({B * F}).slice_rows(first, B * F);
    EXPECT_EQ(floats(dropout(tail, 0.4, 9, counter, 2, first)), rows_of(whole.reshape({B * F}), first, B * F))
        << "from element " << first;
  }
}

TEST(DropoutOp, BackwardFromAnOffsetUsesTheShardsMask) {
  Generator gen(4);
  const int64_t B = 6, F = 5, k = 3;
  Tensor x = Tensor::uniform({B, F}, 0.5, 1.5, gen);
  x.set_requires_grad();
  const Tensor counter = counter_at(8);
  sum(dropout(x, 0.5, 1, counter, 0)).backward();
  Tensor shard = x.detach().slice_rows(k, B);
  shard.set_requires_grad();
  sum(dropout(shard, 0.5, 1, counter, 0, k * F)).backward();
  EXPECT_EQ(floats(shard.grad()), rows_of(x.grad(), k, B));
}

TEST(DropoutOp, OffsetOutOfRangeIsRefused) {
  const Tensor x = Tensor::ones({4});
  EXPECT_THROW(dropout(x, 0.5, 1, counter_at(0), 0, -1), Error);
  EXPECT_THROW(dropout(x, 0.5, 1, counter_at(0), 0, int64_t{1} << 34), Error);
}

TEST(RandomImageTransforms, FromASampleOffsetGiveThoseSamplesOfTheWholeBatch) {
  const std::array<backend::ImageAxisSpec, 2> axes = {
      backend::ImageAxisSpec{.kind = backend::ImageAxisKind::Shift, .lo = -0.2, .hi = 0.3, .size = 8},
      backend::ImageAxisSpec{.kind = backend::ImageAxisKind::Flip, .size = 6}};
  const int64_t n = 9;
  const Tensor counter = counter_at(12);
  const Tensor whole = random_image_transforms(axes, n, 77, counter, 3, DType::Float32);
  for (int64_t k : {0, 1, 2, 5, 8}) {
    const Tensor shard = random_image_transforms(axes, n - k, 77, counter, 3, DType::Float32, k);
    EXPECT_EQ(floats(shard), rows_of(whole, k, n)) << "from sample " << k;
  }
}

namespace {

// `layer`'s training output on rows [first, B) of x inside a replica context whose shard is those
// rows equals rows first.. of its output on all of x without one, from the same counter value.
template <typename L>
void expect_shard_draws_its_rows(L layer, const Shape& sample_shape, const Tensor& x, int64_t first) {
  const int64_t B = x.size(0);
  Generator gen(1);
  layer.build(sample_shape, gen, Device::cpu());
  const Tensor start = counter_of(layer).clone();
  const Tensor whole = layer.call(x, true);
  const Tensor after_whole = counter_of(layer).clone();
  layer.set_weight("seed_generator_state", start);
  NoCommunicator comm;
  distribute::ReplicaContext context(comm);
  {
    distribute::ScopedReplicaContext scope(&context);
    context.set_shard({.first_row = first, .rows = B - first, .global_rows = B});
    const Tensor shard = layer.call(x.slice_rows(first, B), true);
    EXPECT_EQ(floats(shard), rows_of(whole, first, B)) << layer.name() << " from row " << first;
  }
  const Tensor after_shard = counter_of(layer);
  EXPECT_EQ(after_shard.to_vector<int64_t>(), after_whole.to_vector<int64_t>()) << "one step, as one process";
  EXPECT_EQ(distribute::ReplicaContext::current(), nullptr);
}

}  // namespace

TEST(RandomLayersInAReplica, ShardDrawsTheGlobalBatchsRows) {
  Generator gen(6);
  const Tensor flat = Tensor::uniform({9, 5}, 0.5, 1.5, gen);
  const Tensor images = Tensor::uniform({9, 4, 6, 2}, -1, 1, gen);
  for (int64_t first : {1, 4, 8}) {
    expect_shard_draws_its_rows(layers::Dropout(0.5, {.seed = 3}), Shape{5}, flat, first);
    expect_shard_draws_its_rows(layers::Dropout(0.3), Shape{5}, flat, first);  // unseeded
    expect_shard_draws_its_rows(layers::RandomFlip("horizontal_and_vertical", {.seed = 2}), Shape{4, 6, 2}, images,
                                first);
    expect_shard_draws_its_rows(layers::RandomTranslation(0.3, 0.3, {.seed = 5}), Shape{4, 6, 2}, images, first);
    expect_shard_draws_its_rows(layers::RandomCrop(3, 4, {.seed = 7}), Shape{4, 6, 2}, images, first);
  }
}

TEST(RandomLayersInAReplica, NoContextDrawsAsBefore) {
  // Outside a data-parallel fit the layer draws from element 0: the op's plain draw.
  Generator gen(2);
  const Tensor x = Tensor::uniform({5, 3}, 0.5, 1.5, gen);
  layers::Dropout layer(0.5, {.seed = 4});
  layer.build(Shape{3}, gen, Device::cpu());
  ASSERT_EQ(distribute::ReplicaContext::current(), nullptr);
  EXPECT_EQ(floats(layer.call(x, true)), floats(dropout(x, 0.5, 4, counter_at(0), 0)));
}
