// The layout ops (copy_strided: slice, pad, concatenate, permute) and maximum on the GPU against the
// CPU, forward and backward, on fresh random inputs with NaNs; the merge and reshaping layers on
// both devices; and a model with the reshaping layers trained recorded equal to eagerly. Copies and
// maximum compute no new values, so every comparison is exact. Skipped where no GPU is usable.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <functional>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "cuda_parity.h"
#include "kiln/kiln.h"
#include "step_equivalence.h"
#include "test_support.h"

using namespace kiln;
using kiln::testing::DevBuf;
using kiln::testing::expect_close;
using kiln::testing::random_vec;
using kiln::testing::rng;
using kiln::testing::with_nans;

namespace {

using TensorsFn = std::function<Tensor(const std::vector<Tensor>&)>;

// y = fn(inputs) and d sum(y * r) / d input for every input, on `device`, from the same host values.
std::vector<Tensor> forward_backward(const TensorsFn& fn, const std::vector<Tensor>& host, Device device) {
  std::vector<Tensor> in;
  for (const Tensor& h : host) {
    Tensor t = h.to(device).clone();
    t.set_requires_grad(true);
    in.push_back(t);
  }
  const Tensor y = fn(in);
  Generator gen(99);
  const Tensor r = Tensor::uniform(y.shape(), 0.5, 1.5, gen, y.dtype(), device);
  sum(mul(y, r)).backward();
  std::vector<Tensor> out = {y.cpu()};
  for (const Tensor& t : in) out.push_back(t.grad().cpu());
  return out;
}

// Fresh random host inputs of `shapes` (NaNs included), float32 or float64.
std::vector<Tensor> random_inputs(const std::vector<Shape>& shapes, DType dtype) {
  std::vector<Tensor> out;
  for (const Shape& s : shapes) {
    const auto v = with_nans(random_vec<double>(static_cast<std::size_t>(s.numel())), 16);
    out.push_back(Tensor::from_vector(v, s).astype(dtype));
  }
  return out;
}

// Forward and backward equal on both devices, bit for bit (NaN meets NaN).
// Bit-equal unless `sum_rtol` (float32, float64) is given: a gradient that sums over a broadcast
// axis adds its terms in another order on each device (sum_rows), so it agrees to rounding only.
void expect_same_on_both(const std::string& what, const TensorsFn& fn, const std::vector<Shape>& shapes,
                         std::pair<double, double> sum_rtol = {0.0, 0.0}) {
  for (DType dtype : {DType::Float32, DType::Float64}) {
    const double rtol = dtype == DType::Float32 ? sum_rtol.first : sum_rtol.second;
    const auto host = random_inputs(shapes, dtype);
    const auto cpu = forward_backward(fn, host, Device::cpu());
    const auto gpu = forward_backward(fn, host, Device::gpu());
    for (std::size_t i = 0; i < cpu.size(); ++i) {
      ASSERT_EQ(cpu[i].shape(), gpu[i].shape()) << what;
      expect_close(cpu[i].to_vector<double>(), gpu[i].to_vector<double>(), rtol, 0.0,
                   what + " " + dtype_name(dtype) + (i == 0 ? " forward" : " gradient " + std::to_string(i - 1)));
    }
  }
}

// A random box copy of `ndim` dimensions between two arrays with padded, permuted strides: what
// no op produces after merging dimensions, to exercise the kernel's index arithmetic directly.
struct RandomCopy {
  backend::StridedCopy g;
  int64_t src_elems = 0, dst_elems = 0;
};

RandomCopy random_copy(int ndim) {
  std::uniform_int_distribution<int64_t> extent(1, 4), pad(0, 2);
  RandomCopy c;
  c.g.ndim = ndim;
  std::vector<int64_t> order(static_cast<std::size_t>(ndim));
  for (int d = 0; d < ndim; ++d) order[d] = d;
  std::shuffle(order.begin(), order.end(), rng());
  int64_t src_step = 1, dst_step = 1;
  for (int d = ndim - 1; d >= 0; --d) {
    c.g.extent[d] = extent(rng());
    c.g.dst_stride[d] = dst_step;
    dst_step *= c.g.extent[d] + pad(rng());
  }
  for (int k = ndim - 1; k >= 0; --k) {  // src lays the dimensions out in a shuffled order
    const int d = static_cast<int>(order[k]);
    c.g.src_stride[d] = src_step;
    src_step *= c.g.extent[d] + pad(rng());
  }
  c.g.src_offset = pad(rng());
  c.g.dst_offset = pad(rng());
  c.src_elems = src_step + c.g.src_offset;
  c.dst_elems = dst_step + c.g.dst_offset;
  return c;
}

template <typename T>
void check_copy_strided(DType dtype) {
  for (int ndim = 1; ndim <= backend::StridedCopy::kMaxDims; ++ndim) {
    const RandomCopy c = random_copy(ndim);
    std::vector<T> src(static_cast<std::size_t>(c.src_elems)), want(static_cast<std::size_t>(c.dst_elems), T(7));
    std::uniform_int_distribution<int> value(0, 100);
    for (auto& v : src) v = static_cast<T>(value(rng()));
    const DevBuf dsrc(src), ddst(want);
    kiln::testing::cpu().copy_strided(dtype, c.g, src.data(), want.data());
    kiln::testing::gpu().copy_strided(dtype, c.g, dsrc.ptr, ddst.ptr);
    EXPECT_EQ(ddst.get<T>(), want) << dtype_name(dtype) << ", " << ndim << " dimensions";
  }
}

}  // namespace

TEST(CudaLayout, CopyStridedMatchesTheCpuForEveryDtypeAndRank) {
  REQUIRE_GPU();
  for (int round = 0; round < 4; ++round) {
    check_copy_strided<float>(DType::Float32);
    check_copy_strided<double>(DType::Float64);
    check_copy_strided<int32_t>(DType::Int32);
    check_copy_strided<uint8_t>(DType::UInt8);
    check_copy_strided<int64_t>(DType::Int64);
  }
}

TEST(CudaLayout, SlicePadConcatenatePermuteMatchTheCpu) {
  REQUIRE_GPU();
  using In = const std::vector<Tensor>&;
  expect_same_on_both("slice", [](In v) { return slice(v[0], {1, 0, 2, 0}, {2, 5, 3, -1}); }, {Shape{4, 5, 6, 3}});
  expect_same_on_both("pad", [](In v) { return pad(v[0], {{0, 0}, {1, 2}, {3, 0}, {0, 0}}); }, {Shape{3, 5, 4, 7}});
  for (int64_t axis : {0, 1, 2, 3})
    expect_same_on_both("concatenate axis " + std::to_string(axis), [axis](In v) { return concatenate(v, axis); },
                        {Shape{2, 3, 4, 5}, Shape{2, 3, 4, 5}, Shape{2, 3, 4, 5}});
  expect_same_on_both("concatenate uneven", [](In v) { return concatenate(v, -1); },
                      {Shape{64, 8, 8, 16}, Shape{64, 8, 8, 32}, Shape{64, 8, 8, 1}});
  for (const std::vector<int64_t>& dims : {std::vector<int64_t>{0, 2, 1, 3}, {3, 1, 2, 0}, {0, 3, 1, 2}, {2, 0, 3, 1}})
    expect_same_on_both("permute " + Shape(dims).str(), [dims](In v) { return permute(v[0], dims); },
                        {Shape{5, 6, 7, 8}});
}

TEST(CudaLayout, MaximumMatchesTheCpuWithTiesAndNaNs) {
  REQUIRE_GPU();
  using In = const std::vector<Tensor>&;
  expect_same_on_both("maximum", [](In v) { return maximum(v[0], v[1]); }, {Shape{300, 7}, Shape{300, 7}});
  // The [7] input's gradient sums 50 rows: float32 and float64 rounding of a 50-term sum.
  expect_same_on_both("maximum row broadcast", [](In v) { return maximum(v[0], v[1]); }, {Shape{50, 7}, Shape{7}},
                      {50 * 6e-8, 50 * 1.2e-16});
  // Integer-valued inputs: many exact ties, whose gradient must go to the same side on both devices.
  const auto a = kiln::testing::tied_vec(4096, 3), b = kiln::testing::tied_vec(4096, 3);
  for (backend::BinaryOp op : {backend::BinaryOp::Maximum, backend::BinaryOp::GreaterEqual}) {
    std::vector<float> want(a.size());
    kiln::testing::cpu().binary(op, DType::Float32, a.data(), 4096, b.data(), 4096, want.data(), 4096);
    const DevBuf da(a), db(b), dout(want.size() * sizeof(float));
    kiln::testing::gpu().binary(op, DType::Float32, da.ptr, 4096, db.ptr, 4096, dout.ptr, 4096);
    expect_close(want, dout.get<float>(), 0.0, 0.0, op == backend::BinaryOp::Maximum ? "maximum" : "greater_equal");
  }
}

TEST(CudaLayout, MergeAndReshapingLayersMatchTheCpu) {
  REQUIRE_GPU();
  using In = const std::vector<Tensor>&;
  layers::Add add;
  layers::Average average;
  layers::Maximum maximum_layer;
  layers::Concatenate concat({.axis = 2});
  for (Layer* l : std::vector<Layer*>{&add, &average, &maximum_layer, &concat})
    expect_same_on_both(l->class_name(), [l](In v) { return l->call_inputs(v, true); },
                        {Shape{4, 6, 5, 3}, Shape{4, 6, 5, 3}, Shape{4, 6, 5, 3}});
  layers::ZeroPadding2D zero_pad({{1, 2}, {3, 0}});
  layers::Cropping2D crop({{1, 0}, {2, 1}});
  layers::Reshape reshape({-1, 3});
  layers::Permute permute_layer({2, 3, 1});
  for (Layer* l : std::vector<Layer*>{&zero_pad, &crop, &reshape, &permute_layer})
    expect_same_on_both(l->class_name(), [l](In v) { return l->call(v[0], true); }, {Shape{4, 6, 5, 3}});
}

TEST(CudaLayout, ReshapingModelRecordedStepEqualsEager) {
  EXPECT_RECORDED_STEP_EQUALS_EAGER([] {
    Sequential model({layers::Conv2D(4, {3, 3}, {.activation = "relu", .input_shape = {7, 6, 2}}),
                      layers::ZeroPadding2D({{1, 2}, {0, 1}}), layers::Cropping2D({{2, 0}, {1, 1}}),
                      layers::Reshape({-1, 8}), layers::Permute({2, 1}), layers::Flatten(), layers::Dense(3)});
    model.compile("adam", "sparse_categorical_crossentropy");
    return model;
  });
}
