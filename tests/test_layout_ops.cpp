// Layout ops (slice, pad, concatenate, permute) and maximum: values worked out by hand, gradients
// against central differences in float64, NaN and ties in maximum, other dtypes, and every error.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "gradcheck.h"
#include "kiln/kiln.h"
#include "test_support.h"

using namespace kiln;
using kiln::testing::gradcheck;
using kiln::testing::message_of;
using kiln::testing::random_input;

namespace {

using In = const std::vector<Tensor>&;

// 0, 1, 2, ... as float64 in `shape`.
Tensor iota(const Shape& shape) {
  std::vector<double> v(static_cast<std::size_t>(shape.numel()));
  for (std::size_t i = 0; i < v.size(); ++i) v[i] = static_cast<double>(i);
  return Tensor::from_vector(v, shape);
}

std::vector<double> values(const Tensor& t) { return t.to_vector<double>(); }

}  // namespace

TEST(SliceOp, TakesTheBoxAndMinusOneRunsToTheEnd) {
  const Tensor x = iota({3, 4});  // rows 0..3, 4..7, 8..11
  const Tensor y = slice(x, {1, 1}, {2, 2});
  EXPECT_EQ(y.shape(), (Shape{2, 2}));
  EXPECT_EQ(values(y), (std::vector<double>{5, 6, 9, 10}));
  EXPECT_EQ(values(slice(x, {0, 2}, {-1, -1})), (std::vector<double>{2, 3, 6, 7, 10, 11}));
  EXPECT_EQ(slice(x, {3, 0}, {0, 4}).shape(), (Shape{0, 4})) << "an empty box at the end is allowed";
}

TEST(PadOp, AddsZerosAroundEachDimension) {
  const Tensor x = iota({2, 2}) + 1.0;  // 1 2 / 3 4
  const Tensor y = pad(x, {{1, 0}, {0, 2}});
  EXPECT_EQ(y.shape(), (Shape{3, 4}));
  EXPECT_EQ(values(y), (std::vector<double>{0, 0, 0, 0, 1, 2, 0, 0, 3, 4, 0, 0}));
}

TEST(ConcatenateOp, JoinsAlongAnyAxis) {
  const Tensor a = iota({2, 2});        // 0 1 / 2 3
  const Tensor b = iota({2, 1}) + 10.;  // 10 / 11
  EXPECT_EQ(values(concatenate({a, b})), (std::vector<double>{0, 1, 10, 2, 3, 11}));
  EXPECT_EQ(values(concatenate({a, b}, 1)), (std::vector<double>{0, 1, 10, 2, 3, 11}));
  const Tensor c = iota({1, 2}) + 20.;  // 20 21
  const Tensor rows = concatenate({a, c, a}, 0);
  EXPECT_EQ(rows.shape(), (Shape{5, 2}));
  EXPECT_EQ(values(rows), (std::vector<double>{0, 1, 2, 3, 20, 21, 0, 1, 2, 3}));
  // A middle axis of a 3-D tensor: [2, 1, 2] and [2, 2, 2] -> [2, 3, 2].
  const Tensor p = iota({2, 1, 2}), q = iota({2, 2, 2}) + 100.;
  EXPECT_EQ(values(concatenate({p, q}, -2)), (std::vector<double>{0, 1, 100, 101, 102, 103, 2, 3, 104, 105, 106, 107}));
}

TEST(ConcatenateOp, WorksOnIntegerTensors) {
  const Tensor a = Tensor::from_vector<int32_t>({1, 2}, Shape{1, 2});
  const Tensor b = Tensor::from_vector<int32_t>({3, 4}, Shape{1, 2});
  EXPECT_EQ(concatenate({a, b}, 0).to_vector<int32_t>(), (std::vector<int32_t>{1, 2, 3, 4}));
}

TEST(PermuteOp, ReordersDimensions) {
  const Tensor x = iota({2, 3});  // 0 1 2 / 3 4 5
  EXPECT_EQ(values(permute(x, {1, 0})), (std::vector<double>{0, 3, 1, 4, 2, 5}));
  // [2, 3, 4] -> [4, 2, 3]: y[k, i, j] = x[i, j, k] = 12 i + 4 j + k.
  const Tensor y = permute(iota({2, 3, 4}), {2, 0, 1});
  ASSERT_EQ(y.shape(), (Shape{4, 2, 3}));
  const auto v = values(y);
  for (int k = 0; k < 4; ++k)
    for (int i = 0; i < 2; ++i)
      for (int j = 0; j < 3; ++j) EXPECT_EQ(v[(k * 2 + i) * 3 + j], 12 * i + 4 * j + k) << k << i << j;
}

TEST(MaximumOp, ElementwiseWithNaNAndBroadcast) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const Tensor a = Tensor::from_vector<double>({1, 5, nan, 2}, Shape{4});
  const Tensor b = Tensor::from_vector<double>({3, 4, 0, nan}, Shape{4});
  const auto y = values(maximum(a, b));
  EXPECT_EQ(y[0], 3);
  EXPECT_EQ(y[1], 5);
  EXPECT_TRUE(std::isnan(y[2])) << "a NaN on the left wins";
  EXPECT_TRUE(std::isnan(y[3])) << "a NaN on the right wins";
  const Tensor rows = iota({2, 3});  // 0 1 2 / 3 4 5
  EXPECT_EQ(values(maximum(rows, Tensor::from_vector<double>({2, 2, 2}, Shape{3}))),
            (std::vector<double>{2, 2, 2, 3, 4, 5}));
}

// TensorFlow's rule: the gradient goes to a where a >= b (ties to a), elsewhere to b.
TEST(MaximumOp, GradientOnTiesGoesToTheFirst) {
  Tensor a = Tensor::from_vector<double>({1, 2, 3}, Shape{3});
  Tensor b = Tensor::from_vector<double>({1, 5, 0}, Shape{3});
  a.set_requires_grad(true);
  b.set_requires_grad(true);
  sum(mul(maximum(a, b), Tensor::from_vector<double>({10, 20, 30}, Shape{3}))).backward();
  EXPECT_EQ(values(a.grad()), (std::vector<double>{10, 0, 30}));
  EXPECT_EQ(values(b.grad()), (std::vector<double>{0, 20, 0}));
}

TEST(LayoutGradcheck, SlicePadConcatenatePermuteMaximum) {
  EXPECT_TRUE(gradcheck([](In v) { return slice(v[0], {1, 0, 2}, {2, 3, 1}); }, {random_input({3, 3, 4}, 1)}));
  EXPECT_TRUE(gradcheck([](In v) { return pad(v[0], {{0, 1}, {2, 0}, {1, 1}}); }, {random_input({2, 3, 2}, 2)}));
  for (int64_t axis : {0, 1, 2, -1})
    EXPECT_TRUE(gradcheck(
        [axis](In v) {
          return concatenate({v[0], v[1], v[2]}, axis);
        },
        {random_input({2, 3, 2}, 3), random_input({2, 3, 2}, 4), random_input({2, 3, 2}, 5)}))
        << "axis " << axis;
  EXPECT_TRUE(gradcheck(
      [](In v) {
        return concatenate({v[0], v[1]}, 1);
      },
      {random_input({2, 1, 3}, 6), random_input({2, 4, 3}, 7)}));
  EXPECT_TRUE(gradcheck([](In v) { return permute(v[0], {3, 1, 0, 2}); }, {random_input({2, 3, 4, 2}, 8)}));
  // Inputs drawn apart enough that no finite-difference step crosses a tie.
  EXPECT_TRUE(gradcheck([](In v) { return maximum(v[0], v[1]); },
                        {random_input({4, 5}, 9, -1, 1), random_input({4, 5}, 10, -1, 1)}));
  EXPECT_TRUE(gradcheck([](In v) { return maximum(v[0], v[1]); }, {random_input({4, 5}, 11), random_input({5}, 12)}));
}

// The layout ops' backward rules are ops too: second derivatives through them must hold.
TEST(LayoutGradcheck, ComposedOnEachOther) {
  EXPECT_TRUE(gradcheck(
      [](In v) {
        return permute(slice(pad(concatenate({v[0], v[1]}, 0), {{1, 1}, {0, 2}}), {1, 1}, {3, 3}), {1, 0});
      },
      {random_input({2, 3}, 13), random_input({1, 3}, 14)}));
}

TEST(LayoutOps, ErrorsNameWhatWasWrong) {
  const Tensor x = Tensor::zeros({2, 3});
  EXPECT_EQ(
      message_of([&] { slice(x, {0}, {1}); }),
      "[slice] begin [0] and size [1] for an input of shape [2, 3]; expected one entry of each per dimension (2)");
  EXPECT_EQ(message_of([&] {
              slice(x, {1, 2}, {2, 1});
            }),
            "[slice] the box at begin [1, 2] of size [2, 1] does not fit in an input of shape [2, 3]; expected 0 <= "
            "begin, 0 <= size (or -1) and begin + size <= shape in every dimension");
  EXPECT_EQ(message_of([&] {
              pad(x, {{0, 0}});
            }),
            "[pad] 1 padding pairs for an input of shape [2, 3]; expected one {before, after} pair per dimension (2)");
  EXPECT_EQ(message_of([&] {
              pad(x, {{0, 0}, {-1, 0}});
            }),
            "[pad] padding {-1, 0} of dimension 1; expected amounts >= 0 (use slice to remove elements)");
  EXPECT_EQ(message_of([&] { concatenate({}); }), "[concatenate] got no tensors; expected at least one");
  EXPECT_EQ(message_of([&] {
              concatenate({x, Tensor::zeros({3, 3})}, 1);
            }),
            "[concatenate] tensor 1 has shape [3, 3] and tensor 0 [2, 3]; expected equal dimensions except on axis 1");
  EXPECT_EQ(
      message_of([&] {
        concatenate({x, Tensor::zeros({2, 3, 1})});
      }),
      "[concatenate] tensor 1 has shape [2, 3, 1] and tensor 0 [2, 3]; expected equal dimensions except on axis 1");
  EXPECT_EQ(message_of([&] {
              concatenate({x, x}, 2);
            }),
            "[concatenate] axis 2 is out of range for 2-D inputs; expected -2 <= axis < 2");
  EXPECT_EQ(
      message_of([&] {
        concatenate({x, Tensor::zeros({2, 3}, DType::Float64)});
      }),
      "[concatenate] inputs have dtypes float32 and float64; expected the same dtype (convert one with .astype())");
  EXPECT_EQ(message_of([&] {
              permute(x, {0, 0});
            }),
            "[permute] dims [0, 0] for an input of shape [2, 3]; expected a permutation of 0..1");
  EXPECT_EQ(message_of([&] {
              permute(x, {1, 0, 2});
            }),
            "[permute] dims [1, 0, 2] for an input of shape [2, 3]; expected a permutation of 0..1");
  EXPECT_EQ(message_of([&] { permute(Tensor::zeros(Shape(std::vector<int64_t>(9, 1))), {}); }),
            "[permute] input has shape [1, 1, 1, 1, 1, 1, 1, 1, 1]; expected at most 8 dimensions");
  EXPECT_EQ(message_of([&] { maximum(x, Tensor::zeros({2})); }),
            "[maximum] shapes [2, 3] and [2] do not broadcast; expected equal shapes, one a trailing suffix of the "
            "other (row broadcast) or one with a single element");
}
